// Package storetest is the conformance suite every gormcache store passes,
// in the manner of testing/slogtest: call [Run] from a backend's tests with a
// function that returns a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/store"
)

// Run runs the suite. newStore must return a store that shares nothing with
// stores returned earlier (a fresh prefix on a shared server is enough).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"SetGet", testSetGet},
		{"TTL", testTTL},
		{"Delete", testDelete},
		{"VersionsKnownAfterFirstRead", testVersionsStable},
		{"BumpChangesVersions", testBump},
		{"VersionsNeverRepeat", testNeverRepeat},
		{"HoldReadsZeroUntilRelease", testHold},
		{"HoldExpires", testHoldExpires},
		{"OverlappingHolds", testOverlappingHolds},
		{"LengthMismatch", testLengthMismatch},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

// Versions returns the current versions of tags in s, failing t on error
// (for backends' own tests as well as the suite).
func Versions(t testing.TB, s store.Store, tags ...string) []uint64 {
	t.Helper()
	v := make([]uint64, len(tags))
	if err := s.Versions(ctx, tags, v); err != nil {
		t.Fatalf("Versions(%v): %v", tags, err)
	}
	return v
}

func testGetMissing(t *testing.T, s store.Store) {
	v := make([]uint64, 1)
	b, err := s.Get(ctx, "absent", []string{"t"}, v)
	if err != nil || b != nil {
		t.Fatalf("Get(absent) = %q, %v; want nil, nil", b, err)
	}
}

func testSetGet(t *testing.T, s store.Store) {
	val := []byte("hello\x00world")
	if err := s.Set(ctx, "k", val, time.Minute); err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, 2)
	b, err := s.Get(ctx, "k", []string{"a", "b"}, v)
	if err != nil || !bytes.Equal(b, val) {
		t.Fatalf("Get = %q, %v; want %q", b, err, val)
	}
	if err := s.Set(ctx, "k", []byte("new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Get(ctx, "k", nil, nil); string(b) != "new" {
		t.Fatalf("after overwrite Get = %q", b)
	}
	if err := s.Set(ctx, "empty", []byte{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(ctx, "empty", nil, nil); err != nil || b == nil || len(b) != 0 {
		t.Fatalf("empty value: Get = %#v, %v; want empty non-nil", b, err)
	}
}

func testTTL(t *testing.T, s store.Store) {
	if err := s.Set(ctx, "short", []byte("x"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "long", []byte("y"), time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := s.Get(ctx, "short", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry with a 50ms TTL still there after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, _ := s.Get(ctx, "long", nil, nil); string(b) != "y" {
		t.Fatalf("entry with 1h TTL gone: %q", b)
	}
}

func testDelete(t *testing.T, s store.Store) {
	for _, k := range []string{"d1", "d2", "d3"} {
		if err := s.Set(ctx, k, []byte(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "d1", "d2", "never-set"); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"d1": false, "d2": false, "d3": true} {
		b, _ := s.Get(ctx, k, nil, nil)
		if (b != nil) != want {
			t.Errorf("after Delete, %s present = %v, want %v", k, b != nil, want)
		}
	}
}

func testVersionsStable(t *testing.T, s store.Store) {
	a := Versions(t, s, "users", "orders")
	b := Versions(t, s, "users", "orders")
	for i := range a {
		if a[i] == 0 {
			t.Fatalf("tag %d: version 0 after first read; a store must give untouched tags a version", i)
		}
		if a[i] != b[i] {
			t.Fatalf("versions changed without a bump: %v then %v", a, b)
		}
	}
	v := make([]uint64, 1)
	if _, err := s.Get(ctx, "x", []string{"users"}, v); err != nil || v[0] != a[0] {
		t.Fatalf("Get reports version %d (err %v), Versions %d", v[0], err, a[0])
	}
}

func testBump(t *testing.T, s store.Store) {
	before := Versions(t, s, "users", "orders")
	if _, err := s.Bump(ctx, []string{"users"}, 0); err != nil {
		t.Fatal(err)
	}
	after := Versions(t, s, "users", "orders")
	if after[0] == before[0] || after[0] == 0 {
		t.Fatalf("users version %d → %d after bump", before[0], after[0])
	}
	if after[1] != before[1] {
		t.Fatalf("orders changed by a bump of users: %d → %d", before[1], after[1])
	}
}

func testNeverRepeat(t *testing.T, s store.Store) {
	seen := map[uint64]bool{}
	for i := 0; i < 200; i++ {
		v := Versions(t, s, "t")
		if seen[v[0]] {
			t.Fatalf("version %d repeated after %d bumps", v[0], i)
		}
		seen[v[0]] = true
		if _, err := s.Bump(ctx, []string{"t"}, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func testHold(t *testing.T, s store.Store) {
	before := Versions(t, s, "t", "u")
	id, err := s.Bump(ctx, []string{"t"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	held := Versions(t, s, "t", "u")
	if held[0] != 0 {
		t.Fatalf("held tag reads %d, want 0", held[0])
	}
	if held[1] != before[1] {
		t.Fatalf("unheld tag changed: %d → %d", before[1], held[1])
	}
	if err := s.Release(ctx, []string{"t"}, id); err != nil {
		t.Fatal(err)
	}
	after := Versions(t, s, "t")
	if after[0] == 0 || after[0] == before[0] {
		t.Fatalf("after release tag reads %d (before the write %d): want a new version", after[0], before[0])
	}
}

func testHoldExpires(t *testing.T, s store.Store) {
	Versions(t, s, "t")
	if _, err := s.Bump(ctx, []string{"t"}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v := Versions(t, s, "t"); v[0] != 0 {
		t.Fatalf("held tag reads %d", v[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for Versions(t, s, "t")[0] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a 100ms hold still held after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testOverlappingHolds(t *testing.T, s store.Store) {
	a, err := s.Bump(ctx, []string{"t"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Bump(ctx, []string{"t"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two holds share lease id %d", a)
	}
	if err := s.Release(ctx, []string{"t"}, a); err != nil {
		t.Fatal(err)
	}
	if v := Versions(t, s, "t"); v[0] != 0 {
		t.Fatalf("tag reads %d while a second write still holds it", v[0])
	}
	if err := s.Release(ctx, []string{"t"}, b); err != nil {
		t.Fatal(err)
	}
	if v := Versions(t, s, "t"); v[0] == 0 {
		t.Fatal("tag still held after both releases")
	}
}

func testLengthMismatch(t *testing.T, s store.Store) {
	err := s.Versions(ctx, []string{"a", "b"}, make([]uint64, 1))
	if err == nil {
		t.Fatal("Versions with 2 tags and 1 slot: no error")
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			key := fmt.Sprintf("c%d", g)
			v := make([]uint64, 1)
			for i := 0; i < 50; i++ {
				if err := s.Set(ctx, key, []byte(key), time.Minute); err != nil {
					errs <- err
					return
				}
				b, err := s.Get(ctx, key, []string{"shared"}, v)
				if err != nil || string(b) != key {
					errs <- errors.Join(err, fmt.Errorf("Get(%s) = %q", key, b))
					return
				}
				if _, err := s.Bump(ctx, []string{"shared"}, 0); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
