package plugin_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestSchemaChangedElsewhere (issue 16 item 5): a view created by another
// client is not cached as a plain table (a name the catalog does not list
// is not cached until the catalog has been read again), and a cascade
// added by another client is followed once the periodic read has seen it.
func TestSchemaChangedElsewhere(t *testing.T) {
	t.Parallel()
	dsn := testdb.FreshPostgres(t)
	db, other := openPostgres(t, dsn), openPostgres(t, dsn)
	p := plugin.New(plugin.Config{Logger: quiet, CatalogRefresh: 100 * time.Millisecond})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	for _, q := range []string{
		"CREATE TABLE parents (id bigint PRIMARY KEY)",
		"CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint, n int)",
		"INSERT INTO parents VALUES (1), (2)",
		"INSERT INTO children VALUES (1, 1, 10), (2, 2, 20)",
	} {
		must(t, db.Exec(q).Error)
	}
	sum := func(from string) (n int64) {
		must(t, db.Raw("SELECT coalesce(sum(n), 0) FROM "+from).Scan(&n).Error)
		return n
	}

	// A view created elsewhere.
	must(t, other.Exec("CREATE VIEW children_view AS SELECT id, n FROM children").Error)
	before := p.Stats().Bypasses[plugin.ReasonUnknownTables]
	if got := sum("children_view"); got != 30 {
		t.Fatalf("view: %d", got)
	}
	if p.Stats().Bypasses[plugin.ReasonUnknownTables] != before+1 {
		t.Fatalf("a view the catalog does not list yet was not bypassed: %v", p.Stats().Bypasses)
	}
	testsupport.Eventually(t, "the view is cached once the catalog lists it", func() bool {
		sum("children_view")
		return hitOf(t, p, func() { sum("children_view") })
	})
	must(t, db.Exec("UPDATE children SET n = 11 WHERE id = 1").Error)
	if got := sum("children_view"); got != 31 {
		t.Fatalf("the view after a write to its table: %d, want 31", got)
	}

	// A cascade added elsewhere.
	sum("children")
	if !hitOf(t, p, func() { sum("children") }) {
		t.Fatal("children not cached")
	}
	reads := p.Stats().CatalogReads
	must(t, other.Exec("ALTER TABLE children ADD FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE CASCADE").Error)
	testsupport.Eventually(t, "the periodic read sees the cascade", func() bool { return p.Stats().CatalogReads >= reads+2 })
	sum("children")
	if !hitOf(t, p, func() { sum("children") }) {
		t.Fatal("children not cached after the catalog was read again")
	}
	must(t, db.Exec("DELETE FROM parents WHERE id = ?", 2).Error)
	if got := sum("children"); got != 11 {
		t.Fatalf("children after the cascading delete: %d, want 11", got)
	}
}

// failingPool fails every query that reads SQLite's catalog while fail is
// set: a catalog that cannot be read (the database is not ready, or
// locked).
type failingPool struct {
	*sql.DB
	fail atomic.Bool
}

func (f *failingPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if f.fail.Load() && strings.Contains(query, "sqlite_master") {
		return nil, errors.New("database is locked")
	}
	return f.DB.QueryContext(ctx, query, args...)
}

// TestNothingCachedBeforeTheCatalog (issue 16 item 5): while the catalog
// cannot be read, nothing is cached and every write invalidates everything
// (a trigger or cascade it does not know of may write any table); once it
// can, caching resumes without a restart.
func TestNothingCachedBeforeTheCatalog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.db")
	plain, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(5000)"), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	must(t, plain.AutoMigrate(&Account{}))
	must(t, plain.Create(&Account{Owner: "a", Balance: 10}).Error)
	sqlDB, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	must(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	pool := &failingPool{DB: sqlDB}
	pool.fail.Store(true)
	db, err := gorm.Open(sqlite.Dialector{Conn: pool}, &gorm.Config{Logger: logger.Discard})
	must(t, err)
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	if p.Stats().CatalogErrors == 0 {
		t.Fatal("the catalog read did not fail")
	}
	readID(t, db, 1)
	if hitOf(t, p, func() { readID(t, db, 1) }) {
		t.Fatal("cached before the catalog was read")
	}
	if p.Stats().Bypasses[plugin.ReasonNoCatalog] == 0 {
		t.Fatalf("bypasses: %v", p.Stats().Bypasses)
	}
	inv := p.Stats().Invalidations
	must(t, db.Exec("UPDATE accounts SET balance = 11 WHERE id = 1").Error)
	if st := p.Stats(); st.Invalidations != inv+2 {
		t.Fatalf("a write before the catalog was read made %d invalidations, want 2 (everything, before and after)", st.Invalidations-inv)
	}
	ex, err := p.Explain(db.Session(&gorm.Session{DryRun: true}).Exec("UPDATE accounts SET balance = 11 WHERE id = 1"))
	must(t, err)
	if len(ex.Tables) != 1 || ex.Tables[0] != "*" {
		t.Fatalf("Explain of a write before the catalog was read: %+v", ex)
	}
	pool.fail.Store(false)
	testsupport.Eventually(t, "cached once the catalog could be read", func() bool {
		readID(t, db, 1)
		return hitOf(t, p, func() { readID(t, db, 1) })
	})
	if got := readID(t, db, 1); got != 11 {
		t.Fatalf("balance %d", got)
	}
}

// On a dialect whose catalog the plugin cannot read, nothing is cached
// unless Config.WithoutCatalog says so.
func TestWithoutCatalog(t *testing.T) {
	t.Parallel()
	for _, opt := range []bool{false, true} {
		db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
		must(t, db.AutoMigrate(&Account{}))
		must(t, db.Create(&Account{Owner: "a", Balance: 10}).Error)
		db.Dialector = renamed{db.Dialector}
		p := plugin.New(plugin.Config{Logger: quiet, WithoutCatalog: opt})
		must(t, db.Use(p))
		t.Cleanup(func() { p.Close() })
		readID(t, db, 1)
		if hit := hitOf(t, p, func() { readID(t, db, 1) }); hit != opt {
			t.Fatalf("WithoutCatalog %v: hit %v (bypasses %v)", opt, hit, p.Stats().Bypasses)
		}
	}
}

// renamed is a dialector the plugin does not know by name.
type renamed struct{ gorm.Dialector }

func (renamed) Name() string { return "othersql" }
