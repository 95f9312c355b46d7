package plugin_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Regression tests for bugs found in review; each failed before its fix.

// A hit with a done context fails as the database would.
func TestHitWithCancelledContext(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "sqlite", plugin.Config{})
	account(t, db, 1)
	account(t, db, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var a Account
	if err := db.WithContext(ctx).First(&a, 1).Error; !errors.Is(err, context.Canceled) {
		t.Fatalf("hit with a cancelled context: err = %v, want context.Canceled", err)
	}
}

var errPicky = errors.New("picky refuses")

type Picky struct{}

func (*Picky) Scan(any) error              { return errPicky }
func (Picky) Value() (driver.Value, error) { return "x", nil }

type PickyAccount struct {
	ID    uint
	Owner Picky
}

func (PickyAccount) TableName() string { return "accounts" }

// A Scanner's error keeps its identity on a hit (errors.Is), as on a miss.
func TestScanErrorWrappedOnHit(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "sqlite", plugin.Config{})
	for i, what := range []string{"miss", "hit"} {
		var a PickyAccount
		if err := db.First(&a, 1).Error; !errors.Is(err, errPicky) {
			t.Fatalf("%s (%d): err = %v, want one wrapping errPicky", what, i, err)
		}
	}
}

type Blob struct {
	ID   uint
	Data []byte
}

// An empty, non-NULL []byte stays empty (not nil) on a hit.
func TestEmptyBytesStayEmpty(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
			db.AutoMigrate(&Blob{})
			db.Create(&Blob{ID: 1, Data: []byte{}})
			p := plugin.New(plugin.Config{Logger: quiet})
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := 0; i < 2; i++ {
				var b Blob
				db.First(&b, 1)
				var raw []byte
				if err := db.Raw("SELECT data FROM blobs WHERE id = 1").Row().Scan(&raw); err != nil {
					t.Fatal(err)
				}
				if b.Data == nil || raw == nil {
					t.Fatalf("run %d: empty bytes came back nil (struct %v, row %v)", i, b.Data == nil, raw == nil)
				}
			}
			if p.Stats().Hits < 2 {
				t.Fatalf("not served from the cache: %+v", p.Stats())
			}
		})
	}
}

// A closed plugin on a store it does not own still invalidates that store
// on writes: other processes read it.
func TestClosedPluginStillBumpsSharedStore(t *testing.T) {
	t.Parallel()
	ms, _ := memstore.New(memstore.Config{})
	db1, p1 := cachedDB(t, "sqlite", plugin.Config{Store: ms})
	sqlDB, _ := db1.DB()
	db2, err := gorm.Open(db1.Dialector, &gorm.Config{Logger: logger.Discard, ConnPool: sqlDB})
	if err != nil {
		t.Fatal(err)
	}
	p2 := plugin.New(plugin.Config{Store: ms, Logger: quiet})
	if err := db2.Use(p2); err != nil {
		t.Fatal(err)
	}
	account(t, db2, 1)
	account(t, db2, 1)
	p1.Close()
	db1.Model(&Account{}).Where("id = 1").Update("balance", 777)
	if a := account(t, db2, 1); a.Balance != 777 {
		t.Fatalf("after a write through a closed instance: balance %d, want 777", a.Balance)
	}
}

// Several result sets pass through, and are not cached.
func TestMultiResultSets(t *testing.T) {
	t.Parallel()
	d := testdb.Fresh(t, "mysql").(*mysql.Dialector)
	db, err := gorm.Open(mysql.Open(d.DSN+"&multiStatements=true"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	db.AutoMigrate(&Account{})
	db.Create(&Account{Owner: "a", Balance: 1})
	sets := func() int {
		rows, err := db.Raw("SELECT id FROM accounts; SELECT owner FROM accounts").Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for {
			for rows.Next() {
			}
			n++
			if !rows.NextResultSet() {
				break
			}
		}
		return n
	}
	plain := sets()
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if miss, hit := sets(), sets(); miss != plain || hit != plain {
		t.Fatalf("result sets: plain %d, then %d and %d with the plugin", plain, miss, hit)
	}
	// a SELECT followed by a write, read through Rows: the write invalidates
	account(t, db, 1)
	rows, err := db.Raw("SELECT id FROM accounts WHERE id = 1; UPDATE accounts SET balance = 77 WHERE id = 1").Rows()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.NextResultSet()
	rows.Close()
	if a := account(t, db, 1); a.Balance != 77 {
		t.Fatalf("after SELECT; UPDATE: balance %d, want 77", a.Balance)
	}
}

// Conversions the fast path does itself must equal database/sql's, errors
// included (those go through database/sql).
func TestFastPathConversions(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	type row struct {
		N  float64
		NP *float64
		B  bool
		BP *bool
	}
	queries := []string{
		"SELECT 1.25::numeric AS n, NULL::numeric AS np, true AS b, NULL::bool AS bp",
		"SELECT '1e400'::text AS n, '2.5'::numeric AS np, false AS b, false AS bp",
		"SELECT 'abc'::text AS n, 3::numeric AS np, true AS b, true AS bp",
		"SELECT 0 AS n, 1 AS np, true AS b, true AS bp",
	}
	// The queries read no table: one plain database serves them all.
	plainDB := testdb.Open(t, "postgres", &gorm.Config{Logger: logger.Discard})
	for _, q := range queries {
		var plain []row
		perr := plainDB.Raw(q).Find(&plain).Error
		for i := 0; i < 2; i++ {
			var got []row
			err := db.Raw(q).Find(&got).Error
			if (err == nil) != (perr == nil) || (err != nil && err.Error() != perr.Error()) {
				t.Fatalf("%s run %d: err %v, plain %v", q, i, err, perr)
			}
			if err == nil && fmt.Sprint(deref(got)) != fmt.Sprint(deref(plain)) {
				t.Fatalf("%s run %d: %+v, plain %+v", q, i, got, plain)
			}
		}
	}
	if p.Stats().Hits == 0 {
		t.Fatal("no hits")
	}
}

// deref shows the values behind a row's pointers.
func deref(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
