package plugin_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
)

// TestNotFoundIsCached: First, Take and Last of a missing row are cached
// like any empty result (the classic way to hammer a database through its
// cache is to look up ids that do not exist), give ErrRecordNotFound on a
// hit too, and are invalidated by the insert that creates the row.
func TestNotFoundIsCached(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			for _, tc := range []struct {
				name string
				find func(*Account) *gorm.DB
			}{
				{"First", func(a *Account) *gorm.DB { return db.First(a, 999) }},
				{"Take", func(a *Account) *gorm.DB { return db.Where("owner = ?", "nobody").Take(a) }},
				{"Last", func(a *Account) *gorm.DB { return db.Where("balance > ?", 1000).Last(a) }},
			} {
				before := p.Stats()
				for i := range 2 {
					var a Account
					if err := tc.find(&a).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
						t.Fatalf("%s, read %d: %v, want ErrRecordNotFound", tc.name, i+1, err)
					}
				}
				if after := p.Stats(); after.Hits != before.Hits+1 || after.Stores != before.Stores+1 {
					t.Fatalf("%s of a missing row was not cached: %d hits, %d stores (before %d, %d)",
						tc.name, after.Hits, after.Stores, before.Hits, before.Stores)
				}
			}
			if err := db.Create(&Account{ID: 999, Owner: "late", Balance: 5}).Error; err != nil {
				t.Fatal(err)
			}
			var a Account
			if err := db.First(&a, 999).Error; err != nil || a.Owner != "late" {
				t.Fatalf("after the insert: %+v, %v", a, err)
			}
		})
	}
}

// TestNotFoundOptions: SkipEmpty stores no empty result; EmptyTTL gives
// them a shorter life.
func TestNotFoundOptions(t *testing.T) {
	t.Parallel()
	t.Run("SkipEmpty", func(t *testing.T) {
		t.Parallel()
		db, p := cachedDB(t, "sqlite", plugin.Config{SkipEmpty: true})
		for range 2 {
			var a Account
			if err := db.First(&a, 999).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
				t.Fatal(err)
			}
		}
		if st := p.Stats(); st.Hits != 0 || st.Bypasses["empty"] != 2 {
			t.Fatalf("SkipEmpty: %+v", st)
		}
	})
	t.Run("EmptyTTL", func(t *testing.T) {
		t.Parallel()
		db, p := cachedDB(t, "sqlite", plugin.Config{EmptyTTL: 50 * time.Millisecond})
		read := func() {
			var a Account
			if err := db.First(&a, 999).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
				t.Fatal(err)
			}
		}
		read()
		read()
		if p.Stats().Hits != 1 {
			t.Fatalf("not cached: %+v", p.Stats())
		}
		readID(t, db, 1)
		time.Sleep(200 * time.Millisecond)
		read()
		if got := readID(t, db, 1); got != 10 {
			t.Fatal(got)
		}
		if st := p.Stats(); st.Hits != 2 || st.Misses != 3 {
			t.Fatalf("after EmptyTTL: %d hits, %d misses; want the empty result expired (a miss), the other one kept (a hit)", st.Hits, st.Misses)
		}
	})
	if err := plugin.New(plugin.Config{EmptyTTL: -time.Second}).Initialize(nil); err == nil {
		t.Fatal("a negative EmptyTTL was accepted")
	}
}
