package plugin_test

import (
	"testing"

	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
)

// staleAfter reads q (with args) twice (the second must be a hit, or the
// shape is not cached at all and there is nothing to show), runs write,
// and reads again: the balance of the row it returns must be the new one.
func staleAfter(t *testing.T, db *gorm.DB, p *plugin.Plugin, q string, args []any, write func(), wantID uint, want int64) {
	t.Helper()
	read := func() []Account {
		var as []Account
		must(t, db.Raw(q, args...).Scan(&as).Error)
		return as
	}
	if as := read(); len(as) != 1 || as[0].ID != wantID {
		t.Fatalf("%s: read %+v, want only row %d", q, as, wantID)
	}
	if !hitOf(t, p, func() { read() }) {
		t.Fatalf("%s: not cached", q)
	}
	write()
	if as := read(); len(as) != 1 || as[0].Balance != want {
		t.Fatalf("%s: after the write, read %+v; want balance %d (stale)", q, as, want)
	}
}

// An AND inside CASE … END is at paren depth 0: splitting the WHERE on it
// makes a conjunct (id = 1) the statement does not have, so the read was
// keyed on row 1 while it returns row 2.
func TestRowLevelReviewCaseAnd(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			q := "SELECT * FROM accounts WHERE CASE WHEN owner = 'nobody' AND id = 1 AND balance > 0 THEN 0 ELSE 1 END = 1 AND id = ?"
			staleAfter(t, db, p, q, []any{2}, func() {
				must(t, db.Model(&Account{ID: 2}).Update("balance", 777).Error)
			}, 2, 777)
			// and a write of that shape names row 1 while it writes row 3
			readID(t, db, 3)
			must(t, db.Exec("UPDATE accounts SET balance = 778 WHERE CASE WHEN owner = 'nobody' AND id = 1 AND balance > 0 THEN 0 ELSE 1 END = 1 AND id IN (3)").Error)
			if got := readID(t, db, 3); got != 778 {
				t.Fatalf("row 3 after a CASE-shaped update: balance %d (stale)", got)
			}
		})
	}
}

// MySQL (without PIPES_AS_CONCAT, the default) reads || as OR, which binds
// looser than AND: "id = 1 || owner = 'nobody' AND id = 2" returns row 1.
func TestRowLevelReviewMySQLPipesOr(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "mysql", plugin.Config{})
	q := "SELECT * FROM accounts WHERE id = 1 || owner = 'nobody' AND id = ?"
	staleAfter(t, db, p, q, []any{2}, func() {
		must(t, db.Model(&Account{ID: 1}).Update("balance", 777).Error)
	}, 1, 777)
	readID(t, db, 3)
	must(t, db.Exec("UPDATE accounts SET balance = 778 WHERE id = 3 || owner = 'nobody' AND id = 4").Error)
	if got := readID(t, db, 3); got != 778 {
		t.Fatalf("row 3 after an update through ||: balance %d (stale)", got)
	}
}

// MySQL (without ANSI_QUOTES, the default) reads "id" as a string: "id" = 0
// is true for every row ('id' converts to 0).
func TestRowLevelReviewMySQLDoubleQuotes(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "mysql", plugin.Config{})
	q := `SELECT * FROM accounts WHERE "id" = 0 AND owner = ?`
	staleAfter(t, db, p, q, []any{"owner3"}, func() {
		must(t, db.Model(&Account{ID: 3}).Update("balance", 777).Error)
	}, 3, 777)
}

// SQLite: a table whose constraint says ON CONFLICT REPLACE makes a plain
// UPDATE or INSERT delete the rows its new values conflict with: rows the
// write does not name.
func TestRowLevelReviewSQLiteConflictReplace(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	must(t, db.Exec(`CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT UNIQUE ON CONFLICT REPLACE)`).Error)
	must(t, db.Exec(`INSERT INTO members VALUES (1, 'a'), (2, 'b'), (3, 'c')`).Error)
	type Member struct {
		ID    int64
		Email string
	}
	read := func(id int64) (n []Member) {
		must(t, db.Find(&n, []int64{id}).Error)
		return n
	}
	read(1)
	read(3)
	if !hitOf(t, p, func() { read(1) }) || !hitOf(t, p, func() { read(3) }) {
		t.Fatal("members not cached")
	}
	must(t, db.Exec("UPDATE members SET email = 'a' WHERE id = ?", 2).Error)
	if n := read(1); len(n) != 0 {
		t.Fatalf("member 1 was replaced by the update of member 2; read %+v", n)
	}
	must(t, db.Exec("INSERT INTO members (id, email) VALUES (?, 'c')", 4).Error)
	if n := read(3); len(n) != 0 {
		t.Fatalf("member 3 was replaced by the insert of member 4; read %+v", n)
	}
}

// PostgreSQL's (legacy) inheritance: a parent's primary key does not span
// its children, so a read of the parent by key may find two rows for one
// value and none for another, and then count as having found every row:
// an insert that lets the database choose the key (here, 2) must reach it.
func TestRowLevelReviewPostgresInheritance(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	must(t, db.Exec(`CREATE TABLE things (id serial PRIMARY KEY, name text)`).Error)
	must(t, db.Exec(`CREATE TABLE special_things (PRIMARY KEY (id)) INHERITS (things)`).Error)
	must(t, db.Exec(`INSERT INTO things (name) VALUES ('parent one')`).Error)
	must(t, db.Exec(`INSERT INTO special_things (id, name) VALUES (1, 'child one')`).Error)
	type Thing struct {
		ID   int64
		Name string
	}
	read := func() (n []Thing) {
		must(t, db.Find(&n, []int64{1, 2}).Error)
		return n
	}
	if n := read(); len(n) != 2 {
		t.Fatalf("read %+v; want the two rows of id 1", n)
	}
	if !hitOf(t, p, func() { read() }) {
		t.Fatal("things not cached")
	}
	must(t, db.Exec(`INSERT INTO things (name) VALUES ('parent two')`).Error) // id 2
	if n := read(); len(n) != 3 {
		t.Fatalf("after inserting id 2, read %+v (stale)", n)
	}
}
