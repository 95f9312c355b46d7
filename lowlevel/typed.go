package lowlevel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gormcache/gormcache/internal/core"
)

// Get returns the value stored under key as a T, and whether there was a
// live one: stored with the same tables, not expired, and not stale (none
// of tables, nor the whole cache, was invalidated or written through GORM
// since the value was computed). tables must be those the value was stored
// with. An entry that will not decode into T is a miss, and is deleted.
// Store errors are returned, wrapping store.ErrUnavailable (or
// store.ErrClosed).
func Get[T any](ctx context.Context, c *Cache, key string, tables ...string) (T, bool, error) {
	var zero T
	tags, err := c.tags(tables)
	if err != nil {
		return zero, false, err
	}
	k := c.key(key)
	versions := make([]uint64, len(tags))
	raw, err := c.load(ctx, k, tags, versions)
	if err != nil {
		return zero, false, c.opErr("get", key, err)
	}
	v, ok := hit[T](ctx, c, k, raw, tags, versions)
	return v, ok, nil
}

// Set stores v under key for ttl (0: the cache's TTL; plugin.Forever: until
// invalidated or evicted; Skip: delete key instead), depending on tables: a
// write to one of them makes it stale.
//
// v is stamped with the tables' versions as Set reads them. If v was
// computed from those tables before a write that has committed since, it
// is stored as fresh: for values computed from the database, use
// [Remember], or [Cache.Stamp] before computing and [SetStamped]. While a
// write to one of tables is in flight, v is not stored and key's previous
// value is deleted.
func Set[T any](ctx context.Context, c *Cache, key string, v T, ttl time.Duration, tables ...string) error {
	s, err := c.Stamp(ctx, tables...)
	if err != nil {
		return err
	}
	return SetStamped(ctx, c, key, v, ttl, s)
}

// SetStamped is [Set] with the stamp s, taken by [Cache.Stamp] before v was
// computed: if one of its tables was written since, v is stored stale (no
// Get returns it). A value computed while a write was in flight is not
// stored, and key's previous value is deleted.
func SetStamped[T any](ctx context.Context, c *Cache, key string, v T, ttl time.Duration, s Stamp) error {
	if n := len(s.tags); n < 2 || s.tags[n-2] != c.nsTag {
		return fmt.Errorf("%w: SetStamped %q with a Stamp not taken by this cache", ErrInvalidArgument, key)
	}
	ttl, err := c.ttlFor(ttl)
	if err != nil {
		return err
	}
	k := c.key(key)
	var e *entry
	if ttl == Skip || !core.Known(s.versions) {
		if ttl != Skip {
			c.stats.notStored.Add(1)
		}
	} else if e, err = makeEntry(c, v, s.tags, s.versions, ttl); err != nil {
		return fmt.Errorf("lowlevel: set %q: %w", key, err)
	}
	if c.swap == nil {
		defer lockKey(k)()
	}
	if e == nil {
		err = c.apply(ctx, k, change{del: true})
	} else {
		err = c.write(ctx, k, e, storeTTL(e.Deadline))
	}
	if err != nil {
		return c.opErr("set", key, err)
	}
	return nil
}

// Add stores v under key, as [Set] does, only if key holds no live value
// (by the tables it was stored with), and reports whether it stored
// (Django's add). It reports false, too, when a write to one of tables is
// in flight, or ttl is Skip.
//
// Add is atomic across processes only on a store that implements
// [Swapper]; otherwise only within this process.
func Add[T any](ctx context.Context, c *Cache, key string, v T, ttl time.Duration, tables ...string) (bool, error) {
	ttl, err := c.ttlFor(ttl)
	if err != nil {
		return false, err
	}
	tags, err := c.tags(tables)
	if err != nil || ttl == Skip {
		return false, err
	}
	added := false
	err = c.update(ctx, c.key(key), tags, func(cur *current) (change, error) {
		added = false // reset: a compare-and-swap retry calls this again
		if cur.alive() {
			return change{}, nil
		}
		if !core.Known(cur.versions) {
			c.stats.notStored.Add(1)
			return change{}, nil
		}
		e, err := makeEntry(c, v, tags, cur.versions, ttl)
		if err != nil {
			return change{}, err
		}
		added = true
		return change{next: e, ttl: storeTTL(e.Deadline)}, nil
	})
	if err != nil {
		return false, c.opErr("add", key, err)
	}
	return added, nil
}

// GetOrSet returns the live value under key (stored with the same tables)
// and true, or else stores v, as [Add] does, and returns v and false: Go's
// LoadOrStore, Django's get_or_set with a value (for a function, use
// [Remember]). It fails open: when the store fails, it returns v, false and
// no error (the failure is counted and logged). It is atomic as Add is.
func GetOrSet[T any](ctx context.Context, c *Cache, key string, v T, ttl time.Duration, tables ...string) (T, bool, error) {
	ttl, err := c.ttlFor(ttl)
	if err != nil {
		return v, false, err
	}
	tags, err := c.tags(tables)
	if err != nil {
		return v, false, err
	}
	k := c.key(key)
	var (
		got    T
		loaded bool
		found  status
	)
	err = c.update(ctx, k, tags, func(cur *current) (change, error) {
		var zero T
		got, loaded, found = zero, false, cur.st // reset: a compare-and-swap retry calls this again
		if cur.st == live {
			if old, err := valueOf[T](cur.e); err == nil {
				got, loaded = old, true
				return change{}, nil
			}
			found = corrupt
		}
		if ttl == Skip {
			return change{}, nil
		}
		if !core.Known(cur.versions) {
			c.stats.notStored.Add(1)
			return change{}, nil
		}
		e, err := makeEntry(c, v, tags, cur.versions, ttl)
		if err != nil {
			return change{}, err
		}
		return change{next: e, ttl: storeTTL(e.Deadline)}, nil
	})
	if err != nil {
		var ve *valueError
		if errors.As(err, &ve) {
			return v, false, fmt.Errorf("lowlevel: get-or-set %q: %w", key, err)
		}
		c.failOpen("get-or-set", key, err)
		return v, false, nil
	}
	switch {
	case loaded:
		c.stats.hits.Add(1)
		return got, true, nil
	case found == corrupt:
		c.stats.corrupt.Add(1)
	case found == mismatched:
		c.stats.mismatches.Add(1)
	}
	c.stats.misses.Add(1)
	return v, false, nil
}
