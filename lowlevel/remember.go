package lowlevel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gormcache/gormcache/internal/core"
)

// Remember returns the live value under key (stored with the same tables),
// or else runs fn, stores what it returns for ttl depending on tables, and
// returns it: Laravel's remember, Django's get_or_set with a callable.
//
// Concurrent calls for one key that find no value share one run of fn in
// this process. Calls that read different table versions do not, so a
// value computed before a commit is never handed to a call that began after
// it; nor do calls that cannot read the versions (a write to one of the
// tables is in flight, or the store fails): each of those runs fn itself,
// with ctx, as if there were no cache. A shared run's fn gets a context
// with ctx's values but not its cancellation, so that one caller giving up
// does not fail the others; a caller whose ctx is done returns ctx.Err() at
// once, and fn goes on to fill the cache.
//
// The value is stamped with the tables' versions read before fn runs, so a
// value computed while a write to one of them was in flight, or before a
// write that committed while fn ran, is never served. An error from fn is
// returned to every caller sharing the run and is not cached; a panic in fn
// is raised again, as a [*PanicError], in every caller sharing the run, and
// nothing is cached.
//
// Remember fails open: when the store fails, fn runs and its value is
// returned without error (the failure is counted and logged). Errors come
// only from fn, from ctx, or from invalid arguments. ttl is as for [Set]:
// with Skip, the cache is read but nothing is stored.
func Remember[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, tables []string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if fn == nil {
		return zero, fmt.Errorf("%w: Remember %q with a nil function", ErrInvalidArgument, key)
	}
	ttl, err := c.ttlFor(ttl)
	if err != nil {
		return zero, err
	}
	tags, err := c.tags(tables)
	if err != nil {
		return zero, err
	}
	k := c.key(key)
	versions := make([]uint64, len(tags))
	raw, err := c.loadAgain(ctx, k, tags, versions)
	if err != nil {
		c.failOpen("remember", key, err)
		c.stats.misses.Add(1)
	} else if v, ok := hit[T](ctx, c, k, raw, tags, versions); ok {
		return v, nil
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if err != nil || !core.Known(versions) {
		// Versions unknown: this call cannot tell whether a run under way
		// began before a write that committed before it, so it shares
		// none, and what it computes cannot be stored.
		if err == nil {
			c.stats.notStored.Add(1)
		}
		return fn(ctx)
	}

	typ := reflect.TypeFor[T]()
	f, leader := c.group(typ).Join(flightKey(k, tags, versions))
	if leader {
		// The run outlives its caller's cancellation: the others wait on it.
		go func() { f.Finish(fill(context.WithoutCancel(ctx), c, k, key, tags, ttl, fn)) }()
	}
	res, ok := f.Wait(ctx)
	if !ok {
		return zero, ctx.Err()
	}
	r := res.(*filled[T])
	if !leader && !c.share && !shareable(typ) && r.payload != nil {
		// Every caller gets its own copy of a value with references.
		var v T
		if decodeInto(r.payload, &v) == nil {
			return v, nil
		}
	}
	return r.result()
}

// flightKey names a run of fn: one key, for one set of tags at one set of
// versions.
func flightKey(k string, tags []string, versions []uint64) string {
	var b strings.Builder
	b.WriteString(k)
	for i, t := range tags {
		b.WriteByte(0)
		b.WriteString(t)
		b.WriteByte(0)
		b.WriteString(strconv.FormatUint(versions[i], 36))
	}
	return b.String()
}

// filled is the outcome of a run of fn.
type filled[T any] struct {
	v        T
	payload  []byte // v encoded, for copies; nil when not encodable or shared
	err      error
	panicked *PanicError
}

// result is what a caller of Remember returns; it panics again with fn's
// panic.
func (r *filled[T]) result() (T, error) {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.v, r.err
}

// fill is the body of a run: look again (a run that ended just before this
// one may have stored the value), read the stamp, run fn, store.
func fill[T any](ctx context.Context, c *Cache, k, key string, tags []string, ttl time.Duration, fn func(context.Context) (T, error)) *filled[T] {
	versions := make([]uint64, len(tags))
	raw, err := c.load(ctx, k, tags, versions)
	if err != nil {
		c.failOpen("remember", key, err)
	} else if e, st := examine(raw, tags, versions); st == live {
		if v, err := valueOf[T](e); err == nil {
			return &filled[T]{v: v, payload: e.payload}
		}
	}
	storable := err == nil && ttl != Skip
	if storable && !core.Known(versions) {
		storable = false
		c.stats.notStored.Add(1)
	}

	v, err, p := run(ctx, fn)
	if p != nil {
		return &filled[T]{panicked: p}
	}
	if err != nil {
		return &filled[T]{v: v, err: err}
	}
	r := &filled[T]{v: v}
	if !storable && (c.share || shareable(reflect.TypeFor[T]())) {
		return r
	}
	e, err := makeEntry(c, v, tags, versions, ttl)
	if err != nil {
		c.warn("lowlevel: value not cached", "key", key, "error", err)
		return r
	}
	r.payload = e.payload
	if !storable {
		return r
	}
	if c.swap == nil {
		defer lockKey(k)()
	}
	if err := c.write(ctx, k, e, storeTTL(e.Deadline)); err != nil {
		c.failOpen("remember", key, err)
	}
	return r
}

// PanicError is what a caller of [Remember] panics with when the function
// of a shared run panicked: the function's panic value and stack. (A
// function that Remember runs unshared panics in its caller as it is.)
type PanicError struct {
	Value any    // the value fn panicked with
	Stack []byte // fn's stack when it panicked
}

// Error implements error.
func (p *PanicError) Error() string {
	return fmt.Sprintf("lowlevel: Remember's function panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// errGoexit is the error of a function that called runtime.Goexit.
var errGoexit = errors.New("lowlevel: Remember's function called runtime.Goexit")

// run calls fn in a goroutine of its own, so that a panic or a
// runtime.Goexit in fn becomes a result rather than leaving the other
// callers waiting for ever.
func run[T any](ctx context.Context, fn func(context.Context) (T, error)) (v T, err error, p *PanicError) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		normal := false
		defer func() {
			if normal {
				return
			}
			if r := recover(); r != nil {
				p = &PanicError{Value: r, Stack: debug.Stack()}
			} else {
				err = errGoexit
			}
		}()
		v, err = fn(ctx)
		normal = true
	}()
	<-done
	return v, err, p
}
