package lowlevel

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
)

// Swapper is an optional interface of a [store.Store] that makes [Add],
// [GetOrSet], [Cache.Incr] and [Cache.Touch] atomic across processes. A
// Redis store can implement it with a short Lua script (GET, compare, SET
// PX; SET NX PX when old is nil), a Memcached store with add, and gets
// followed by cas.
//
// Without it, those operations are read-modify-write sequences made atomic
// by a lock in this process only: two processes sharing a store may then
// both add the same key, or lose one another's increments. Every store
// shipped today lacks it; for the in-process memstore that is exact.
type Swapper interface {
	// CompareAndSwap stores new under key for ttl (ttl <= 0: no expiry
	// other than eviction) if the value under key is old, byte for byte,
	// or, when old is nil, if there is none. It reports whether it stored.
	// The store may keep new: callers must not modify it afterwards.
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
}

// casAttempts bounds the retries of a compare-and-swap that others keep
// beating.
const casAttempts = 64

// locks serialise the writes to a key within this process when the store
// has no Swapper: every Cache in the process shares them, whatever its
// store.
var (
	locks    [256]sync.Mutex
	lockSeed = maphash.MakeSeed()
)

func lockIndex(k string) int { return int(maphash.String(lockSeed, k) % uint64(len(locks))) }

// lockKey locks k's stripe and returns the unlock.
func lockKey(k string) func() {
	m := &locks[lockIndex(k)]
	m.Lock()
	return m.Unlock
}

// lockKeys locks the stripes of keys, in order, and returns the unlock.
func lockKeys(keys []string) func() {
	idx := make([]int, len(keys))
	for i, k := range keys {
		idx[i] = lockIndex(k)
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			locks[i].Unlock()
		}
	}
}

// current is what an update found under a key.
type current struct {
	raw any    // as the store returned it: nil, *entry or envelope
	e   *entry // parsed, when raw is an entry
	// st is judged by the entry's own tags (mismatched only when they are
	// not the ones the update named, and it is live by its own).
	st status
	// versions are the current versions of the tags the update named: the
	// stamp of a value it stores.
	versions []uint64
}

// alive reports whether the key holds a live value, by its own tables.
func (cur *current) alive() bool { return cur.st == live || cur.st == mismatched }

// change is what an update decided to do.
type change struct {
	next *entry        // the entry to store, or nil
	ttl  time.Duration // the store TTL of next
	del  bool          // delete the key instead
}

// read returns what is under k, judged as update needs it.
func (c *Cache) read(ctx context.Context, k string, tags []string) (*current, error) {
	cur := &current{versions: make([]uint64, len(tags))}
	raw, err := c.loadAgain(ctx, k, tags, cur.versions)
	if err != nil {
		return nil, err
	}
	cur.raw = raw
	e, st := examine(raw, tags, cur.versions)
	cur.e, cur.st = e, st
	if st == mismatched {
		own := make([]uint64, len(e.tags))
		if err := c.versions(ctx, e.tags, own); err != nil {
			return nil, err
		}
		if !e.Fresh(own) {
			cur.st = stale
		}
	}
	return cur, nil
}

// update applies decide to the entry under k atomically: under this
// process's lock for k, or with the store's compare-and-swap. tags are the
// tags whose versions decide gets in current.versions.
func (c *Cache) update(ctx context.Context, k string, tags []string, decide func(*current) (change, error)) error {
	if c.swap == nil {
		defer lockKey(k)()
		cur, err := c.read(ctx, k, tags)
		if err != nil {
			return err
		}
		ch, err := decide(cur)
		if err != nil {
			return err
		}
		return c.apply(ctx, k, ch)
	}
	for range casAttempts {
		cur, err := c.read(ctx, k, tags)
		if err != nil {
			return err
		}
		ch, err := decide(cur)
		if err != nil {
			return err
		}
		if ch.next == nil {
			return c.apply(ctx, k, ch)
		}
		old, _ := cur.raw.([]byte)
		if cur.raw != nil && old == nil {
			old = []byte{} // a foreign value: never equal, so a retry would not help
		}
		sctx, cancel := c.storeCtx(ctx)
		ok, err := c.swap.CompareAndSwap(sctx, k, old, ch.next.marshal(), ch.ttl)
		cancel()
		if err != nil {
			return err
		}
		if ok {
			c.stats.stores.Add(1)
			return nil
		}
	}
	return fmt.Errorf("%w: %d compare-and-swap attempts lost to concurrent writers", store.ErrUnavailable, casAttempts)
}

func (c *Cache) apply(ctx context.Context, k string, ch change) error {
	switch {
	case ch.del:
		sctx, cancel := c.storeCtx(ctx)
		defer cancel()
		return c.st.Delete(sctx, k)
	case ch.next != nil:
		return c.write(ctx, k, ch.next, ch.ttl)
	}
	return nil
}

// Incr adds delta to the integer stored under key and returns the result
// (Django's incr; decr is a negative delta). The entry keeps its tables,
// stamp and expiry. A key without a live value is ErrNotFound; a value that
// is not an integer, or would leave its type's range, is ErrNotInteger.
//
// Incr is atomic across processes only on a store that implements
// [Swapper]; otherwise only within this process.
func (c *Cache) Incr(ctx context.Context, key string, delta int64) (int64, error) {
	var n int64
	err := c.update(ctx, c.key(key), nil, func(cur *current) (change, error) {
		if !cur.alive() {
			return change{}, ErrNotFound
		}
		e := cur.e
		next := &entry{tags: e.tags, Stamp: e.Stamp}
		ttl := storeTTL(e.Deadline)
		if ttl < 0 {
			return change{}, ErrNotFound // expired since the read
		}
		if e.hasValue {
			v, sum, err := addTo(e.value, delta)
			if err != nil {
				return change{}, err
			}
			n, next.value, next.hasValue = sum, v, true
			return change{next: next, ttl: ttl}, nil
		}
		old, err := integer(e.payload)
		if err != nil {
			return change{}, err
		}
		sum, ok := add64(old, delta)
		if !ok {
			return change{}, ErrNotInteger
		}
		if next.payload, err = encode(sum); err != nil {
			return change{}, err
		}
		n = sum
		return change{next: next, ttl: ttl}, nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotInteger) {
			return 0, fmt.Errorf("lowlevel: incr %q: %w", key, err)
		}
		return 0, c.opErr("incr", key, err)
	}
	return n, nil
}

// add64 returns a+b and whether it did not overflow.
func add64(a, b int64) (int64, bool) {
	s := a + b
	return s, (b >= 0) == (s >= a)
}

// integer decodes a msgpack integer that fits in an int64.
func integer(payload []byte) (int64, error) {
	var v any
	if err := decodeInto(payload, &v); err != nil {
		return 0, ErrNotInteger
	}
	switch x := v.(type) {
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
	}
	return 0, ErrNotInteger
}

// addTo adds delta to a Go integer, keeping its type.
func addTo(v any, delta int64) (any, int64, error) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil, 0, ErrNotInteger
	}
	out := reflect.New(rv.Type()).Elem()
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		sum, ok := add64(rv.Int(), delta)
		if !ok || out.OverflowInt(sum) {
			return nil, 0, ErrNotInteger
		}
		out.SetInt(sum)
		return out.Interface(), sum, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, 0, ErrNotInteger
		}
		sum, ok := add64(int64(u), delta)
		if !ok || sum < 0 || out.OverflowUint(uint64(sum)) {
			return nil, 0, ErrNotInteger
		}
		out.SetUint(uint64(sum))
		return out.Interface(), sum, nil
	}
	return nil, 0, ErrNotInteger
}

// Touch gives the live value under key a new TTL (0: the cache's;
// plugin.Forever: none; Skip: expire it now) and reports whether there was
// one (Django's touch). Its tables and stamp are kept.
func (c *Cache) Touch(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ttl, err := c.ttlFor(ttl)
	if err != nil {
		return false, err
	}
	touched := false
	err = c.update(ctx, c.key(key), nil, func(cur *current) (change, error) {
		touched = false // reset: a compare-and-swap retry calls this again
		if !cur.alive() {
			return change{}, nil
		}
		touched = true
		if ttl == Skip {
			return change{del: true}, nil
		}
		next := *cur.e
		next.Deadline = deadline(ttl)
		st := ttl
		if ttl == plugin.Forever {
			st = 0
		}
		return change{next: &next, ttl: st}, nil
	})
	if err != nil {
		return false, c.opErr("touch", key, err)
	}
	return touched, nil
}
