package redisstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkGetHit compares a hit (an entry of 1 KiB and the versions of 2
// tags, one round trip) with a bare GET of the same bytes, on the shared
// single Redis. Target: hit ≤ 1.3× bare GET.
func BenchmarkGetHit(b *testing.B) {
	for _, bc := range []struct {
		name string
		opt  redis.Options
	}{
		{"ClientIgnoresDeadlines", redis.Options{}},
		{"ClientHonoursDeadlines", redis.Options{ContextTimeoutEnabled: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opt := bc.opt
			rdb := singleClient(b, &opt)
			s := newTestStore(b, rdb, Config{Timeout: time.Second})
			val := bytes.Repeat([]byte("r"), 1024)
			tags := []string{"bench1", "bench2"}
			v := make([]uint64, len(tags))
			if err := s.Set(bg, "bench", val, time.Hour); err != nil {
				b.Fatal(err)
			}
			if got, err := s.Get(bg, "bench", tags, v); err != nil || !bytes.Equal(got, val) {
				b.Fatalf("Get = %d bytes, %v", len(got), err)
			}
			raw := s.keys.entry("bench")

			b.Run("StoreGet", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					got, err := s.Get(bg, "bench", tags, v)
					if err != nil || len(got) != len(val) || v[0] == 0 {
						b.Fatalf("Get = %d bytes, %v, %v", len(got), v, err)
					}
				}
			})
			// Both in turn, so that the load of a shared machine weighs on
			// both alike: reports the ratio of their times.
			b.Run("Interleaved", func(b *testing.B) {
				var hit, bare time.Duration
				for b.Loop() {
					t0 := time.Now()
					if got, err := s.Get(bg, "bench", tags, v); err != nil || len(got) != len(val) {
						b.Fatalf("Get = %d bytes, %v", len(got), err)
					}
					t1 := time.Now()
					if got, err := rdb.Get(bg, raw).Bytes(); err != nil || len(got) != len(val) {
						b.Fatalf("GET = %d bytes, %v", len(got), err)
					}
					hit, bare = hit+t1.Sub(t0), bare+time.Since(t1)
				}
				b.ReportMetric(float64(hit.Nanoseconds())/float64(b.N), "hit-ns/op")
				b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/op")
				b.ReportMetric(float64(hit)/float64(bare), "hit/bare")
			})
			b.Run("BareGet", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					got, err := rdb.Get(bg, raw).Bytes()
					if err != nil || len(got) != len(val) {
						b.Fatalf("GET = %d bytes, %v", len(got), err)
					}
				}
			})
		})
	}
}
