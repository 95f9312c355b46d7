package memstore

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Row tags set over RowTagTTL ago are dropped once the store holds many
// tags; table tags, recent row tags and held ones stay; a dropped tag reads
// as a new version.
func TestRowTagsSwept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close() // (otter's goroutines end with the bubble)
		ctx := context.Background()
		v := make([]uint64, 1)
		version := func(tag string) uint64 {
			if err := s.Versions(ctx, []string{tag}, v); err != nil {
				t.Fatal(err)
			}
			return v[0]
		}
		old := version("users\x1fid=i1")
		table := version("users")
		if _, err := s.Bump(ctx, []string{"users\x1fid=i2"}, 3*time.Hour); err != nil {
			t.Fatal(err)
		}
		for i := 3; i < minSweep; i++ {
			version(fmt.Sprintf("users\x1fid=i%d", i))
		}
		time.Sleep(RowTagTTL + time.Minute)
		fresh := version("users\x1fid=i999999") // a new tag: the sweep runs
		s.mu.RLock()
		n := len(s.tags)
		s.mu.RUnlock()
		if n != 3 { // users, the held row, the fresh one
			t.Fatalf("%d tags after the sweep, want 3", n)
		}
		if version("users") != table {
			t.Fatal("a table tag was dropped")
		}
		if got := version("users\x1fid=i1"); got == old || got == 0 {
			t.Fatalf("a dropped row tag reads %d, want a new version (was %d)", got, old)
		}
		if version("users\x1fid=i999999") != fresh {
			t.Fatal("a recent row tag was dropped")
		}
	})
}
