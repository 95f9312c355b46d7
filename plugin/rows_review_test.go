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
