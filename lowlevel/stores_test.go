package lowlevel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
)

// Stores the behaviour tests run on: the in-process memstore (values kept
// as Go values), the same behind a wrapper that hides everything but
// store.Store (entries encoded, as on Redis or Memcached), and that wrapper
// with a compare-and-swap (the Swapper path).
var storeKinds = []struct {
	name string
	make func(t *testing.T) store.Store
}{
	{"memstore", func(t *testing.T) store.Store { return newMem(t) }},
	{"bytes", func(t *testing.T) store.Store { return testsupport.BytesStore{Store: newMem(t)} }},
	{"cas", func(t *testing.T) store.Store { return &casStore{Store: newMem(t)} }},
}

func newMem(t testing.TB) *memstore.Store {
	t.Helper()
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}

// quiet is a Logger for tests that provoke failures on purpose.
var quiet = slog.New(slog.DiscardHandler)

// eachStore runs fn on a fresh cache of every store kind.
func eachStore(t *testing.T, cfg lowlevel.Config, fn func(t *testing.T, st store.Store, c *lowlevel.Cache)) {
	t.Helper()
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			st := k.make(t)
			c, err := lowlevel.NewWithStore(st, cfg)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, st, c)
		})
	}
}

// casStore is a byte store with a compare-and-swap, atomic within the store
// as Redis's or Memcached's would be.
type casStore struct {
	store.Store
	mu    sync.Mutex
	swaps int
	// first, when set, runs once just before the first swap compares: a
	// concurrent writer that beats this one.
	first func()
}

var _ lowlevel.Swapper = (*casStore)(nil)

func (s *casStore) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.first; f != nil {
		s.first = nil
		f()
	}
	s.swaps++
	cur, err := s.Store.Get(ctx, key, nil, nil)
	if err != nil {
		return false, err
	}
	if (old == nil) != (cur == nil) || !bytes.Equal(old, cur) {
		return false, nil
	}
	return true, s.Store.Set(ctx, key, new, ttl)
}

// failStore fails every call with err.
type failStore struct{ err error }

func (f failStore) Get(context.Context, string, []string, []uint64) ([]byte, error) {
	return nil, f.err
}
func (f failStore) Set(context.Context, string, []byte, time.Duration) error { return f.err }
func (f failStore) Delete(context.Context, ...string) error                  { return f.err }
func (f failStore) Versions(context.Context, []string, []uint64) error       { return f.err }
func (f failStore) Bump(context.Context, []string, time.Duration) (uint64, error) {
	return 0, f.err
}
func (f failStore) Release(context.Context, []string, uint64) error { return f.err }
func (f failStore) Close() error                                    { return nil }

var (
	errDown  = fmt.Errorf("redis: connection refused: %w", store.ErrUnavailable)
	errOdd   = errors.New("something odd")
	_        = store.Store(failStore{})
	bg       = context.Background()
	errFnErr = errors.New("fn failed")
)

// Report is a value with references (a slice, a map, a pointer).
type Report struct {
	Day    string
	Totals []int64
	ByName map[string]int64
	Note   *string
}

// Point is a value without references.
type Point struct {
	X, Y int
	At   time.Time
}
