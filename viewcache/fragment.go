package viewcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
)

// Fragment writes to w the piece of a page that render produces, from the
// store when a fresh copy is there: Django's {% cache %} tag. The copy
// depends on tables (as GORM or SQL names them, with the tables under
// views), whose versions are read before render runs: a write to any of
// them through GORM makes it stale, as it does the plugin's cached queries.
// ttl 0 means Config.TTL; plugin.Forever keeps it until it is invalidated.
//
// key names the fragment in this cache (Django's fragment name and
// vary_on values): put in it whatever the fragment varies on (a user id, a
// language). A read that names other tables than the copy was stored with
// is a miss. render writes to a buffer: nothing reaches w when it fails,
// and its error is returned as it is. Output larger than Config.MaxBytes is
// written but not stored.
//
// Inside a request handled by Page or Middleware, the fragment's tables
// (and their versions) become dependencies of the page too, even when the
// fragment was served from the store and no query ran.
//
// Fragment fails open: a store failure renders. It returns an error only
// from render, from w, or for invalid arguments (wrapping
// ErrInvalidOption).
func (c *Cache) Fragment(ctx context.Context, w io.Writer, key string, ttl time.Duration, tables []string, render func(io.Writer) error) error {
	switch {
	case render == nil:
		return fmt.Errorf("%w: Fragment %q with a nil render function", ErrInvalidOption, key)
	case ttl < 0 && ttl != plugin.Forever:
		return fmt.Errorf("%w: Fragment %q: TTL %v must be positive, 0 (default) or plugin.Forever", ErrInvalidOption, key, ttl)
	}
	for _, t := range tables {
		if invalidation.TableName(t) == "" {
			return fmt.Errorf("%w: Fragment %q: empty table name %q", ErrInvalidOption, key, t)
		}
	}
	if ttl == 0 {
		ttl = c.ttl
	}
	tags := append([]string{store.GlobalTag, c.nsTag}, c.p.DependsOn(tables...)...)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	text := "f\x00" + key
	k := c.prefix + ":f:" + key

	rec, versions, err := c.get(ctx, k, tags)
	now := time.Now()
	if err == nil && rec != nil && rec.Kind == kindFragment && rec.Check == text &&
		slices.Equal(rec.Tags, tags) && !rec.Expired(now.UnixNano()) && rec.Fresh(versions) {
		c.stats.fragHits.Add(1)
		remaining := time.Duration(0)
		if rec.Deadline != 0 {
			remaining = time.Duration(rec.Deadline - now.UnixNano())
		}
		depend(ctx, rec.Tags, rec.Versions, remaining)
		_, err := w.Write(rec.body)
		return err
	}
	c.stats.fragMisses.Add(1)

	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	body := buf.Bytes()
	if versions == nil { // the store failed: the page cannot know the versions either
		versions = make([]uint64, len(tags))
	}
	storable := err == nil && core.Known(versions) && len(body) <= c.maxBytes
	if storable {
		rec := &record{Head: head(kindFragment, text, tags, versions, now), body: body}
		storeTTL := time.Duration(0)
		if ttl != plugin.Forever {
			rec.Deadline = now.Add(ttl).UnixNano()
			storeTTL = ttl
		}
		if err := c.put(k, rec, storeTTL); err != nil && !errors.Is(err, store.ErrTooLarge) {
			c.storeFailed("set", err)
		}
	}
	bound := ttl
	if ttl == plugin.Forever {
		bound = 0
	}
	depend(ctx, tags, versions, bound)
	_, err = w.Write(body)
	return err
}
