package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The cases a review of ranged reads and late holds found stale; each
// failed before its fix.

// Bonus is a column that is not keyed, beside the ranked Points.
type BonusScore struct {
	ID     uint
	Points int64 `gorm:"index"`
	Bonus  int64
	Name   string `gorm:"size:32"`
}

// bonusDB opens dialect's database with bonus_scores 1…10 (points 10×id,
// bonus id), after prep, and a cached handle.
func bonusDB(t *testing.T, dialect string, prep ...string) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
	must(t, db.AutoMigrate(&BonusScore{}))
	for i := 1; i <= 10; i++ {
		must(t, db.Create(&BonusScore{Points: int64(i * 10), Bonus: int64(i), Name: "s"}).Error)
	}
	for _, q := range prep {
		must(t, db.Exec(q).Error)
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	return db, p
}

type idPoints struct {
	ID     uint
	Points int64
}

// freshAfter reads q through the cache until it is stored (three times:
// the hint, then the entry), runs write, and compares a cached read with
// the database.
func freshAfter(t *testing.T, db *gorm.DB, q string, write func() error) {
	t.Helper()
	for range 3 {
		must(t, db.Raw(q).Scan(&[]idPoints{}).Error)
	}
	must(t, write())
	var got, want []idPoints
	must(t, db.Raw(q).Scan(&got).Error)
	must(t, db.Clauses(plugin.Skip()).Raw(q).Scan(&want).Error)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: got %v, the database has %v", q, got, want)
	}
}

func TestRangedReviewed(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			// An output alias named like the column: ORDER BY sorts by it.
			db, _ := bonusDB(t, dialect)
			freshAfter(t, db, "SELECT id, bonus AS points FROM bonus_scores ORDER BY points DESC LIMIT 3", func() error {
				return db.Exec("UPDATE bonus_scores SET bonus = 1000 WHERE id = 2").Error
			})
			freshAfter(t, db, "SELECT id, -points AS points FROM bonus_scores ORDER BY points LIMIT 3", func() error {
				return db.Create(&BonusScore{Points: 5000, Name: "top"}).Error
			})
			// A tie at the boundary, broken by the key, which a write sets.
			db, _ = bonusDB(t, dialect, "UPDATE bonus_scores SET points = 100 WHERE id >= 8", "DELETE FROM bonus_scores WHERE id = 1")
			freshAfter(t, db, "SELECT id, points FROM bonus_scores ORDER BY points DESC, id LIMIT 2", func() error {
				return db.Exec("UPDATE bonus_scores SET id = 1 WHERE id = 10").Error
			})
			if dialect != "postgres" { // (PostgreSQL refuses a column assigned twice)
				// Which of two assignments wins is the database's.
				freshAfter(t, db, "SELECT id, points FROM bonus_scores ORDER BY points, id LIMIT 3", func() error {
					return db.Exec("UPDATE bonus_scores SET points = 500, points = 1 WHERE id = 9").Error
				})
			}
			// A key of 0 (MySQL) or NULL (SQLite) is the database's to choose.
			zero := "INSERT INTO bonus_scores (id, points, bonus, name) VALUES (0, 5, 5, 'zero')"
			switch dialect {
			case "sqlite":
				zero = "INSERT INTO bonus_scores (id, points, bonus, name) VALUES (NULL, 5, 5, 'null')"
			case "postgres":
				zero = "INSERT INTO bonus_scores (id, points, bonus, name) VALUES (100, 5, 5, 'given')"
			}
			freshAfter(t, db, "SELECT id, points FROM bonus_scores ORDER BY id DESC LIMIT 3", func() error {
				return db.Exec(zero).Error
			})
		})
	}
}

// MySQL's unsigned keys come back as uint64: the hint is learned from them
// too (Raw, Scan).
func TestRangedUnsignedKey(t *testing.T) {
	t.Parallel()
	db, p := bonusDB(t, "mysql")
	q := "SELECT id, points FROM bonus_scores ORDER BY points DESC LIMIT 3"
	for range 3 {
		must(t, db.Raw(q).Scan(&[]idPoints{}).Error)
	}
	ex, err := p.Explain(db.Session(&gorm.Session{DryRun: true}).Raw(q).Scan(&[]idPoints{}))
	must(t, err)
	if len(ex.Rows) == 0 {
		t.Fatalf("no hint learned from a result of unsigned keys: %+v", ex)
	}
}

// Late holds: a COMMIT sent as SQL inside db.Transaction commits what it
// wrote at once, and what follows runs on its own; a function that may
// write anything (dblink_exec: a transaction of its own) takes effect at
// once too. Each is held when it runs, and a read after it is fresh, even
// when the transaction then rolls back.
func TestLateHoldsControlSent(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, _ := bonusDB(t, dialect)
			name := func(id uint, skip bool) string {
				t.Helper()
				d := db
				if skip {
					d = db.Clauses(plugin.Skip())
				}
				var s BonusScore
				must(t, d.First(&s, id).Error)
				return s.Name
			}
			fresh := func(step string, id uint) {
				t.Helper()
				if got, want := name(id, false), name(id, true); got != want {
					t.Errorf("%s: %q, the database has %q", step, got, want)
				}
			}
			name(3, false)
			name(3, false)
			err := db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Model(&BonusScore{ID: 3}).Update("name", "committed").Error)
				must(t, tx.Exec("COMMIT").Error)
				fresh("after a COMMIT sent as SQL", 3)
				must(t, tx.Model(&BonusScore{ID: 3}).Update("name", "on its own").Error)
				fresh("after a statement on its own", 3)
				return errors.New("an error after the commit: Rollback")
			})
			if err == nil {
				t.Fatal("the transaction did not fail")
			}
			fresh("after the rollback", 3)
		})
	}
}

func TestLateHoldsDblink(t *testing.T) {
	t.Parallel()
	dsn := testdb.FreshPostgres(t)
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	must(t, db.Exec("CREATE EXTENSION IF NOT EXISTS dblink").Error)
	must(t, db.AutoMigrate(&BonusScore{}))
	must(t, db.Create(&BonusScore{Points: 1, Name: "s"}).Error)
	var dbname string
	must(t, db.Raw("SELECT current_database()").Scan(&dbname).Error)
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	defer p.Close()
	name := func(d *gorm.DB) string {
		var s BonusScore
		must(t, d.First(&s, 1).Error)
		return s.Name
	}
	name(db)
	name(db)
	err = db.Transaction(func(tx *gorm.DB) error {
		must(t, tx.Exec("SELECT dblink_exec(?, 'UPDATE bonus_scores SET name = ''remote'' WHERE id = 1')",
			"host=127.0.0.1 user=postgres dbname="+dbname).Error)
		if got, want := name(db), name(db.Clauses(plugin.Skip())); got != want {
			t.Errorf("inside the transaction, after a write that committed on its own: %q, the database has %q", got, want)
		}
		return errors.New("roll back")
	})
	if got, want := name(db), name(db.Clauses(plugin.Skip())); got != want {
		t.Errorf("after the rollback (%v): %q, the database has %q", err, got, want)
	}
}

// maxBump records the most tags one Bump was given.
type maxBump struct {
	store.Store
	most int
}

func (m *maxBump) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	m.most = max(m.most, len(tags))
	return m.Store.Bump(ctx, tags, hold)
}

// A transaction that wrote many rows holds them at its commit in batches
// (a store call each, within StoreTimeout), not in one call.
func TestLateHoldsBatched(t *testing.T) {
	t.Parallel()
	ms, err := memstore.New(memstore.Config{})
	must(t, err)
	mb := &maxBump{Store: testsupport.BytesStore{Store: ms}}
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	must(t, db.AutoMigrate(&BonusScore{}))
	rows := make([]BonusScore, 2000)
	for i := range rows {
		rows[i] = BonusScore{Points: int64(i), Name: "s"}
	}
	must(t, db.CreateInBatches(rows, 500).Error)
	p := plugin.New(plugin.Config{Logger: quiet, Store: mb})
	must(t, db.Use(p))
	defer p.Close()
	must(t, db.Transaction(func(tx *gorm.DB) error {
		for i := 1; i <= len(rows); i++ {
			if err := tx.Exec("UPDATE bonus_scores SET name = 'x' WHERE id = ?", i).Error; err != nil {
				return err
			}
		}
		return nil
	}))
	if mb.most > 300 {
		t.Fatalf("one bump of %d tags at the commit", mb.most)
	}
	var s BonusScore
	must(t, db.First(&s, 1500).Error)
	if s.Name != "x" {
		t.Fatalf("after the commit: %+v", s)
	}
}

// A writer that only writes in transactions reads the catalog again when
// one begins, once a migration marked it stale.
func TestCatalogReadAtBegin(t *testing.T) {
	t.Parallel()
	db, p := bonusDB(t, "postgres")
	must(t, db.Exec("CREATE INDEX bonus_scores_bonus ON bonus_scores (bonus)").Error)
	before := p.Stats().CatalogReads
	must(t, db.Transaction(func(tx *gorm.DB) error {
		return tx.Model(&BonusScore{ID: 1}).Update("name", "x").Error
	}))
	if p.Stats().CatalogReads == before {
		t.Fatal("the catalog, stale since the CREATE INDEX, was not read when the transaction began")
	}
}

// From a second review. A count keyed on a foreign key whose other
// condition is on a generated column (the database changes it when the
// column it is computed from is SET) depends on the rows' content, not on
// member tags.
func TestCountOnGeneratedColumn(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, _ := fkDB(t, dialect)
			ddl := "CREATE TABLE items (id INTEGER PRIMARY KEY, shelf_id BIGINT REFERENCES shelves(id), title VARCHAR(50), tlen INTEGER GENERATED ALWAYS AS (length(title)) STORED)"
			if dialect == "mysql" {
				ddl = "CREATE TABLE items (id INTEGER PRIMARY KEY, shelf_id BIGINT UNSIGNED, title VARCHAR(50), tlen INT AS (char_length(title)) STORED, FOREIGN KEY (shelf_id) REFERENCES shelves(id))"
			}
			must(t, db.Exec(ddl).Error)
			must(t, db.Exec("INSERT INTO items (id, shelf_id, title) VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c')").Error)
			count := func() (n int64) {
				must(t, db.Raw("SELECT count(*) FROM items WHERE shelf_id = ? AND tlen = ?", 1, 1).Scan(&n).Error)
				return n
			}
			count()
			count()
			must(t, db.Exec("UPDATE items SET title = 'xx' WHERE shelf_id = 1").Error)
			if n := count(); n != 0 {
				t.Errorf("count %d after an UPDATE that made tlen 2, want 0", n)
			}
			if dialect != "mysql" {
				return
			}
			// MySQL's ON UPDATE CURRENT_TIMESTAMP: set by the database.
			must(t, db.Exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, shelf_id BIGINT UNSIGNED, title VARCHAR(50), edited TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP, FOREIGN KEY (shelf_id) REFERENCES shelves(id))").Error)
			must(t, db.Exec("INSERT INTO notes (id, shelf_id, title) VALUES (1, 1, 'a'), (2, 1, 'b')").Error)
			unedited := func() (n int64) {
				must(t, db.Raw("SELECT count(*) FROM notes WHERE shelf_id = ? AND edited IS NULL", 1).Scan(&n).Error)
				return n
			}
			unedited()
			unedited()
			must(t, db.Exec("UPDATE notes SET title = 'c' WHERE shelf_id = 1 AND id = 1").Error) // (names its shelf)
			if n := unedited(); n != 1 {
				t.Errorf("%d unedited notes after an UPDATE that set edited, want 1", n)
			}
		})
	}
}

// A COMMIT sent as SQL whose holds are refused (FailWrite) is not sent,
// and the transaction keeps what it has to hold: when it commits later, it
// holds and bumps them, so another instance sharing the store reads the
// committed row.
func TestLateHoldsRefusedControl(t *testing.T) {
	t.Parallel()
	dsn := testdb.FreshPostgres(t)
	ms, err := memstore.New(memstore.Config{})
	must(t, err)
	open := func(st store.Store) *gorm.DB {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		p := plugin.New(plugin.Config{Logger: quiet, Store: st})
		must(t, db.Use(p))
		t.Cleanup(func() { p.Close() })
		return db
	}
	cut := &storetest.CutBumps{Store: ms}
	writer := open(cut)
	must(t, writer.AutoMigrate(&BonusScore{}))
	for i := 1; i <= 3; i++ {
		must(t, writer.Create(&BonusScore{Points: int64(i * 10), Name: "s"}).Error)
	}
	reader := open(ms)
	name := func(d *gorm.DB) string {
		var s BonusScore
		must(t, d.First(&s, 3).Error)
		return s.Name
	}
	name(reader)
	name(reader)
	must(t, writer.Transaction(func(tx *gorm.DB) error {
		must(t, tx.Model(&BonusScore{ID: 3}).Update("name", "new").Error)
		cut.Cut.Store(true)
		if err := tx.Exec("COMMIT").Error; !errors.Is(err, plugin.ErrWriteRefused) {
			t.Errorf("a COMMIT sent as SQL while the store is cut: %v", err)
		}
		cut.Cut.Store(false)
		return nil // (the application goes on: GORM commits)
	}))
	if got, want := name(reader), name(reader.Clauses(plugin.Skip())); got != want {
		t.Fatalf("after the commit: the other instance reads %q, the database has %q", got, want)
	}
}
