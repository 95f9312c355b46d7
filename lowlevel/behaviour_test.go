package lowlevel_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
)

func sample() Report {
	note := "ok"
	return Report{Day: "2024-05-01", Totals: []int64{1, 2, 3}, ByName: map[string]int64{"ann": 7}, Note: &note}
}

func mustGet[T any](t *testing.T, c *lowlevel.Cache, key string, tables ...string) T {
	t.Helper()
	v, ok, err := lowlevel.Get[T](bg, c, key, tables...)
	if err != nil || !ok {
		t.Fatalf("Get(%q, %q) = _, %v, %v; want a hit", key, tables, ok, err)
	}
	return v
}

func mustMiss[T any](t *testing.T, c *lowlevel.Cache, key string, tables ...string) {
	t.Helper()
	v, ok, err := lowlevel.Get[T](bg, c, key, tables...)
	if err != nil || ok {
		t.Fatalf("Get(%q, %q) = %v, %v, %v; want a miss", key, tables, v, ok, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestGetSet(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		mustMiss[Report](t, c, "r", "orders")
		must(t, lowlevel.Set(bg, c, "r", sample(), time.Hour, "orders"))
		if got := mustGet[Report](t, c, "r", "orders"); !reflect.DeepEqual(got, sample()) {
			t.Fatalf("got %+v, want %+v", got, sample())
		}
		at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		must(t, lowlevel.Set(bg, c, "p", Point{1, 2, at}, 0))
		if got := mustGet[Point](t, c, "p"); got.X != 1 || got.Y != 2 || !got.At.Equal(at) {
			t.Fatalf("got %+v", got)
		}
		must(t, lowlevel.Set(bg, c, "s", "text", 0))
		if got := mustGet[string](t, c, "s"); got != "text" {
			t.Fatalf("got %q", got)
		}
		must(t, lowlevel.Set[*Report](bg, c, "nil", nil, 0))
		if got := mustGet[*Report](t, c, "nil"); got != nil {
			t.Fatalf("got %v, want nil", got)
		}
		s := c.Stats()
		if s.Hits != 4 || s.Misses != 1 || s.Stores != 4 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestKeysAreNamespaced(t *testing.T) {
	t.Parallel()
	st := testsupport.BytesStore{Store: newMem(t)}
	a, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	b, _ := lowlevel.NewWithStore(st, lowlevel.Config{Prefix: "other"})
	must(t, lowlevel.Set(bg, a, "k", 1, 0))
	must(t, lowlevel.Set(bg, b, "k", 2, 0))
	if got := mustGet[int](t, a, "k"); got != 1 {
		t.Fatalf("a: %d", got)
	}
	if got := mustGet[int](t, b, "k"); got != 2 {
		t.Fatalf("b: %d", got)
	}
	for _, k := range []string{"ll:k", "other:k"} {
		if raw, err := st.Get(bg, k, nil, nil); err != nil || raw == nil {
			t.Fatalf("store key %q: %v, %v", k, raw, err)
		}
	}
	// Flush is per prefix.
	must(t, a.Flush(bg))
	mustMiss[int](t, a, "k")
	mustGet[int](t, b, "k")
}

func TestTablesMustMatch(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		must(t, lowlevel.Set(bg, c, "k", 1, 0, "orders", "users"))
		mustGet[int](t, c, "k", "users", "orders")
		mustGet[int](t, c, "k", `"Orders"`, "public.users", "orders") // normalised, deduplicated
		mustMiss[int](t, c, "k")
		mustMiss[int](t, c, "k", "orders")
		if s := c.Stats(); s.Mismatches != 2 {
			t.Fatalf("stats %+v", s)
		}
		if _, _, err := lowlevel.Get[int](bg, c, "k", ""); !errors.Is(err, lowlevel.ErrInvalidArgument) {
			t.Fatalf("empty table: %v", err)
		}
	})
}

func TestInvalidation(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		p := plugin.New(plugin.Config{Store: st, Logger: quiet})
		pc, err := lowlevel.New(p, lowlevel.Config{})
		must(t, err)
		for _, tc := range []struct {
			name  string
			cache *lowlevel.Cache
			do    func() error
			kept  bool // whether the "users" entry survives
		}{
			{"Cache.Invalidate", c, func() error { return c.Invalidate(bg, "orders") }, true},
			{"Cache.Invalidate via plugin", pc, func() error { return pc.Invalidate(bg, "public.ORDERS") }, true},
			{"Plugin.Invalidate", c, func() error { return p.Invalidate(bg, "orders") }, true},
			{"Cache.Flush", c, func() error { return c.Flush(bg) }, false},
			{"Plugin.Flush", pc, func() error { return p.Flush(bg) }, false},
			{"global bump", c, func() error { _, err := st.Bump(bg, []string{store.GlobalTag}, 0); return err }, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cc := tc.cache
				must(t, lowlevel.Set(bg, cc, "o", 1, 0, "orders"))
				must(t, lowlevel.Set(bg, cc, "ou", 2, 0, "orders", "users"))
				must(t, lowlevel.Set(bg, cc, "u", 3, 0, "users"))
				must(t, lowlevel.Set(bg, cc, "none", 4, 0))
				must(t, tc.do())
				mustMiss[int](t, cc, "o", "orders")
				mustMiss[int](t, cc, "ou", "orders", "users")
				if tc.kept {
					mustGet[int](t, cc, "u", "users")
					mustGet[int](t, cc, "none")
				} else {
					mustMiss[int](t, cc, "u", "users")
					mustMiss[int](t, cc, "none")
				}
			})
		}
	})
}

func TestTTL(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		must(t, lowlevel.Set(bg, c, "short", 1, 60*time.Millisecond))
		must(t, lowlevel.Set(bg, c, "forever", 2, plugin.Forever))
		must(t, lowlevel.Set(bg, c, "default", 3, 0))
		mustGet[int](t, c, "short")
		time.Sleep(100 * time.Millisecond)
		mustMiss[int](t, c, "short")
		mustGet[int](t, c, "forever")
		mustGet[int](t, c, "default")

		// Skip: Django's timeout 0.
		must(t, lowlevel.Set(bg, c, "default", 4, lowlevel.Skip))
		mustMiss[int](t, c, "default")
		if added, err := lowlevel.Add(bg, c, "skip", 1, lowlevel.Skip); added || err != nil {
			t.Fatalf("Add with Skip: %v, %v", added, err)
		}
		mustMiss[int](t, c, "skip")

		if err := lowlevel.Set(bg, c, "bad", 1, -time.Second); !errors.Is(err, lowlevel.ErrInvalidArgument) {
			t.Fatalf("negative TTL: %v", err)
		}
	})
}

func TestConfigSkip(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{TTL: lowlevel.Skip}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		var runs atomic.Int32
		for range 3 {
			v, err := lowlevel.Remember(bg, c, "k", 0, nil, func(context.Context) (int, error) { return int(runs.Add(1)), nil })
			must(t, err)
			if v != int(runs.Load()) {
				t.Fatalf("got %d", v)
			}
		}
		if runs.Load() != 3 {
			t.Fatalf("fn ran %d times, want 3", runs.Load())
		}
		// An explicit TTL still stores.
		must(t, lowlevel.Set(bg, c, "k", 1, time.Minute))
		mustGet[int](t, c, "k")
	})
}

func TestAdd(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		add := func(v int) bool {
			t.Helper()
			added, err := lowlevel.Add(bg, c, "k", v, 0, "orders")
			must(t, err)
			return added
		}
		if !add(1) || add(2) {
			t.Fatal("Add: want true, then false")
		}
		if got := mustGet[int](t, c, "k", "orders"); got != 1 {
			t.Fatalf("got %d", got)
		}
		must(t, c.Invalidate(bg, "orders")) // a stale value is no value
		if !add(3) {
			t.Fatal("Add over a stale value: want true")
		}
		if got := mustGet[int](t, c, "k", "orders"); got != 3 {
			t.Fatalf("got %d", got)
		}
		// A live value stored with other tables is a value.
		if added, err := lowlevel.Add(bg, c, "k", 4, 0); added || err != nil {
			t.Fatalf("Add over a live value of other tables: %v, %v", added, err)
		}
	})
}

func TestAddConcurrent(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				added, err := lowlevel.Add(bg, c, "lock", i, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if added {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d Adds won, want 1", wins.Load())
		}
	})
}

// TestLostSwap: an Add or Touch whose compare-and-swap loses to another
// writer retries, and reports what its retry found, not what the lost
// attempt had decided.
func TestLostSwap(t *testing.T) {
	t.Parallel()
	newCache := func(t *testing.T) (*casStore, *lowlevel.Cache) {
		st := &casStore{Store: newMem(t)}
		c, err := lowlevel.NewWithStore(st, lowlevel.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st, c
	}
	t.Run("add", func(t *testing.T) {
		t.Parallel()
		st, c := newCache(t)
		// Another process adds the key between this Add's read and swap.
		other, err := lowlevel.NewWithStore(testsupport.BytesStore{Store: st.Store}, lowlevel.Config{})
		must(t, err)
		st.first = func() { must(t, lowlevel.Set(bg, other, "lock", "theirs", time.Minute)) }
		added, err := lowlevel.Add(bg, c, "lock", "mine", time.Minute)
		if added || err != nil {
			t.Fatalf("Add after losing the swap = %v, %v; want false, nil", added, err)
		}
		if got := mustGet[string](t, c, "lock"); got != "theirs" {
			t.Fatalf("value %q, want theirs", got)
		}
	})
	t.Run("touch", func(t *testing.T) {
		t.Parallel()
		st, c := newCache(t)
		must(t, lowlevel.Set(bg, c, "k", 1, time.Minute))
		// Another process deletes the key between this Touch's read and swap.
		st.first = func() { must(t, st.Store.Delete(bg, "ll:k")) }
		touched, err := c.Touch(bg, "k", time.Hour)
		if touched || err != nil {
			t.Fatalf("Touch after the key was deleted = %v, %v; want false, nil", touched, err)
		}
	})
}

func TestGetOrSet(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		v, loaded, err := lowlevel.GetOrSet(bg, c, "k", "first", 0, "orders")
		if v != "first" || loaded || err != nil {
			t.Fatalf("first: %q, %v, %v", v, loaded, err)
		}
		v, loaded, err = lowlevel.GetOrSet(bg, c, "k", "second", 0, "orders")
		if v != "first" || !loaded || err != nil {
			t.Fatalf("second: %q, %v, %v", v, loaded, err)
		}
		must(t, c.Invalidate(bg, "orders"))
		v, loaded, err = lowlevel.GetOrSet(bg, c, "k", "third", 0, "orders")
		if v != "third" || loaded || err != nil {
			t.Fatalf("after invalidation: %q, %v, %v", v, loaded, err)
		}
		// A value of another type is overwritten.
		n, loaded, err := lowlevel.GetOrSet(bg, c, "k", 5, 0, "orders")
		if n != 5 || loaded || err != nil {
			t.Fatalf("other type: %d, %v, %v", n, loaded, err)
		}
		if got := mustGet[int](t, c, "k", "orders"); got != 5 {
			t.Fatalf("got %d", got)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		must(t, lowlevel.Set(bg, c, "a", 1, 0))
		must(t, lowlevel.Set(bg, c, "b", 2, 0))
		must(t, lowlevel.Set(bg, c, "c", 3, 0))
		must(t, c.Delete(bg, "a", "b", "absent"))
		must(t, c.Delete(bg))
		mustMiss[int](t, c, "a")
		mustMiss[int](t, c, "b")
		mustGet[int](t, c, "c")
	})
}

func TestTouch(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		must(t, lowlevel.Set(bg, c, "k", sample(), 60*time.Millisecond, "orders"))
		touched, err := c.Touch(bg, "k", time.Hour)
		if !touched || err != nil {
			t.Fatalf("Touch: %v, %v", touched, err)
		}
		time.Sleep(100 * time.Millisecond)
		if got := mustGet[Report](t, c, "k", "orders"); !reflect.DeepEqual(got, sample()) {
			t.Fatalf("got %+v", got)
		}
		if touched, err := c.Touch(bg, "absent", time.Hour); touched || err != nil {
			t.Fatalf("Touch(absent): %v, %v", touched, err)
		}
		// Touch keeps the stamp: the value still goes stale.
		must(t, c.Invalidate(bg, "orders"))
		if touched, err := c.Touch(bg, "k", time.Hour); touched || err != nil {
			t.Fatalf("Touch(stale): %v, %v", touched, err)
		}
		must(t, lowlevel.Set(bg, c, "k2", 1, time.Hour))
		if touched, err := c.Touch(bg, "k2", lowlevel.Skip); !touched || err != nil {
			t.Fatalf("Touch(Skip): %v, %v", touched, err)
		}
		mustMiss[int](t, c, "k2")
	})
}

func TestIncr(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		if _, err := c.Incr(bg, "n", 1); !errors.Is(err, lowlevel.ErrNotFound) {
			t.Fatalf("Incr(absent): %v", err)
		}
		must(t, lowlevel.Set(bg, c, "n", 10, 0))
		for _, step := range []struct{ delta, want int64 }{{5, 15}, {-20, -5}, {0, -5}} {
			if n, err := c.Incr(bg, "n", step.delta); n != step.want || err != nil {
				t.Fatalf("Incr(%d) = %d, %v; want %d", step.delta, n, err, step.want)
			}
		}
		if got := mustGet[int](t, c, "n"); got != -5 {
			t.Fatalf("Get[int] = %d", got)
		}
		if got := mustGet[int64](t, c, "n"); got != -5 {
			t.Fatalf("Get[int64] = %d", got)
		}

		must(t, lowlevel.Set(bg, c, "s", "x", 0))
		if _, err := c.Incr(bg, "s", 1); !errors.Is(err, lowlevel.ErrNotInteger) {
			t.Fatalf("Incr(string): %v", err)
		}
		must(t, lowlevel.Set[int64](bg, c, "max", math.MaxInt64, 0))
		if _, err := c.Incr(bg, "max", 1); !errors.Is(err, lowlevel.ErrNotInteger) {
			t.Fatalf("Incr(MaxInt64, 1): %v", err)
		}

		// The counter keeps its tables and stamp...
		must(t, lowlevel.Set(bg, c, "hits", 0, 0, "orders"))
		if n, err := c.Incr(bg, "hits", 1); n != 1 || err != nil {
			t.Fatalf("Incr(hits) = %d, %v", n, err)
		}
		if got := mustGet[int](t, c, "hits", "orders"); got != 1 {
			t.Fatalf("hits = %d", got)
		}
		must(t, c.Invalidate(bg, "orders"))
		if _, err := c.Incr(bg, "hits", 1); !errors.Is(err, lowlevel.ErrNotFound) {
			t.Fatalf("Incr(stale): %v", err)
		}
		// ...and its expiry.
		must(t, lowlevel.Set(bg, c, "brief", 0, 80*time.Millisecond))
		if _, err := c.Incr(bg, "brief", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		mustMiss[int](t, c, "brief")
	})
}

func TestIncrConcurrent(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		must(t, lowlevel.Set(bg, c, "n", 0, 0))
		const workers, each = 40, 25
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					if _, err := c.Incr(bg, "n", 1); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		// Sets and Deletes of other keys run meanwhile.
		wg.Go(func() {
			for i := range 100 {
				_ = lowlevel.Set(bg, c, "other", i, 0)
				_ = c.Delete(bg, "other2")
			}
		})
		wg.Wait()
		if got := mustGet[int](t, c, "n"); got != workers*each {
			t.Fatalf("n = %d, want %d", got, workers*each)
		}
		if cs, ok := st.(*casStore); ok && cs.swaps < workers*each {
			t.Fatalf("%d compare-and-swaps for %d increments", cs.swaps, workers*each)
		}
	})
}

func TestRememberRunsOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		var runs atomic.Int32
		fn := func(ctx context.Context) (Report, error) {
			runs.Add(1)
			time.Sleep(30 * time.Millisecond)
			return sample(), nil
		}
		const n = 200
		results := make([]Report, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				r, err := lowlevel.Remember(bg, c, "daily", time.Hour, []string{"orders"}, fn)
				if err != nil {
					t.Error(err)
				}
				results[i] = r
			})
		}
		close(start)
		wg.Wait()
		if got := runs.Load(); got != 1 {
			t.Fatalf("fn ran %d times, want 1", got)
		}
		for i := range results {
			if !reflect.DeepEqual(results[i], sample()) {
				t.Fatalf("result %d = %+v", i, results[i])
			}
		}
		// Every caller has its own copy: changing one changes no other.
		results[0].Totals[0] = 99
		results[0].ByName["ann"] = 99
		for i := 1; i < n; i++ {
			if results[i].Totals[0] != 1 || results[i].ByName["ann"] != 7 {
				t.Fatalf("result %d shares memory with result 0", i)
			}
		}
		if got := mustGet[Report](t, c, "daily", "orders"); !reflect.DeepEqual(got, sample()) {
			t.Fatalf("cached %+v", got)
		}
	})
}

func TestShareValues(t *testing.T) {
	t.Parallel()
	for _, share := range []bool{false, true} {
		c, err := lowlevel.NewWithStore(newMem(t), lowlevel.Config{ShareValues: share})
		must(t, err)
		must(t, lowlevel.Set(bg, c, "s", []int{1, 2}, 0))
		a := mustGet[[]int](t, c, "s")
		b := mustGet[[]int](t, c, "s")
		if same := &a[0] == &b[0]; same != share {
			t.Fatalf("ShareValues %v: two Gets share their slice: %v", share, same)
		}
	}
}

func TestRememberErrorNotCached(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		runs := 0
		fn := func(context.Context) (int, error) {
			runs++
			if runs == 1 {
				return 0, errFnErr
			}
			return 42, nil
		}
		if _, err := lowlevel.Remember(bg, c, "k", 0, nil, fn); !errors.Is(err, errFnErr) {
			t.Fatalf("first: %v", err)
		}
		for range 2 {
			if v, err := lowlevel.Remember(bg, c, "k", 0, nil, fn); v != 42 || err != nil {
				t.Fatalf("then: %d, %v", v, err)
			}
		}
		if runs != 2 {
			t.Fatalf("fn ran %d times, want 2", runs)
		}
	})
}

func TestRememberPanic(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		recovered := func() (r any) {
			defer func() { r = recover() }()
			_, _ = lowlevel.Remember(bg, c, "k", 0, nil, func(context.Context) (int, error) { panic("boom") })
			return nil
		}()
		pe, ok := recovered.(*lowlevel.PanicError)
		if !ok || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "TestRememberPanic") {
			t.Fatalf("recovered %#v", recovered)
		}
		if v, err := lowlevel.Remember(bg, c, "k", 0, nil, func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
			t.Fatalf("after the panic: %d, %v (a value was cached?)", v, err)
		}
		// runtime.Goexit does not leave callers waiting.
		_, err := lowlevel.Remember(bg, c, "exit", 0, nil, func(context.Context) (int, error) { runtime.Goexit(); return 0, nil })
		if err == nil {
			t.Fatal("Goexit: want an error")
		}
	})
}

func TestRememberCancel(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		release := make(chan struct{})
		var runs atomic.Int32
		fn := func(ctx context.Context) (int, error) {
			runs.Add(1)
			<-release
			return 1, ctx.Err() // fn's context is not cancelled with its caller's
		}
		ctx, cancel := context.WithCancel(bg)
		leader := make(chan error, 1)
		go func() {
			_, err := lowlevel.Remember(ctx, c, "k", 0, nil, fn)
			leader <- err
		}()
		for runs.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		follower := make(chan int, 1)
		go func() {
			v, err := lowlevel.Remember(bg, c, "k", 0, nil, fn)
			if err != nil {
				t.Error(err)
			}
			follower <- v
		}()
		cancel()
		if err := <-leader; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v", err)
		}
		close(release)
		if v := <-follower; v != 1 {
			t.Fatalf("follower got %d", v)
		}
		if got := mustGet[int](t, c, "k"); got != 1 || runs.Load() != 1 {
			t.Fatalf("cached %d after %d runs", got, runs.Load())
		}
		// A caller whose context is done does not start fn.
		if _, err := lowlevel.Remember(ctx, c, "other", 0, nil, fn); !errors.Is(err, context.Canceled) {
			t.Fatalf("done context: %v", err)
		}
	})
}

// TestStampRace checks the version protocol: a value computed while a write
// to its table was in flight, or before a write that committed while it
// was computed, is never served after that write.
func TestStampRace(t *testing.T) {
	t.Parallel()
	orders := []string{"orders"}
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		t.Run("held before computing", func(t *testing.T) {
			lease, err := st.Bump(bg, orders, time.Minute) // a write begins
			must(t, err)
			v, err := lowlevel.Remember(bg, c, "a", time.Hour, orders, func(context.Context) (string, error) { return "old", nil })
			if v != "old" || err != nil {
				t.Fatalf("%q, %v", v, err)
			}
			mustMiss[string](t, c, "a", "orders")  // held: never served
			must(t, st.Release(bg, orders, lease)) // the write commits
			mustMiss[string](t, c, "a", "orders")
			v, _ = lowlevel.Remember(bg, c, "a", time.Hour, orders, func(context.Context) (string, error) { return "new", nil })
			if v != "new" {
				t.Fatalf("after the write: %q", v)
			}
			if c.Stats().NotStored == 0 {
				t.Fatal("NotStored not counted")
			}
		})
		t.Run("write during computing", func(t *testing.T) {
			v, err := lowlevel.Remember(bg, c, "b", time.Hour, orders, func(context.Context) (string, error) {
				// The query has read the old rows; now a write runs and commits.
				lease, err := st.Bump(bg, orders, time.Minute)
				must(t, err)
				must(t, st.Release(bg, orders, lease))
				return "old", nil
			})
			if v != "old" || err != nil {
				t.Fatalf("%q, %v", v, err)
			}
			mustMiss[string](t, c, "b", "orders")
		})
		t.Run("SetStamped", func(t *testing.T) {
			s, err := c.Stamp(bg, "orders")
			must(t, err)
			lease, _ := st.Bump(bg, orders, time.Minute)
			must(t, st.Release(bg, orders, lease))
			must(t, lowlevel.SetStamped(bg, c, "c", "old", time.Hour, s))
			mustMiss[string](t, c, "c", "orders")
			// A stamp taken while held stores nothing.
			lease, _ = st.Bump(bg, orders, time.Minute)
			s, err = c.Stamp(bg, "orders")
			must(t, err)
			must(t, lowlevel.SetStamped(bg, c, "c", "held", time.Hour, s))
			must(t, st.Release(bg, orders, lease))
			mustMiss[string](t, c, "c", "orders")
			// A Stamp of another cache is refused.
			other, _ := lowlevel.NewWithStore(st, lowlevel.Config{Prefix: "x"})
			s, _ = other.Stamp(bg, "orders")
			if err := lowlevel.SetStamped(bg, c, "c", "x", 0, s); !errors.Is(err, lowlevel.ErrInvalidArgument) {
				t.Fatalf("foreign stamp: %v", err)
			}
		})
		t.Run("Set while held deletes", func(t *testing.T) {
			must(t, lowlevel.Set(bg, c, "d", "v1", time.Hour))
			lease, _ := st.Bump(bg, orders, time.Minute)
			must(t, lowlevel.Set(bg, c, "d", "v2", time.Hour, "orders"))
			must(t, st.Release(bg, orders, lease))
			mustMiss[string](t, c, "d")
			mustMiss[string](t, c, "d", "orders")
		})
	})
}

func TestCorruptEntries(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		raws := map[string][]byte{
			"garbage":   []byte("garbage"),
			"empty":     {},
			"header":    {'L', 1},
			"version":   {'L', 99, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			"tags":      {'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
			"truncated": {'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 'a'},
		}
		for name, raw := range raws {
			must(t, st.Set(bg, "ll:"+name, raw, 0))
			mustMiss[int](t, c, name)
			if got, _ := st.Get(bg, "ll:"+name, nil, nil); got != nil {
				t.Fatalf("%s: the corrupt entry was kept", name)
			}
		}
		if s := c.Stats(); s.CorruptEntries != uint64(len(raws)) {
			t.Fatalf("stats %+v", s)
		}

		// A value of another type that will not decode is a miss, and
		// Remember overwrites it.
		must(t, lowlevel.Set(bg, c, "typed", "a string", 0))
		mustMiss[Report](t, c, "typed")
		must(t, lowlevel.Set(bg, c, "typed", sample(), 0))
		mustMiss[int](t, c, "typed")
		v, err := lowlevel.Remember(bg, c, "typed", 0, nil, func(context.Context) (int, error) { return 3, nil })
		if v != 3 || err != nil {
			t.Fatalf("Remember over a foreign entry: %d, %v", v, err)
		}
		if got := mustGet[int](t, c, "typed"); got != 3 {
			t.Fatalf("got %d", got)
		}
		// Unknown fields are refused rather than dropped.
		type small struct{ Day string }
		must(t, lowlevel.Set(bg, c, "fields", sample(), 0))
		mustMiss[small](t, c, "fields")

		// Truncated copies of a real envelope (byte stores only: memstore
		// keeps Go values).
		must(t, lowlevel.Set(bg, c, "real", sample(), 0))
		if raw, _ := st.Get(bg, "ll:real", nil, nil); raw != nil {
			for _, n := range []int{len(raw) - 1, len(raw) / 2, 12} {
				must(t, st.Set(bg, "ll:real", raw[:n], 0))
				mustMiss[Report](t, c, "real")
			}
		}
	})
}

// TestFormerFormatEntries: entries written by the format before the
// shared envelope (testdata/format-L1.hex, as that version wrote them) in
// a shared store are a miss, counted as corrupt and deleted; the value is
// computed again and stored in the current format.
func TestFormerFormatEntries(t *testing.T) {
	t.Parallel()
	raws := formerEntries(t)
	eachStore(t, lowlevel.Config{Logger: quiet}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		for i, raw := range raws {
			key := fmt.Sprintf("old%d", i)
			must(t, st.Set(bg, "ll:"+key, raw, 0))
			mustMiss[map[string]any](t, c, key, "orders")
			if got, _ := st.Get(bg, "ll:"+key, nil, nil); got != nil {
				t.Fatalf("%s: the former entry was kept", key)
			}
			must(t, st.Set(bg, "ll:"+key, raw, 0))
			v, err := lowlevel.Remember(bg, c, key, time.Hour, nil, func(context.Context) (int64, error) { return 8, nil })
			if v != 8 || err != nil {
				t.Fatalf("Remember over a former entry: %d, %v", v, err)
			}
			if got := mustGet[int64](t, c, key); got != 8 {
				t.Fatalf("got %d", got)
			}
		}
		// Each is met twice: by Get, and (stored again) by Remember.
		if s := c.Stats(); s.CorruptEntries != uint64(2*len(raws)) {
			t.Fatalf("stats %+v, want %d corrupt entries", s, 2*len(raws))
		}
	})
}

// formerEntries reads the entries of testdata/format-L1.hex, checking
// that the CLI would take each for a low-level entry that does not decode.
func formerEntries(t *testing.T) [][]byte {
	t.Helper()
	raws := testsupport.HexLines(t, "testdata/format-L1.hex")
	for _, b := range raws {
		if _, err := lowlevel.DecodeEntry(b); err == nil || !lowlevel.IsEntry(b) {
			t.Fatalf("a former entry: IsEntry %v, DecodeEntry error %v", lowlevel.IsEntry(b), err)
		}
	}
	return raws
}

func TestForeignGoValue(t *testing.T) {
	t.Parallel()
	ms := newMem(t)
	c, _ := lowlevel.NewWithStore(ms, lowlevel.Config{})
	for _, v := range []any{42, "x", &struct{}{}, []byte("garbage")} {
		must(t, ms.SetValue(bg, "ll:k", v, 8, 0))
		mustMiss[int](t, c, "k")
	}
	if s := c.Stats(); s.CorruptEntries != 4 {
		t.Fatalf("stats %+v", s)
	}
	for _, op := range []func() error{
		func() error { _, err := c.Incr(bg, "k", 1); return err },
		func() error { _, err := c.Touch(bg, "k", 0); return err },
	} {
		must(t, ms.SetValue(bg, "ll:k", 42, 8, 0))
		if err := op(); err != nil && !errors.Is(err, lowlevel.ErrNotFound) {
			t.Fatal(err)
		}
	}
}

func TestFailOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{{"unavailable", errDown}, {"closed", store.ErrClosed}, {"other", errOdd}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := lowlevel.NewWithStore(failStore{tc.err}, lowlevel.Config{Logger: quiet})
			must(t, err)
			want := store.ErrUnavailable
			if tc.err == store.ErrClosed {
				want = store.ErrClosed
			}

			runs := 0
			for range 2 {
				v, err := lowlevel.Remember(bg, c, "k", 0, []string{"orders"}, func(context.Context) (int, error) { runs++; return 5, nil })
				if v != 5 || err != nil {
					t.Fatalf("Remember: %d, %v", v, err)
				}
			}
			if runs != 2 {
				t.Fatalf("fn ran %d times", runs)
			}
			if v, loaded, err := lowlevel.GetOrSet(bg, c, "k", 6, 0); v != 6 || loaded || err != nil {
				t.Fatalf("GetOrSet: %d, %v, %v", v, loaded, err)
			}

			checks := map[string]error{}
			_, _, checks["Get"] = lowlevel.Get[int](bg, c, "k")
			checks["Set"] = lowlevel.Set(bg, c, "k", 1, 0)
			_, checks["Add"] = lowlevel.Add(bg, c, "k", 1, 0)
			_, checks["Incr"] = c.Incr(bg, "k", 1)
			_, checks["Touch"] = c.Touch(bg, "k", 0)
			checks["Delete"] = c.Delete(bg, "k")
			checks["Invalidate"] = c.Invalidate(bg, "orders")
			checks["Flush"] = c.Flush(bg)
			_, checks["Stamp"] = c.Stamp(bg, "orders")
			for op, err := range checks {
				if !errors.Is(err, want) || !errors.Is(err, tc.err) || !strings.HasPrefix(err.Error(), "lowlevel: ") {
					t.Errorf("%s: %v; want an error wrapping %v and %v", op, err, want, tc.err)
				}
			}
			if s := c.Stats(); s.StoreErrors < 10 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	eachStore(t, lowlevel.Config{MaxBytes: 200, Logger: quiet}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		big := strings.Repeat("x", 500)
		if err := lowlevel.Set(bg, c, "k", big, 0); !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("Set: %v", err)
		}
		runs := 0
		for range 2 {
			v, err := lowlevel.Remember(bg, c, "k", 0, nil, func(context.Context) (string, error) { runs++; return big, nil })
			if v != big || err != nil {
				t.Fatalf("Remember: %v", err)
			}
		}
		if runs != 2 {
			t.Fatalf("fn ran %d times, want 2 (nothing stored)", runs)
		}
		if _, _, err := lowlevel.GetOrSet(bg, c, "k", big, 0); !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("GetOrSet: %v", err)
		}
		if err := lowlevel.Set(bg, c, "f", func() {}, 0); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Set of a func: %v", err)
		}
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	st := newMem(t)
	for _, cfg := range []lowlevel.Config{
		{TTL: -time.Second},
		{MaxBytes: -1},
		{StoreTimeout: -1},
	} {
		if _, err := lowlevel.NewWithStore(st, cfg); !errors.Is(err, lowlevel.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := lowlevel.NewWithStore(nil, lowlevel.Config{}); !errors.Is(err, lowlevel.ErrInvalidConfig) {
		t.Error(err)
	}
	if _, err := lowlevel.New(nil, lowlevel.Config{}); !errors.Is(err, lowlevel.ErrInvalidConfig) {
		t.Error(err)
	}
	if _, err := lowlevel.New(plugin.New(plugin.Config{TTL: -5}), lowlevel.Config{}); !errors.Is(err, lowlevel.ErrInvalidConfig) {
		t.Error(err)
	}
	for _, cfg := range []lowlevel.Config{{TTL: plugin.Forever}, {TTL: lowlevel.Skip}} {
		if _, err := lowlevel.NewWithStore(st, cfg); err != nil {
			t.Error(err)
		}
	}
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	if _, err := lowlevel.Remember[int](bg, c, "k", 0, nil, nil); !errors.Is(err, lowlevel.ErrInvalidArgument) {
		t.Error(err)
	}
	if c.Store() != st {
		t.Error("Store()")
	}
}

// TestRememberDoesNotShareAcrossCommits: a call that begins after a write
// committed does not wait for, nor take, the value of a run that began
// before it.
func TestRememberDoesNotShareAcrossCommits(t *testing.T) {
	t.Parallel()
	orders := []string{"orders"}
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		started, release := make(chan struct{}), make(chan struct{})
		first := make(chan string, 1)
		go func() {
			v, _ := lowlevel.Remember(bg, c, "k", 0, orders, func(context.Context) (string, error) {
				close(started)
				<-release
				return "old", nil
			})
			first <- v
		}()
		<-started
		must(t, c.Invalidate(bg, "orders")) // a write commits
		v, err := lowlevel.Remember(bg, c, "k", 0, orders, func(context.Context) (string, error) { return "new", nil })
		if v != "new" || err != nil {
			t.Fatalf("after the commit: %q, %v", v, err)
		}
		close(release)
		if v := <-first; v != "old" {
			t.Fatalf("first call: %q", v)
		}
		if v, ok, _ := lowlevel.Get[string](bg, c, "k", "orders"); ok && v != "new" {
			t.Fatalf("served %q after the commit", v)
		}
	})
}

// TestRememberWhileHeld: while a write to the tables is in flight, every
// call computes its own value and nothing is stored.
func TestRememberWhileHeld(t *testing.T) {
	t.Parallel()
	orders := []string{"orders"}
	eachStore(t, lowlevel.Config{}, func(t *testing.T, st store.Store, c *lowlevel.Cache) {
		lease, err := st.Bump(bg, orders, time.Minute)
		must(t, err)
		var runs atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				v, err := lowlevel.Remember(bg, c, "k", 0, orders, func(context.Context) (int, error) {
					runs.Add(1)
					time.Sleep(10 * time.Millisecond)
					return 1, nil
				})
				if v != 1 || err != nil {
					t.Errorf("%d, %v", v, err)
				}
			})
		}
		wg.Wait()
		if runs.Load() != 10 {
			t.Fatalf("fn ran %d times during the write, want 10", runs.Load())
		}
		must(t, st.Release(bg, orders, lease))
		mustMiss[int](t, c, "k", "orders")
		if s := c.Stats(); s.NotStored != 10 || s.Stores != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}
