package lowlevel_test

import (
	"context"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/store"
)

func benchStores(b *testing.B, fn func(b *testing.B, c *lowlevel.Cache)) {
	for _, k := range []struct {
		name string
		make func(b *testing.B) store.Store
	}{
		{"memstore", func(b *testing.B) store.Store { return newMem(b) }},
		{"bytes", func(b *testing.B) store.Store { return testsupport.BytesStore{Store: newMem(b)} }},
	} {
		b.Run(k.name, func(b *testing.B) {
			c, err := lowlevel.NewWithStore(k.make(b), lowlevel.Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			fn(b, c)
		})
	}
}

func BenchmarkGetHit(b *testing.B) {
	benchStores(b, func(b *testing.B, c *lowlevel.Cache) {
		b.Run("Point", func(b *testing.B) {
			b.ReportAllocs()
			_ = lowlevel.Set(bg, c, "p", Point{X: 1, Y: 2}, time.Hour, "points")
			for b.Loop() {
				if _, ok, _ := lowlevel.Get[Point](bg, c, "p", "points"); !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run("Report", func(b *testing.B) {
			b.ReportAllocs()
			_ = lowlevel.Set(bg, c, "r", sample(), time.Hour, "orders")
			for b.Loop() {
				if _, ok, _ := lowlevel.Get[Report](bg, c, "r", "orders"); !ok {
					b.Fatal("miss")
				}
			}
		})
	})
}

func BenchmarkRememberHit(b *testing.B) {
	benchStores(b, func(b *testing.B, c *lowlevel.Cache) {
		fn := func(context.Context) (Point, error) { return Point{X: 1}, nil }
		for b.Loop() {
			if _, err := lowlevel.Remember(bg, c, "p", time.Hour, []string{"points"}, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSet(b *testing.B) {
	benchStores(b, func(b *testing.B, c *lowlevel.Cache) {
		for b.Loop() {
			if err := lowlevel.Set(bg, c, "r", sample(), time.Hour, "orders"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkIncr(b *testing.B) {
	benchStores(b, func(b *testing.B, c *lowlevel.Cache) {
		_ = lowlevel.Set(bg, c, "n", 0, time.Hour)
		for b.Loop() {
			if _, err := c.Incr(bg, "n", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
