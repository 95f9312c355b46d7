package plugin_test

import (
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestDifferential runs one scenario of reads and writes against a plain
// *gorm.DB and a cached one, on every dialect and with PrepareStmt and
// SkipDefaultTransaction, and requires the same values, errors and
// RowsAffected from both. Every read runs twice on the cached database, so
// the second run is served from the cache; after every write every read is
// compared again, so a missed invalidation shows as a difference.
func TestDifferential(t *testing.T) {
	t.Parallel()
	variants := []struct {
		name  string
		cfg   func(c *gorm.Config)
		bytes bool // entries go through the serializer, as with a shared store
	}{
		{"default", func(*gorm.Config) {}, false},
		{"PrepareStmt", func(c *gorm.Config) { c.PrepareStmt = true }, false},
		{"SkipDefaultTransaction", func(c *gorm.Config) { c.SkipDefaultTransaction = true }, false},
		{"EncodedEntries", func(*gorm.Config) {}, true},
	}
	for _, dialect := range testdb.Dialects {
		for _, v := range variants {
			t.Run(dialect+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				open := func(cached bool) (*gorm.DB, *plugin.Plugin) {
					cfg := &gorm.Config{NowFunc: newClock().now, Logger: logger.Discard}
					v.cfg(cfg)
					db := testdb.Open(t, dialect, cfg)
					if err := seed(db); err != nil {
						t.Fatalf("seed: %v", err)
					}
					if !cached {
						return db, nil
					}
					pc := plugin.Config{}
					if v.bytes {
						pc.Store = testsupport.NewRecordingStore()
					}
					p := plugin.New(pc)
					if err := db.Use(p); err != nil {
						t.Fatalf("Use: %v", err)
					}
					t.Cleanup(func() { p.Close() })
					return db, p
				}
				plain, _ := open(false)
				cached, p := open(true)

				compareReads := func(after string) {
					t.Helper()
					for _, r := range reads {
						if !applies(r, dialect) {
							continue
						}
						want := r.run(plain)
						for i := 0; i < 2; i++ {
							got := r.run(cached)
							if ok, diff := same(want, got); !ok {
								t.Errorf("%s after %s (run %d): differs%s", r.name, after, i+1, diff)
							}
						}
					}
				}
				compareReads("seed")
				for _, w := range writes {
					if !applies(w, dialect) {
						continue
					}
					want, got := w.run(plain), w.run(cached)
					if ok, diff := same(want, got); !ok {
						t.Errorf("write %s: differs%s", w.name, diff)
					}
					compareReads(w.name)
				}
				st := p.Stats()
				t.Logf("stats: hits=%d misses=%d stores=%d invalidations=%d bypasses=%v", st.Hits, st.Misses, st.Stores, st.Invalidations, st.Bypasses)
				if st.Hits < 500 {
					t.Errorf("only %d hits: the cache is not serving the scenario", st.Hits)
				}
				if st.StoreErrors != 0 || st.CorruptEntries != 0 {
					t.Errorf("store errors %d, corrupt entries %d", st.StoreErrors, st.CorruptEntries)
				}
			})
		}
	}
}
