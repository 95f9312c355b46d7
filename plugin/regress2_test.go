package plugin_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// reviewLevel is a named integer type.
type reviewLevel int

// reviewNamed has nullable columns of named types.
type reviewNamed struct {
	ID    uint
	Label Label
	Level reviewLevel
	Rate  float64
}

// openPlainThenCached returns a database seeded by seed, with the plugin
// not yet installed, and a function that installs it.
func openPlainThenCached(t *testing.T, dialect string, seed func(db *gorm.DB) error) (*gorm.DB, func() *plugin.Plugin) {
	t.Helper()
	db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
	if err := seed(db); err != nil {
		t.Fatal(err)
	}
	return db, func() *plugin.Plugin {
		p := plugin.New(plugin.Config{Logger: quiet})
		if err := db.Use(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
}

// Plain GORM scans a NULL into a field of a named type (here Label and
// reviewLevel) through its fallback setter, which sets the field to its
// zero value. directScan treats every NULL as "leave the field as it is",
// so a struct that already holds values keeps them on a miss and on a hit.
func TestNullIntoNamedTypeFieldOfFilledStruct(t *testing.T) {
	t.Parallel()
	db, use := openPlainThenCached(t, "sqlite", func(db *gorm.DB) error {
		if err := db.AutoMigrate(&reviewNamed{}); err != nil {
			return err
		}
		return db.Exec("INSERT INTO review_nameds (id, label, level, rate) VALUES (1, NULL, NULL, 1.5)").Error
	})
	read := func() reviewNamed {
		r := reviewNamed{Label: "old", Level: 7}
		if err := db.Where("id = ?", 1).Take(&r).Error; err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := read()
	if want.Label != "" || want.Level != 0 {
		t.Fatalf("plain GORM kept old values: %+v (the premise of this test is wrong)", want)
	}
	use()
	for i := 0; i < 2; i++ {
		if got := read(); got != want {
			t.Errorf("run %d (miss, then hit): got %+v, plain GORM gives %+v", i+1, got, want)
		}
	}
}

// A PL/pgSQL trigger whose body writes through a function call in an
// expression (x := log_parent(...)) contains none of the "write words"
// addTrigger looks for, so deps.go records it as writing nothing: a write to
// parents then does not invalidate cached reads of audit.
func TestTriggerWritingThroughFunctionCall(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	for _, q := range []string{
		`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
		`CREATE TABLE audit (id bigserial PRIMARY KEY, msg text)`,
		`CREATE FUNCTION log_parent(pid bigint) RETURNS bigint LANGUAGE sql AS $$ INSERT INTO audit (msg) VALUES ('updated ' || pid) RETURNING id $$`,
		`CREATE FUNCTION audit_parent() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE x bigint; BEGIN x := log_parent(NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents FOR EACH ROW EXECUTE FUNCTION audit_parent()`,
		`INSERT INTO parents (id, name) VALUES (1, 'a')`,
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const q = `SELECT count(*) FROM audit`
	countOf(t, db, q)
	countOf(t, db, q) // cached
	if err := db.Exec(`UPDATE parents SET name = 'b' WHERE id = 1`).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := countOf(t, db, q), truthOf(t, db, q); got != want {
		t.Errorf("audit count = %d after the trigger wrote to it, database has %d (stale)", got, want)
	}
}

// bumpDownStore fails every Bump while down is set (Get and the rest work).
type bumpDownStore struct {
	*bytesStore
	down atomic.Bool
}

func (s *bumpDownStore) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if s.down.Load() {
		return 0, errors.New("bump: connection reset")
	}
	return s.bytesStore.Bump(ctx, tags, hold)
}

// hookPool is a *sql.DB whose UPDATEs run through onUpdate when it is set.
type hookPool struct {
	*sql.DB
	onUpdate func(exec func() (sql.Result, error)) (sql.Result, error)
}

func (h *hookPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	exec := func() (sql.Result, error) { return h.DB.ExecContext(ctx, query, args...) }
	if h.onUpdate != nil && strings.HasPrefix(strings.TrimSpace(strings.ToUpper(query)), "UPDATE") {
		f := h.onUpdate
		h.onUpdate = nil
		return f(exec)
	}
	return exec()
}

// A write whose first bump fails marks its table broken, and retryBroken
// clears that mark with its own bump as soon as the store answers, even if
// the write is still running: its rows are not committed yet and no lease
// holds the table, so a read then stores the old rows under the current
// version, and once the write commits that entry is served until the
// write's final bump lands (the gap between COMMIT and the bump that the
// lease exists to close). Here a read made after the UPDATE committed, and
// before the statement returned, gets the old owner from the cache.
func TestRetryBrokenClearsMarkOfWriteInFlight(t *testing.T) {
	t.Parallel()
	seed, err := gorm.Open(testdb.Fresh(t, "sqlite"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := seed.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	if err := seed.Create(&Account{ID: 1, Owner: "old"}).Error; err != nil {
		t.Fatal(err)
	}
	sqlDB, err := seed.DB()
	if err != nil {
		t.Fatal(err)
	}
	hp := &hookPool{DB: sqlDB}
	db, err := gorm.Open(sqlite.Dialector{Conn: hp}, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	st := &bumpDownStore{bytesStore: newBytesStore()}
	p := plugin.New(plugin.Config{BumpFailure: plugin.ProceedWrite, Store: st, Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	var afterCommit Account
	hp.onUpdate = func(exec func() (sql.Result, error)) (sql.Result, error) {
		// The write's first bump has failed; the store answers again, and
		// the background retry runs (it starts at 50 ms).
		st.down.Store(false)
		time.Sleep(300 * time.Millisecond)
		if plugin.Serving(p, "accounts") {
			t.Error("accounts served again while the write whose bump failed is still running")
		}
		account(t, db, 1) // the write has not committed: the old row (it must not be stored)
		res, err := exec()
		afterCommit = account(t, db, 1) // begins after the commit
		return res, err
	}
	st.down.Store(true)
	if err := db.Model(&Account{ID: 1}).Update("owner", "new").Error; err != nil {
		t.Fatal(err)
	}
	if afterCommit.Owner != "new" {
		t.Errorf("a read begun after the UPDATE committed returned owner %q, want \"new\"", afterCommit.Owner)
	}
	// Once the write is over, its bump (made after it) serves the table again.
	for deadline := time.Now().Add(5 * time.Second); !plugin.Serving(p, "accounts"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("accounts not served again 5s after the write")
		}
	}
	if got := account(t, db, 1); got.Owner != "new" {
		t.Errorf("after the write: owner %q, want \"new\"", got.Owner)
	}
}

// reviewFlag is a named bool type.
type reviewFlag bool

type reviewFlagged struct {
	ID   uint
	Name string
	Lit  reviewFlag `gorm:"type:integer"`
}

// database/sql cannot convert an int64 (SQLite's and MySQL's booleans) into
// a named bool type, so plain GORM's First fails with a Scan error;
// directScan's setBool assigns it, so the cached database returns no error:
// not the same errors as GORM.
func TestNamedBoolFromIntegerErrorsLikeGORM(t *testing.T) {
	t.Parallel()
	db, use := openPlainThenCached(t, "sqlite", func(db *gorm.DB) error {
		if err := db.AutoMigrate(&reviewFlagged{}); err != nil {
			return err
		}
		return db.Exec("INSERT INTO review_flaggeds (id, name, lit) VALUES (1, 'x', 1)").Error
	})
	read := func() error {
		var r reviewFlagged
		return db.Where("id = ?", 1).Take(&r).Error
	}
	want := read()
	if want == nil {
		t.Fatal("plain GORM scanned an int64 into a named bool (the premise of this test is wrong)")
	}
	use()
	for i := 0; i < 2; i++ {
		if got := read(); got == nil {
			t.Errorf("run %d (miss, then hit): no error; plain GORM fails with %v", i+1, want)
		}
	}
}
