package memstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := memstore.New(memstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNegativeMaxBytes(t *testing.T) {
	t.Parallel()
	_, err := memstore.New(memstore.Config{MaxBytes: -1})
	if !errors.Is(err, store.ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "memstore: ") || !strings.Contains(err.Error(), "MaxBytes") {
		t.Fatalf("MaxBytes -1: err = %v, want a memstore: error about MaxBytes wrapping ErrInvalidConfig", err)
	}
}

func TestBoundedByBytes(t *testing.T) {
	t.Parallel()
	s, err := memstore.New(memstore.Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 10<<10)
	for i := 0; i < 1000; i++ { // 10 MB into a 1 MB store
		_ = s.Set(context.Background(), string(rune('a'+i%26))+time.Duration(i).String(), val, time.Minute)
	}
	// Eviction runs asynchronously (otter's maintenance): on a loaded
	// machine it may take a while, but it must happen.
	for deadline := time.Now().Add(10 * time.Second); s.Len() > 110; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries of 10 KiB held in a 1 MiB store", s.Len())
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, _ := memstore.New(memstore.Config{})
	_ = s.Close()
	if err := s.Set(context.Background(), "k", []byte("v"), time.Minute); err == nil {
		t.Fatal("Set after Close: no error")
	}
}

// Concurrent first reads of a tag all get its version, never 0 (the loser
// of the race to create it used to read 0, "held", and skip the cache).
func TestConcurrentFirstReadsNeverZero(t *testing.T) {
	for round := 0; round < 200; round++ {
		s, err := memstore.New(memstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		zero := make(chan struct{}, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := make([]uint64, 1)
				if err := s.Versions(context.Background(), []string{"fresh"}, v); err != nil || v[0] == 0 {
					zero <- struct{}{}
				}
			}()
		}
		wg.Wait()
		s.Close()
		if len(zero) > 0 {
			t.Fatalf("round %d: %d first reads saw version 0", round, len(zero))
		}
	}
}

// TestExpiryOnFakeClock runs an entry's TTL and a hold's duration out on
// synctest's clock: both end exactly when they should, with no sleeping.
func TestExpiryOnFakeClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, err := memstore.New(memstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bump(ctx, []string{"t"}, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		read := func() ([]byte, uint64) {
			t.Helper()
			v := make([]uint64, 1)
			b, err := s.Get(ctx, "k", []string{"t"}, v)
			if err != nil {
				t.Fatal(err)
			}
			return b, v[0]
		}
		time.Sleep(10*time.Minute - time.Nanosecond)
		if b, v := read(); string(b) != "v" || v != 0 {
			t.Fatalf("before the hold ends: %q, version %d; want the entry and a held tag (0)", b, v)
		}
		time.Sleep(time.Nanosecond)
		if _, v := read(); v == 0 {
			t.Fatal("the hold outlived its duration")
		}
		time.Sleep(50*time.Minute - time.Nanosecond)
		if b, _ := read(); string(b) != "v" {
			t.Fatalf("before the TTL: %q, want the entry", b)
		}
		time.Sleep(time.Nanosecond)
		if b, _ := read(); b != nil {
			t.Fatalf("after the TTL: %q, want a miss", b)
		}
	})
}
