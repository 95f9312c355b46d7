package memcachestore_test

import (
	"testing"
	"time"

	"github.com/gormcache/gormcache/store/memcachestore"
)

func BenchmarkGet(b *testing.B) {
	s := newStore(b, memcachestore.Config{})
	val := make([]byte, 4096)
	if err := s.Set(ctx, "k", val, time.Minute); err != nil {
		b.Fatal(err)
	}
	tags := []string{"users", "orders"}
	v := make([]uint64, len(tags))
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "k", tags, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	lease, err := s.Bump(ctx, tags[:1], time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Release(ctx, tags[:1], lease)
	b.Run("held", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "k", tags, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBump(b *testing.B) {
	s := newStore(b, memcachestore.Config{})
	for _, tt := range []struct {
		name string
		tags []string
	}{{"1 tag", []string{"users"}}, {"3 tags", []string{"users", "orders", "items"}}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Bump(ctx, tt.tags, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+" hold+release", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				lease, err := s.Bump(ctx, tt.tags, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Release(ctx, tt.tags, lease); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
