package plugin_test

// A hit answers as the database and plain GORM would: the same values, the
// same conversions and the same errors as a miss.

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

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
