package plugin_test

import (
	"testing"

	"github.com/gormcache/gormcache/plugin"
)

// TestTemporaryTableShadows: a temporary table exists in one session and
// shadows the base table of its name there. Read through the shared pool,
// its rows were cached under the base table's key and served after the
// session had ended (no DDL marks that end): 999 for a balance of 10.
// Reads of a name a temporary table was created under are not cached.
func TestTemporaryTableShadows(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			sqlDB.SetMaxOpenConns(1) // the temporary table's session serves every statement
			readID(t, db, 1)
			must(t, db.Exec("CREATE TEMPORARY TABLE accounts AS SELECT id, owner, balance + 989 AS balance FROM accounts").Error)
			if got := readID(t, db, 1); got != 999 {
				t.Fatalf("in the temporary table's session: %d, want 999", got)
			}
			readID(t, db, 1)
			if n := p.Stats().Bypasses[plugin.ReasonTempTable]; n == 0 {
				t.Errorf("no %s bypass: %v", plugin.ReasonTempTable, p.Stats().Bypasses)
			}
			sqlDB.SetMaxIdleConns(0) // the session ends: its temporary table goes
			sqlDB.SetMaxIdleConns(2)
			if got := readID(t, db, 1); got != 10 {
				t.Fatalf("after the temporary table's session ended: %d, want 10 (the base table)", got)
			}
		})
	}
}

// TestBackslashStrings: where a string literal holding a backslash ends
// depends on the session (MySQL's NO_BACKSLASH_ESCAPES; PostgreSQL's
// standard_conforming_strings), and what follows may be another table or
// statement: such a statement is never cached and invalidates everything.
func TestBackslashStrings(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			readID(t, db, 1)
			if !hitOf(t, p, func() { readID(t, db, 1) }) {
				t.Fatal("not cached")
			}
			q := `SELECT balance FROM accounts WHERE owner = 'C:\dir' OR id = 1`
			if dialect == "mysql" {
				q = `SELECT balance FROM accounts WHERE owner = 'C:\\dir' OR id = 1`
			}
			var v int64
			read := func() { must(t, db.Raw(q).Scan(&v).Error) }
			read()
			if hitOf(t, p, read) || v != 10 {
				t.Fatalf("a statement with a backslash string was served from the cache (%d)", v)
			}
			if hitOf(t, p, func() { readID(t, db, 1) }) {
				t.Fatal("a statement with a backslash string did not invalidate everything")
			}
		})
	}
}
