package tiered

import (
	"testing"
	"time"

	"github.com/gormcache/gormcache/store"
)

// BenchmarkHit compares a hit served from L1 with the same hit on a bare
// memstore (the in-process default), which has no second level to keep in
// step with.
func BenchmarkHit(b *testing.B) {
	tags := []string{"users", store.GlobalTag}
	type entry struct{ rows int }
	for _, bc := range []struct {
		name string
		new  func(b *testing.B) store.ValueStore
	}{
		{"memstore", func(b *testing.B) store.ValueStore { return newL2(b) }},
		{"tiered", func(b *testing.B) store.ValueStore {
			return newTiered(b, newL2(b), Config{
				Bus:    NewLocalBus(),
				Encode: func(any) ([]byte, error) { return []byte("rows"), nil },
				Decode: func([]byte) (any, error) { return &entry{1}, nil },
			})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.new(b)
			v := make([]uint64, len(tags))
			_, _ = s.GetValue(bg, "k", tags, v)
			if err := s.SetValue(bg, "k", &entry{1}, 64, time.Minute); err != nil {
				b.Fatal(err)
			}
			_, _ = s.GetValue(bg, "k", tags, v) // a first read may verify against L2
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				v := make([]uint64, len(tags))
				for pb.Next() {
					x, err := s.GetValue(bg, "k", tags, v)
					if err != nil || x == nil {
						b.Fatalf("GetValue = %v, %v", x, err)
					}
				}
			})
		})
	}
}
