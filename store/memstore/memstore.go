// Package memstore is the in-process store, gormcache's embedded default.
//
// Entries live in a byte-bounded otter v2 cache (W-TinyLFU eviction); tag
// versions live in a map beside it. Versions start at a random 64-bit base and
// only grow, so they never repeat within a process, and a process restart
// loses the entries together with the versions.
//
// The store is per process: with several application instances, a write
// through one is not seen by another's memory store. Use a shared store for
// that.
package memstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/maypok86/otter/v2"
)

// DefaultMaxBytes is the capacity of a store whose Config.MaxBytes is 0.
const DefaultMaxBytes = 64 << 20

// Config configures a Store. The zero Config is ready to use.
type Config struct {
	// MaxBytes bounds the estimated memory held by entries. 0 means
	// DefaultMaxBytes. Negative is an error.
	MaxBytes int64
}

// Store is an in-process [store.Store] and [store.ValueStore].
type Store struct {
	cache  *otter.Cache[string, *item]
	next   atomic.Uint64
	mu     sync.RWMutex
	tags   map[string]*tagState
	closed atomic.Bool
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.ValueStore = (*Store)(nil)
)

type item struct {
	value    any // []byte from Set, anything from SetValue
	size     uint32
	deadline int64 // unix nanos; 0 = none
	ttl      time.Duration
}

type tagState struct {
	version uint64
	holds   map[uint64]int64 // lease id → deadline (unix nanos)
}

// withDefaults checks c and returns it with the defaults in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.MaxBytes < 0 {
		return c, fmt.Errorf("memstore: %w: MaxBytes must not be negative (got %d)", store.ErrInvalidConfig, c.MaxBytes)
	}
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	return c, nil
}

// New returns a store bounded by cfg.MaxBytes.
func New(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	maxBytes := cfg.MaxBytes
	s := &Store{tags: make(map[string]*tagState)}
	c, err := otter.New(&otter.Options[string, *item]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(key string, it *item) uint32 {
			return uint32(len(key)) + it.size + 64
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *item]) time.Duration {
			if e.Value.ttl <= 0 {
				return 100 * 365 * 24 * time.Hour
			}
			return e.Value.ttl
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s.cache = c
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	// A random base in the upper half keeps versions of two stores (or two
	// runs) apart, and leaves 2^62 bumps before a wrap could ever matter.
	s.next.Store(binary.LittleEndian.Uint64(seed[:])>>2 | 1<<62)
	return s, nil
}

func (s *Store) newVersion() uint64 { return s.next.Add(1) }

func (s *Store) lookup(key string) (any, bool) {
	it, ok := s.cache.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if it.deadline != 0 && time.Now().UnixNano() >= it.deadline {
		s.cache.Invalidate(key)
		return nil, false
	}
	return it.value, true
}

func (s *Store) put(key string, v any, size int, ttl time.Duration) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if size < 0 || size > 1<<31 {
		return fmt.Errorf("memstore: %d bytes: %w", size, store.ErrTooLarge)
	}
	it := &item{value: v, size: uint32(size), ttl: ttl}
	if ttl > 0 {
		it.deadline = time.Now().Add(ttl).UnixNano()
	}
	s.cache.Set(key, it)
	return nil
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	if err := s.Versions(ctx, tags, versions); err != nil {
		return nil, err
	}
	v, ok := s.lookup(key)
	if !ok {
		return nil, nil
	}
	b, _ := v.([]byte)
	return b, nil
}

// GetValue implements [store.ValueStore].
func (s *Store) GetValue(ctx context.Context, key string, tags []string, versions []uint64) (any, error) {
	if err := s.Versions(ctx, tags, versions); err != nil {
		return nil, err
	}
	v, _ := s.lookup(key)
	return v, nil
}

// Set implements [store.Store].
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return s.put(key, value, len(value), ttl)
}

// SetValue implements [store.ValueStore].
func (s *Store) SetValue(_ context.Context, key string, v any, size int, ttl time.Duration) error {
	return s.put(key, v, size, ttl)
}

// Delete implements [store.Store].
func (s *Store) Delete(_ context.Context, keys ...string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	for _, k := range keys {
		s.cache.Invalidate(k)
	}
	return nil
}

// Versions implements [store.Store].
func (s *Store) Versions(_ context.Context, tags []string, versions []uint64) error {
	if len(tags) != len(versions) {
		return fmt.Errorf("memstore: %d tags but %d versions", len(tags), len(versions))
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	var now int64
	s.mu.RLock()
	for i, t := range tags {
		st := s.tags[t]
		switch {
		case st == nil:
			versions[i] = 0
		case len(st.holds) > 0:
			if now == 0 {
				now = time.Now().UnixNano()
			}
			versions[i] = st.version
			for _, deadline := range st.holds {
				if now < deadline {
					versions[i] = 0
					break
				}
			}
		default:
			versions[i] = st.version
		}
	}
	s.mu.RUnlock()
	if !anyZero(versions) {
		return nil
	}
	// A tag never seen before gets its first version now, so that values
	// computed from here on can be stored under it.
	s.mu.Lock()
	for i, t := range tags {
		if versions[i] != 0 {
			continue
		}
		st := s.tags[t]
		if st == nil {
			st = &tagState{version: s.newVersion()}
			s.tags[t] = st
			versions[i] = st.version
			continue
		}
		// Another caller created it between the two locks: read it as the
		// first pass would have (0 only while held).
		if len(st.holds) == 0 {
			versions[i] = st.version
			continue
		}
		if now == 0 {
			now = time.Now().UnixNano()
		}
		versions[i] = st.version
		for _, deadline := range st.holds {
			if now < deadline {
				versions[i] = 0
				break
			}
		}
	}
	s.mu.Unlock()
	return nil
}

func anyZero(vs []uint64) bool {
	for _, v := range vs {
		if v == 0 {
			return true
		}
	}
	return false
}

// Bump implements [store.Store].
func (s *Store) Bump(_ context.Context, tags []string, hold time.Duration) (uint64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var lease uint64
	var deadline int64
	if hold > 0 {
		lease = s.newVersion()
		deadline = time.Now().Add(hold).UnixNano()
	}
	now := time.Now().UnixNano()
	s.mu.Lock()
	for _, t := range tags {
		st := s.tags[t]
		if st == nil {
			st = &tagState{}
			s.tags[t] = st
		}
		st.version = s.newVersion()
		if hold > 0 {
			if st.holds == nil {
				st.holds = make(map[uint64]int64, 1)
			}
			for id, d := range st.holds {
				if d <= now {
					delete(st.holds, id)
				}
			}
			st.holds[lease] = deadline
		}
	}
	s.mu.Unlock()
	return lease, nil
}

// Release implements [store.Store].
func (s *Store) Release(_ context.Context, tags []string, lease uint64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	s.mu.Lock()
	for _, t := range tags {
		st := s.tags[t]
		if st == nil {
			st = &tagState{}
			s.tags[t] = st
		}
		st.version = s.newVersion()
		delete(st.holds, lease)
		if len(st.holds) == 0 {
			st.holds = nil
		}
	}
	s.mu.Unlock()
	return nil
}

// Len reports the number of entries held (for stats and tests).
func (s *Store) Len() int { return s.cache.EstimatedSize() }

// Close implements [store.Store]. It drops every entry.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cache.InvalidateAll()
	s.cache.StopAllGoroutines()
	return nil
}
