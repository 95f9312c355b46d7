package viewcache_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/gormcache/gormcache/viewcache"
	"github.com/redis/go-redis/v9"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// TestStores: the same page, hit, invalidated and varied, on every store:
// the memstore (records kept as Go values), the memstore behind a wrapper
// that hides its ValueStore side (records encoded), Memcached and Redis.
func TestStores(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		name string
		make func(t *testing.T) store.Store
	}{
		{"memstore", func(t *testing.T) store.Store { return nil }},
		{"bytes", func(t *testing.T) store.Store {
			ms, _ := memstore.New(memstore.Config{})
			return testsupport.BytesStore{Store: ms}
		}},
		{"memcached", func(t *testing.T) store.Store {
			addr := envOr("GORMCACHE_MEMCACHED", "127.0.0.1:11211")
			mc := memcache.New(addr)
			mc.Timeout = 2 * time.Second
			mc.MaxIdleConns = 16
			if err := mc.Ping(); err != nil {
				testdb.Unavailable(t, "memcached at "+addr, err)
			}
			s, err := memcachestore.New(mc, memcachestore.Config{Prefix: testdb.KeyPrefix("vctest-mc-"), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"redis", func(t *testing.T) store.Store {
			addr := envOr("GORMCACHE_REDIS", "127.0.0.1:6379")
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			if err := rdb.Ping(bg).Err(); err != nil {
				rdb.Close()
				testdb.Unavailable(t, "redis at "+addr, err)
			}
			prefix := testdb.KeyPrefix("vctest-redis-")
			testdb.CleanRedis(t, redis.UniversalOptions{Addrs: []string{addr}}, prefix)
			s, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(); rdb.Close() })
			return s
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{store: k.make(t), cfg: viewcache.Config{StoreTimeout: 2 * time.Second}})
			e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
			e.mux.Handle("GET /big", e.c.Page(e.list("big"), viewcache.Tags("authors"))) // compressed on byte stores
			e.db.Create(&Article{Title: strings.Repeat("long title ", 300)})

			for _, path := range []string{"/articles", "/big?x=1"} {
				first := e.get(path)
				mustMiss(t, path, first, "stored")
				r := e.get(path)
				mustHit(t, path, r)
				if r.body != first.body {
					t.Fatalf("%s: hit body differs", path)
				}
			}
			e.db.Create(&Article{Title: "new"})
			if r := e.get("/articles"); r.hit() || !strings.HasSuffix(r.body, "new") {
				t.Fatalf("after a write: %q", r.cacheStatus())
			}
			mustHit(t, "/articles", e.get("/articles"))
			e.get("/big?x=1")
			mustHit(t, "/big", e.get("/big?x=1"))
			if err := e.p.Invalidate(bg, "authors"); err != nil {
				t.Fatal(err)
			}
			mustMiss(t, "/big after Invalidate(authors)", e.get("/big?x=1"), "fwd=stale")
			if st := e.c.Stats(); st.StoreErrors != 0 || st.Corrupt != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestCorruptEntry: an entry that does not decode is a miss, counted, and
// replaced by the next response.
func TestCorruptEntry(t *testing.T) {
	t.Parallel()
	ms, _ := memstore.New(memstore.Config{})
	rs := &testsupport.RecordingStore{Store: ms}
	e := newEnv(t, envOptions{store: rs})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
	e.get("/articles")
	keys := rs.SetKeys()
	if len(keys) == 0 {
		t.Fatal("nothing stored")
	}
	key := keys[len(keys)-1]
	for _, garbage := range [][]byte{{0x01, 0xff, 0x00}, {0x7f, 0x90}, []byte("not an entry at all")} {
		if err := ms.Set(bg, key, garbage, time.Minute); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, "corrupt", e.get("/articles"), "stored")
		mustHit(t, "replaced", e.get("/articles"))
	}
	if st := e.c.Stats(); st.Corrupt != 3 {
		t.Fatalf("Corrupt = %d, want 3", st.Corrupt)
	}
}

// TestFormerFormatEntry: records that the format before the shared
// envelope wrote (testdata/format-1.hex) in a shared store are a miss,
// counted as corrupt, and replaced by the next response.
func TestFormerFormatEntry(t *testing.T) {
	t.Parallel()
	ms, _ := memstore.New(memstore.Config{})
	rs := &testsupport.RecordingStore{Store: ms}
	e := newEnv(t, envOptions{store: rs})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
	want := e.get("/articles").body
	keys := rs.SetKeys()
	if len(keys) == 0 {
		t.Fatal("nothing stored")
	}
	key := keys[len(keys)-1]
	n := 0
	for _, old := range testsupport.HexLines(t, "testdata/format-1.hex") {
		if err := ms.Set(bg, key, old, time.Minute); err != nil {
			t.Fatal(err)
		}
		r := e.get("/articles")
		mustMiss(t, "former format", r, "stored")
		if r.body != want {
			t.Fatalf("former format: served %q, want %q", r.body, want)
		}
		mustHit(t, "replaced", e.get("/articles"))
		n++
	}
	if st := e.c.Stats(); st.Corrupt != uint64(n) || n != 4 {
		t.Fatalf("Corrupt = %d, want %d (of 4 records)", st.Corrupt, n)
	}
}
