package memcachestore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/storetest"
)

var ctx = context.Background()

// sharedAddr is the memcached that scripts/services starts (run with -I 4m).
var sharedAddr = env("GORMCACHE_MEMCACHED", "127.0.0.1:11211")

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// client returns a client of the memcached at addr.
func client(addr string) *memcache.Client {
	mc := memcache.New(addr)
	mc.MaxIdleConns = 32
	return mc
}

// sharedClient returns a client of the shared memcached, or skips.
func sharedClient(t testing.TB) *memcache.Client {
	t.Helper()
	mc := client(sharedAddr)
	mc.Timeout = 2 * time.Second // generous: tests run in parallel under -race
	if err := mc.Ping(); err != nil {
		testdb.Unavailable(t, "memcached at "+sharedAddr, err)
	}
	return mc
}

// newStore returns a store with a fresh prefix on the shared memcached.
func newStore(t testing.TB, cfg memcachestore.Config) *memcachestore.Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = testdb.KeyPrefix("gctest:")
	}
	s, err := memcachestore.New(sharedClient(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, memcachestore.Config{})
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	mc := memcache.New(sharedAddr)
	for _, tt := range []struct {
		name  string
		cfg   memcachestore.Config
		field string // named in the error
	}{
		{"prefix with a space", memcachestore.Config{Prefix: "a b"}, "Prefix"},
		{"prefix with a newline", memcachestore.Config{Prefix: "a\n"}, "Prefix"},
		{"long prefix", memcachestore.Config{Prefix: strings.Repeat("p", 129)}, "Prefix"},
		{"negative MaxValueBytes", memcachestore.Config{MaxValueBytes: -1}, "MaxValueBytes"},
		{"negative Timeout", memcachestore.Config{Timeout: -time.Second}, "Timeout"},
		{"negative BreakerFailures", memcachestore.Config{BreakerFailures: -1}, "BreakerFailures"},
		{"negative BreakerCooldown", memcachestore.Config{BreakerCooldown: -time.Second}, "BreakerCooldown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := memcachestore.New(mc, tt.cfg)
			if !errors.Is(err, store.ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "memcachestore: ") || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New: err = %v, want a memcachestore: error wrapping ErrInvalidConfig about %s", err, tt.field)
			}
		})
	}
	if _, err := memcachestore.New(nil, memcachestore.Config{}); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := memcachestore.New(mc, memcachestore.Config{}); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if mc.Timeout != memcachestore.DefaultTimeout {
		t.Errorf("client Timeout = %v, want DefaultTimeout", mc.Timeout)
	}
	mc2 := memcache.New(sharedAddr)
	if _, err := memcachestore.New(mc2, memcachestore.Config{Timeout: 3 * time.Second}); err != nil || mc2.Timeout != 3*time.Second {
		t.Errorf("Config.Timeout not set on the client: %v, %v", mc2.Timeout, err)
	}
}

// TestKeys uses names memcached cannot take as keys: they are hashed, stay
// distinct, and work like any other.
func TestKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t, memcachestore.Config{})
	long := strings.Repeat("t", 300)
	tags := []string{
		long,
		long[:299] + "u", // differs only past the 250th byte
		"order items",
		"order\titems",
		"line\nbreak",
		"naïve",
		"#hash",
		"plain",
		store.GlobalTag,
	}
	before := storetest.Versions(t, s, tags...)
	again := storetest.Versions(t, s, tags...)
	for i := range tags {
		if before[i] == 0 || before[i] != again[i] {
			t.Fatalf("tag %q: versions %d then %d", tags[i], before[i], again[i])
		}
	}
	for i, tag := range tags {
		if _, err := s.Bump(ctx, []string{tag}, 0); err != nil {
			t.Fatalf("Bump(%q): %v", tag, err)
		}
		after := storetest.Versions(t, s, tags...)
		for j := range tags {
			changed := after[j] != before[j]
			if changed != (i == j) {
				t.Fatalf("bump of %q: tag %q changed = %v", tag, tags[j], changed)
			}
		}
		before = after
	}
	// Holds on hashed names.
	lease, err := s.Bump(ctx, tags[:3], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, s, tags[:4]...); v[0] != 0 || v[1] != 0 || v[2] != 0 || v[3] == 0 {
		t.Fatalf("held hashed tags read %v", v)
	}
	if err := s.Release(ctx, tags[:3], lease); err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, s, tags[:3]...); v[0] == 0 || v[1] == 0 || v[2] == 0 {
		t.Fatalf("released hashed tags read %v", v)
	}
	// Entry keys too.
	for i, k := range []string{long, long[:299] + "u", "a key with spaces", "\x00\x01"} {
		val := []byte{byte(i)}
		if err := s.Set(ctx, k, val, time.Minute); err != nil {
			t.Fatalf("Set(%.20q): %v", k, err)
		}
		if b, err := s.Get(ctx, k, nil, nil); err != nil || !bytes.Equal(b, val) {
			t.Fatalf("Get(%.20q) = %v, %v", k, b, err)
		}
	}
	if b, _ := s.Get(ctx, long, nil, nil); !bytes.Equal(b, []byte{0}) {
		t.Fatalf("two long keys that differ past 250 bytes share an entry: %v", b)
	}
}

func TestTTLs(t *testing.T) {
	t.Parallel()
	s := newStore(t, memcachestore.Config{})
	// 31 days is past memcached's 30-day limit for relative expirations:
	// sent as seconds it would mean January 1970 and expire at once.
	for name, ttl := range map[string]time.Duration{
		"none": 0, "negative": -time.Second, "30 days": 30 * 24 * time.Hour,
		"31 days": 31 * 24 * time.Hour, "10 years": 10 * 365 * 24 * time.Hour,
	} {
		if err := s.Set(ctx, name, []byte(name), ttl); err != nil {
			t.Fatal(err)
		}
		if b, err := s.Get(ctx, name, nil, nil); err != nil || string(b) != name {
			t.Errorf("TTL %s (%v): Get = %q, %v", name, ttl, b, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	big := make([]byte, 2<<20)
	s := newStore(t, memcachestore.Config{})
	if err := s.Set(ctx, "big", big, time.Minute); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("2 MiB with the default limit: err = %v, want ErrTooLarge", err)
	}
	if err := s.Set(ctx, "limit", make([]byte, memcachestore.DefaultMaxValueBytes), time.Minute); err != nil {
		t.Fatalf("a value of DefaultMaxValueBytes: %v", err)
	}
	// The shared server runs with -I 4m.
	s = newStore(t, memcachestore.Config{MaxValueBytes: 3 << 20})
	if err := s.Set(ctx, "big", big, time.Minute); err != nil {
		t.Fatalf("2 MiB with a 3 MiB limit: %v", err)
	}
	if b, err := s.Get(ctx, "big", nil, nil); err != nil || len(b) != len(big) {
		t.Fatalf("Get(big) = %d bytes, %v", len(b), err)
	}
	// A limit above the server's: the server's refusal is ErrTooLarge too,
	// and not a failure of the server.
	s = newStore(t, memcachestore.Config{MaxValueBytes: 8 << 20})
	if err := s.Set(ctx, "huge", make([]byte, 5<<20), time.Minute); !errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("5 MiB on a -I 4m server: err = %v, want ErrTooLarge", err)
	}
	if st := s.Stats(); st.Errors != 0 || st.TooLarge != 1 {
		t.Fatalf("stats after a server-side refusal: %+v", st)
	}
	if err := s.Set(ctx, "after", []byte("x"), time.Minute); err != nil {
		t.Fatalf("Set after a refusal: %v", err)
	}
}

// TestSharedPrefix runs two stores, with their own clients, on one prefix:
// what one does, the other sees, as two application instances would.
func TestSharedPrefix(t *testing.T) {
	t.Parallel()
	prefix := testdb.KeyPrefix("gctest:")
	a := newStore(t, memcachestore.Config{Prefix: prefix})
	b := newStore(t, memcachestore.Config{Prefix: prefix})

	// Concurrent first reads of a new tag agree on its version.
	const readers = 16
	got := make([]uint64, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			v := make([]uint64, 1)
			if err := s.Versions(ctx, []string{"fresh"}, v); err != nil {
				t.Error(err)
			}
			got[i] = v[0]
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] == 0 || got[i] != got[0] {
			t.Fatalf("concurrent creators disagree: %v", got)
		}
	}
	if created := a.Stats().VersionsCreated + b.Stats().VersionsCreated; created != 1 {
		t.Errorf("%d records created for one tag", created)
	}

	lease, err := a.Bump(ctx, []string{"users"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, b, "users"); v[0] != 0 {
		t.Fatalf("a hold through one store reads %d through the other", v[0])
	}
	if err := b.Release(ctx, []string{"users"}, lease); err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, a, "users"); v[0] == 0 {
		t.Fatal("still held after a release through the other store")
	}
}

// TestHoldLinearizable checks the property holds exist for, under
// concurrency: between the return of a held Bump and the call of its
// Release, every reader reads 0; and a reader's successive versions never go
// back (a record only grows while memcached keeps it).
func TestHoldLinearizable(t *testing.T) {
	t.Parallel()
	prefix := testdb.KeyPrefix("gctest:")
	w := newStore(t, memcachestore.Config{Prefix: prefix})
	var (
		phase atomic.Int64 // odd while held
		stop  atomic.Bool
		reads atomic.Int64
		wg    sync.WaitGroup
	)
	for range 4 {
		s := newStore(t, memcachestore.Config{Prefix: prefix})
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]uint64, 2)
			var last uint64
			seen := map[uint64]bool{} // versions are random: none may come back
			for !stop.Load() {
				p1 := phase.Load()
				if err := s.Versions(ctx, []string{"hot", "other"}, v); err != nil {
					t.Error(err)
					return
				}
				p2 := phase.Load()
				reads.Add(1)
				if p1 == p2 && p1%2 == 1 && v[0] != 0 {
					t.Errorf("read version %d while held (phase %d)", v[0], p1)
					return
				}
				if v[1] == 0 {
					t.Error("unheld tag read 0")
					return
				}
				if v[0] != 0 {
					if v[0] != last && seen[v[0]] {
						t.Errorf("read version %d again after %d", v[0], last)
						return
					}
					seen[v[0]], last = true, v[0]
				}
			}
		}()
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		lease, err := w.Bump(ctx, []string{"hot"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		phase.Add(1) // held
		time.Sleep(time.Millisecond)
		phase.Add(1) // about to release
		if err := w.Release(ctx, []string{"hot"}, lease); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d hold cycles, %d reads; writer stats %+v", phase.Load()/2, reads.Load(), w.Stats())
}

// TestOverlappingHoldsConcurrent runs writers that hold one tag with
// overlapping leases; when all are released the tag reads unheld, and the
// record lists no lease (so reads are one round trip again).
func TestOverlappingHoldsConcurrent(t *testing.T) {
	t.Parallel()
	prefix := testdb.KeyPrefix("gctest:")
	s := newStore(t, memcachestore.Config{Prefix: prefix})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				lease, err := s.Bump(ctx, []string{"t", "u"}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if v := storetest.Versions(t, s, "t", "u"); v[0] != 0 || v[1] != 0 {
					t.Errorf("held tags read %v", v)
				}
				if err := s.Release(ctx, []string{"t", "u"}, lease); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v := storetest.Versions(t, s, "t", "u"); v[0] == 0 || v[1] == 0 {
		t.Fatalf("all leases released, tags read %v", v)
	}
	for _, tag := range []string{"t", "u"} {
		it, err := sharedClient(t).Get(prefix + "v:" + tag)
		if err != nil || bytes.ContainsRune(it.Value, ' ') {
			t.Errorf("record of %s after all releases: %q, %v; want a version alone", tag, it.Value, err)
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s := newStore(t, memcachestore.Config{})
	_ = s.Close()
	v := make([]uint64, 1)
	for name, err := range map[string]error{
		"Set":      s.Set(ctx, "k", []byte("v"), time.Minute),
		"Versions": s.Versions(ctx, []string{"t"}, v),
		"Delete":   s.Delete(ctx, "k"),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.Get(ctx, "k", nil, nil); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	s := newStore(t, memcachestore.Config{})
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(c, "k", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if st := s.Stats(); st.Errors != 0 {
		t.Fatalf("a cancelled context counted as a store failure: %+v", st)
	}
}
