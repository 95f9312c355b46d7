package invalidation

import "testing"

func TestTempTable(t *testing.T) {
	for _, c := range []struct {
		d    Dialect
		sql  string
		want string
	}{
		{Postgres, `CREATE TEMP TABLE accounts (id int)`, "accounts"},
		{Postgres, `create local temporary table if not exists "Acc" AS SELECT 1`, TableName(`"Acc"`)},
		{Postgres, `CREATE TABLE pg_temp.accounts (id int)`, "accounts"},
		{Postgres, `CREATE TEMP VIEW v AS SELECT 1`, "v"},
		{Postgres, `SELECT * INTO TEMP TABLE snapshot FROM accounts`, "snapshot"},
		{Postgres, `SET x = 1; CREATE TEMPORARY TABLE t2 (a int)`, "t2"},
		{MySQL, "CREATE TEMPORARY TABLE `accounts` LIKE base", "accounts"},
		{SQLite, `CREATE TEMP TABLE accounts(id)`, "accounts"},
		{SQLite, `CREATE TABLE temp.accounts(id)`, "accounts"},
		{SQLite, `CREATE TEMPORARY VIEW v AS SELECT 1`, "v"},
		{Postgres, `CREATE TABLE accounts (id int)`, ""},
		{Postgres, `CREATE UNLOGGED TABLE accounts (id int)`, ""},
		{Postgres, `SELECT * FROM temp`, ""},
		{Postgres, `CREATE INDEX temp ON accounts (id)`, ""},
	} {
		got, ok := TempTable(c.d, c.sql)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("TempTable(%q) = %q, %v; want %q", c.sql, got, ok, c.want)
		}
	}
}

func FuzzTempTable(f *testing.F) {
	f.Add(`CREATE TEMP TABLE IF NOT`)
	f.Add(`SELECT a INTO TEMP`)
	f.Fuzz(func(t *testing.T, sql string) {
		for _, d := range []Dialect{Generic, Postgres, MySQL, SQLite} {
			TempTable(d, sql)
		}
	})
}
