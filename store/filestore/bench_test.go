package filestore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/redisprefix"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/filestore"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// redisAddr is the Redis the comparison runs against, when it answers.
var redisAddr = func() string {
	if a := os.Getenv("GORMCACHE_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}()

// benchStores returns the stores compared: the memory store, this one, and
// the Redis store when a Redis answers at redisAddr.
func benchStores(b *testing.B) []struct {
	name string
	s    store.Store
} {
	mem, err := memstore.New(memstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	file := newStore(b, filestore.Config{SweepInterval: -1})
	stores := []struct {
		name string
		s    store.Store
	}{{"memstore", mem}, {"filestore", file}}

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := rdb.Ping(c).Err(); err != nil {
		rdb.Close()
		b.Logf("no Redis at %s: %v", redisAddr, err)
		return stores
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	prefix := "bench:" + hex.EncodeToString(r[:]) + ":"
	rs, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		rs.Close()
		// The tags' version keys have no TTL: remove everything under the
		// benchmark's own prefix.
		if _, err := redisprefix.Delete(ctx, rdb, prefix); err != nil {
			b.Logf("delete the keys under %q: %v", prefix, err)
		}
		rdb.Close()
	})
	return append(stores, struct {
		name string
		s    store.Store
	}{"redisstore", rs})
}

// BenchmarkStores compares a hit (the entry and the versions of 2 tags) and
// a Set, for entries of 1 KiB and 16 KiB:
//
//	go test -run '^$' -bench Stores -benchmem ./store/filestore/
func BenchmarkStores(b *testing.B) {
	tags := []string{"users", "orders"}
	for _, st := range benchStores(b) {
		for _, size := range []struct {
			name string
			n    int
		}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}} {
			val := bytes.Repeat([]byte("r"), size.n)
			key := "bench-" + size.name
			b.Run(st.name+"/"+size.name+"/GetHit", func(b *testing.B) {
				if err := st.s.Set(ctx, key, val, time.Hour); err != nil {
					b.Fatal(err)
				}
				v := make([]uint64, len(tags))
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				for b.Loop() {
					got, err := st.s.Get(ctx, key, tags, v)
					if err != nil || len(got) != size.n || v[0] == 0 {
						b.Fatalf("Get = %d bytes, %v, %v", len(got), v, err)
					}
				}
			})
			b.Run(st.name+"/"+size.name+"/Set", func(b *testing.B) {
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				for b.Loop() {
					if err := st.s.Set(ctx, key, val, time.Hour); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBump measures a bump of one tag, and a hold with its release.
func BenchmarkBump(b *testing.B) {
	s := newStore(b, filestore.Config{SweepInterval: -1})
	tags := []string{"users"}
	b.Run("Bump", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Bump(ctx, tags, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("HoldRelease", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			lease, err := s.Bump(ctx, tags, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Release(ctx, tags, lease); err != nil {
				b.Fatal(err)
			}
		}
	})
}
