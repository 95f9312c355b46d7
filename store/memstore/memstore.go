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
	"strings"
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
	cache *otter.Cache[string, *item]
	next  atomic.Uint64
	mu    sync.RWMutex
	tags  map[string]*tagState
	// sweepAt: the number of tags at which row tags set over RowTagTTL ago
	// are dropped (then twice what is left, at least minSweep)
	sweepAt int
	closed  atomic.Bool
}

// RowTagTTL is how long the version of a row tag (a tag holding the byte
// 0x1f: a table's rows by key value) is kept after it was set, once the
// store holds many tags: one tag per row read or written would otherwise
// grow without bound. A dropped version is recreated anew on the next
// read, which only invalidates what was stamped with the old one.
const RowTagTTL = time.Hour

const minSweep = 1 << 14

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
	set     int64            // when version was set (unix nanos)
}

// sweep drops row tags set over RowTagTTL ago and not held, once there are
// sweepAt tags; s.mu is held for writing.
func (s *Store) sweep(now int64) {
	if len(s.tags) < s.sweepAt {
		return
	}
	for t, st := range s.tags {
		if now-st.set < int64(RowTagTTL) || strings.IndexByte(t, 0x1f) < 0 {
			continue
		}
		held := false
		for _, d := range st.holds {
			held = held || now < d
		}
		if !held {
			delete(s.tags, t)
		}
	}
	s.sweepAt = max(2*len(s.tags), minSweep)
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
	s := &Store{tags: make(map[string]*tagState), sweepAt: minSweep}
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
	created := time.Now().UnixNano()
	s.sweep(created)
	for i, t := range tags {
		if versions[i] != 0 {
			continue
		}
		st := s.tags[t]
		if st == nil {
			st = &tagState{version: s.newVersion(), set: created}
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
	s.sweep(now)
	for _, t := range tags {
		st := s.tags[t]
		if st == nil {
			st = &tagState{}
			s.tags[t] = st
		}
		st.version, st.set = s.newVersion(), now
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
	now := time.Now().UnixNano()
	s.mu.Lock()
	for _, t := range tags {
		st := s.tags[t]
		if st == nil {
			st = &tagState{}
			s.tags[t] = st
		}
		st.version, st.set = s.newVersion(), now
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
