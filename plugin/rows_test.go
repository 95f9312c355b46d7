package plugin_test

import (
	"strings"
	"testing"

	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// hitOf reports whether read was answered from the cache.
func hitOf(t *testing.T, p *plugin.Plugin, read func()) bool {
	t.Helper()
	before := p.Stats().Hits
	read()
	return p.Stats().Hits > before
}

// TestRowLevel: a read by primary key depends on its rows: a write to
// another row leaves it cached; a write to its row, a write whose rows
// cannot be named, an insert that creates a row it missed, all reach it.
func TestRowLevel(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			read := func(id uint) func() { return func() { readID(t, db, id) } }
			readIn := func(ids ...uint) func() {
				return func() {
					var as []Account
					if err := db.Find(&as, ids).Error; err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, r := range []func(){read(1), read(2), readIn(1, 2)} {
				r()
				if !hitOf(t, p, r) {
					t.Fatal("not cached")
				}
			}
			// Another row.
			must(t, db.Model(&Account{ID: 3}).Update("balance", 31).Error)
			for i, r := range []func(){read(1), read(2), readIn(1, 2)} {
				if !hitOf(t, p, r) {
					t.Fatalf("read %d: a write to row 3 invalidated it: %+v", i, p.Stats())
				}
			}
			// Its row.
			must(t, db.Model(&Account{ID: 2}).Update("balance", 21).Error)
			if hitOf(t, p, read(2)) || hitOf(t, p, readIn(1, 2)) {
				t.Fatal("a write to row 2 left its reads cached")
			}
			if got := readID(t, db, 2); got != 21 {
				t.Fatalf("row 2: %d", got)
			}
			if !hitOf(t, p, read(1)) {
				t.Fatal("a write to row 2 invalidated row 1")
			}
			// Rows that cannot be named: a range.
			readIn(1, 2)()
			must(t, db.Exec("UPDATE accounts SET balance = balance + 1 WHERE balance > 15").Error)
			if hitOf(t, p, read(1)) || hitOf(t, p, readIn(1, 2)) {
				t.Fatal("a range update left row-level reads cached")
			}
			if got := readID(t, db, 2); got != 22 {
				t.Fatalf("row 2 after the range update: %d", got)
			}
			// A row read while missing depends on the table: the insert
			// that creates it reaches it.
			var missing []Account
			find := func() {
				if err := db.Find(&missing, []uint{6}).Error; err != nil {
					t.Fatal(err)
				}
			}
			find()
			if !hitOf(t, p, find) || len(missing) != 0 {
				t.Fatalf("missing row: %v", missing)
			}
			must(t, db.Create(&Account{Owner: "new", Balance: 60}).Error) // id 6
			find()
			if len(missing) != 1 || missing[0].Balance != 60 {
				t.Fatalf("after the insert: %+v", missing)
			}
			// A key that moves.
			var four []Account
			find4 := func() { must(t, db.Find(&four, []uint{4}).Error) }
			find4()
			if !hitOf(t, p, find4) || len(four) != 1 {
				t.Fatalf("row 4: %+v", four)
			}
			must(t, db.Exec("UPDATE accounts SET id = 40 WHERE id = 4").Error)
			if hitOf(t, p, find4) || len(four) != 0 {
				t.Fatalf("row 4 moved to 40, still served: %+v", four)
			}
		})
	}
}

// TestTableLevel: with Config.TableLevel, any write to a table reaches its
// reads, as before.
func TestTableLevel(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{TableLevel: true})
	readID(t, db, 1)
	must(t, db.Model(&Account{ID: 3}).Update("balance", 31).Error)
	if hitOf(t, p, func() { readID(t, db, 1) }) {
		t.Fatal("TableLevel: a write to row 3 left row 1 cached")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openPostgres opens a GORM handle (no plugin, GORM's logger silent) on a
// PostgreSQL DSN, closed when t ends.
func openPostgres(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	return db
}

// Explain names the row tags of a read by key and of a write by key, and
// Stats counts row-level against table-level writes.
func TestRowLevelExplainAndStats(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	readID(t, db, 1) // (the catalog is read before the first statement)
	dry := db.Session(&gorm.Session{DryRun: true})
	var a Account
	ex, err := p.Explain(dry.First(&a, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Rows) != 3 || !strings.Contains(ex.Rows[0], "id=i2") || !strings.HasSuffix(ex.Rows[1], "\x1fid=*") || !strings.HasSuffix(ex.Rows[2], "\x1f*") {
		t.Fatalf("Explain(First(2)).Rows = %q", ex.Rows)
	}
	ex, err = p.Explain(dry.Model(&Account{ID: 3}).Update("balance", 1))
	if err != nil {
		t.Fatal(err)
	}
	// (and the member tag of id 3 by the column it SETs: counts by id
	// filtering on balance)
	if len(ex.Rows) != 2 || !strings.Contains(ex.Rows[0], "id=i3") || !strings.HasSuffix(ex.Rows[1], "id=mi3\x1ebalance") {
		t.Fatalf("Explain(Update(3)).Rows = %q", ex.Rows)
	}
	before := p.Stats()
	must(t, db.Model(&Account{ID: 3}).Update("balance", 1).Error)
	must(t, db.Exec("UPDATE accounts SET balance = 0 WHERE balance > 100").Error)
	after := p.Stats()
	if after.RowWrites != before.RowWrites+1 || after.TableWrites != before.TableWrites+1 {
		t.Fatalf("RowWrites %d→%d, TableWrites %d→%d; want one each", before.RowWrites, after.RowWrites, before.TableWrites, after.TableWrites)
	}
}

// A write to a table whose writes reach other rows of itself (here a
// self-referencing ON DELETE CASCADE) cannot name its rows: deleting a
// parent deletes its children, whose row-level entries must go too.
func TestRowLevelSelfCascade(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	must(t, db.Exec(`CREATE TABLE nodes (id bigint PRIMARY KEY, parent_id bigint REFERENCES nodes(id) ON DELETE CASCADE, name text)`).Error)
	must(t, db.Exec(`INSERT INTO nodes VALUES (1, NULL, 'root'), (2, 1, 'child')`).Error)
	type Node struct {
		ID       int64
		ParentID *int64
		Name     string
	}
	read := func() (n []Node) {
		must(t, db.Find(&n, []int64{2}).Error)
		return n
	}
	read()
	if !hitOf(t, p, func() { read() }) {
		t.Fatal("node 2 not cached")
	}
	must(t, db.Exec("DELETE FROM nodes WHERE id = ?", 1).Error)
	if n := read(); len(n) != 0 {
		t.Fatalf("node 2 was deleted by the cascade; read %+v", n)
	}
}
