package lowlevel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
)

// Skip, as a TTL, stores nothing: it is Django's TIMEOUT=0, "do not cache".
// [Set] with Skip deletes the key, [Cache.Touch] with Skip expires it,
// [Add] adds nothing, and [Remember] reads the cache but does not store what
// its function returns. As [Config.TTL] it turns storing off for the whole
// cache (reads still find what others stored).
const Skip time.Duration = -2

// Defaults used for the zero values of [Config].
const (
	DefaultPrefix       = "ll"
	DefaultTTL          = plugin.DefaultTTL          // 5 minutes: Django's 300 s
	DefaultMaxBytes     = plugin.DefaultMaxBytes     // 1 MiB: memcached's item limit
	DefaultStoreTimeout = plugin.DefaultStoreTimeout // per store call
)

// Errors returned by the package; check them with errors.Is. Store errors
// are returned wrapped as they are (store.ErrUnavailable, store.ErrTooLarge,
// store.ErrClosed); any other store error is wrapped with
// store.ErrUnavailable too.
var (
	// ErrInvalidConfig is wrapped by the errors New and NewWithStore return
	// for a bad Config.
	ErrInvalidConfig = errors.New("lowlevel: invalid config")
	// ErrInvalidArgument is wrapped by errors for a bad TTL, an empty table
	// name, a nil function or a Stamp of another cache.
	ErrInvalidArgument = errors.New("lowlevel: invalid argument")
	// ErrNotFound is returned by Incr for a key that holds no live value
	// (Django raises ValueError).
	ErrNotFound = errors.New("lowlevel: key not found")
	// ErrNotInteger is returned by Incr for a value that is not an integer,
	// or when adding delta would take it out of its type's range.
	ErrNotInteger = errors.New("lowlevel: value is not an integer or would overflow")
)

// Config configures a [Cache]. The zero Config is ready to use.
type Config struct {
	// Prefix namespaces the cache's keys in the store: a key k is stored
	// under Prefix+":"+k. "" means DefaultPrefix ("ll"). It must differ
	// from the plugin's prefix ("gc" by default). Caches with the same
	// prefix on one store share their entries. To drop every entry of an
	// older format of your values at once (Django's VERSION), change it:
	// "ll:v2".
	Prefix string

	// TTL is how long a value set with a TTL of 0 is kept. 0 means
	// DefaultTTL (5 minutes); plugin.Forever keeps values until they are
	// invalidated or evicted; Skip stores nothing. Other negative values
	// are errors.
	TTL time.Duration

	// MaxBytes bounds an encoded value: a larger one is not stored (Set
	// returns an error wrapping store.ErrTooLarge; Remember returns the
	// value uncached). 0 means DefaultMaxBytes.
	MaxBytes int

	// StoreTimeout bounds each call to a store that is not in-process; a
	// slower call fails with store.ErrUnavailable. 0 means
	// DefaultStoreTimeout (100 ms).
	StoreTimeout time.Duration

	// ShareValues makes an in-process store keep values of every type as
	// they are, and return them as they are: a hit then costs no decoding,
	// but Get returns the very slice, map or pointer that was stored, to
	// every caller, so callers must not modify what they get (nor what they
	// gave to Set). By default only values of types without references
	// (numbers, strings, arrays and structs of those, time.Time) are kept
	// as they are; others are kept encoded, and every caller gets its own
	// copy. Stores that are not in-process always copy.
	ShareValues bool

	// Logger receives the failures that Remember and GetOrSet hide (store
	// errors, values too large to store; at most one log a second). nil
	// means slog.Default().
	Logger *slog.Logger
}

// Cache is a typed key-value cache whose entries depend on tables and go
// stale when gormcache invalidates those tables: after a GORM write through
// a *gorm.DB with the plugin installed, [plugin.Plugin.Invalidate],
// [Cache.Invalidate] and the flushes. Its typed operations are generic
// functions ([Get], [Set], [Remember], …). A Cache is safe for concurrent
// use.
type Cache struct {
	st     store.Store
	mem    *memstore.Store // in-process store keeping *entry values, or nil
	swap   Swapper         // the store's compare-and-swap, or nil
	p      *plugin.Plugin  // for Invalidate, or nil
	prefix string
	nsTag  string
	ttl    time.Duration
	max    int
	share  bool
	// inv judges what may be served and invalidates: the plugin's, or the
	// cache's own on a store of its own (NewWithStore)
	inv   *core.Invalidator
	calls core.Calls
	log   *core.Log

	flights sync.Map // reflect.Type → *core.Flights[any]
	stats   counters
}

// New returns a cache on the plugin's store, whose [Cache.Invalidate] is the
// plugin's (and so also reaches what a write to the tables reaches:
// foreign-key cascades, triggers, partitions). It may be called before
// db.Use(p).
func New(p *plugin.Plugin, cfg Config) (*Cache, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil plugin", ErrInvalidConfig)
	}
	st := p.Store()
	if st == nil {
		return nil, fmt.Errorf("%w: the plugin has no store (its Config is invalid: db.Use reports why)", ErrInvalidConfig)
	}
	c, err := newCache(st, cfg)
	if err != nil {
		return nil, err
	}
	c.p = p
	// The plugin's invalidator: an outage or a lost bump met by the plugin
	// or by this cache stops both.
	c.inv = core.Of(p)
	return c, nil
}

// NewWithStore returns a cache on st. Use the store the plugin uses, or
// writes through GORM will not invalidate the cache's entries.
func NewWithStore(st store.Store, cfg Config) (*Cache, error) {
	c, err := newCache(st, cfg)
	if err != nil {
		return nil, err
	}
	_, own := st.(*memstore.Store)
	c.inv = core.NewInvalidator(core.Config{Store: st, Calls: c.calls, Shared: !own, Log: c.log})
	return c, nil
}

func newCache(st store.Store, cfg Config) (*Cache, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cache{
		st:     st,
		prefix: cfg.Prefix,
		ttl:    cfg.TTL,
		max:    cfg.MaxBytes,
		share:  cfg.ShareValues,
		log:    core.NewLog(cfg.Logger),
	}
	c.nsTag = NamespaceTag(c.prefix)
	if sw, ok := st.(Swapper); ok {
		c.swap = sw
	} else if ms, ok := st.(*memstore.Store); ok {
		// Only memstore is known to keep any Go value as it is: other
		// ValueStores (a tiered store) encode values with the plugin's codec.
		c.mem = ms
	}
	c.calls = core.Calls{Timeout: cfg.StoreTimeout, InProcess: c.mem != nil}
	return c, nil
}

// withDefaults returns c, checked, with the defaults for its zero fields
// (the module's one convention for a Config).
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.TTL < 0 && c.TTL != plugin.Forever && c.TTL != Skip:
		return Config{}, fmt.Errorf("%w: TTL must be positive, 0 (default), plugin.Forever or Skip, got %v", ErrInvalidConfig, c.TTL)
	case c.MaxBytes < 0:
		return Config{}, fmt.Errorf("%w: MaxBytes must not be negative, got %d", ErrInvalidConfig, c.MaxBytes)
	case c.StoreTimeout < 0:
		return Config{}, fmt.Errorf("%w: StoreTimeout must not be negative, got %v", ErrInvalidConfig, c.StoreTimeout)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	return c, nil
}

// Store returns the store the cache uses.
func (c *Cache) Store() store.Store { return c.st }

// Close stops the background retries of invalidations that did not reach
// the store (after one last attempt) for a cache made by [NewWithStore]; it
// does not close the store. A cache made by [New] shares the plugin's,
// which the plugin's Close stops: for it, Close does nothing. The cache
// still works after Close, without retries.
func (c *Cache) Close() error {
	if c.p == nil {
		c.inv.Close()
	}
	return nil
}

// Stats counts a cache's operations since it was made.
type Stats struct {
	Hits   uint64 // reads answered from the store
	Misses uint64 // reads that found no live entry (absent, expired, stale, corrupt or mismatched)
	Stores uint64 // values written
	// NotStored counts values not stored because a write to one of their
	// tables was in flight (or their versions were unknown).
	NotStored uint64
	// CorruptEntries counts entries that would not decode, or not into the
	// type asked for: misses, and the entry is deleted or overwritten.
	CorruptEntries uint64
	// Mismatches counts entries found under a key but stored with other
	// tables than the read named: misses (give a key the same tables on
	// every call).
	Mismatches uint64
	// StoreErrors counts failed store calls.
	StoreErrors uint64
}

type counters struct {
	hits, misses, stores, notStored, corrupt, mismatches, storeErrors atomic.Uint64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	s := &c.stats
	return Stats{
		Hits:           s.hits.Load(),
		Misses:         s.misses.Load(),
		Stores:         s.stores.Load(),
		NotStored:      s.notStored.Load(),
		CorruptEntries: s.corrupt.Load(),
		Mismatches:     s.mismatches.Load(),
		StoreErrors:    s.storeErrors.Load(),
	}
}

// Invalidate makes every entry that depends on one of tables stale, in this
// cache and in the plugin's query cache alike. With a cache made by [New],
// it is the plugin's Invalidate. Use it after writes made outside GORM.
func (c *Cache) Invalidate(ctx context.Context, tables ...string) error {
	tags, err := normalise(tables)
	if err != nil || len(tags) == 0 {
		return err
	}
	if c.p != nil {
		if err := c.p.Invalidate(ctx, tables...); err != nil {
			return fmt.Errorf("lowlevel: invalidate %q: %w", tables, classify(err))
		}
		return nil
	}
	return c.bump(ctx, "invalidate", core.Wide(tags)) // (the plugin's row-level entries too)
}

// Flush makes every entry of this cache (of its Prefix, on its store) stale
// at once: Django's clear(). The plugin's query results are not touched; to
// drop everything, use the plugin's Flush.
func (c *Cache) Flush(ctx context.Context) error {
	return c.bump(ctx, "flush", []string{c.nsTag})
}

// bump gives tags new versions, with a context the caller cannot cancel;
// when it fails, the tags are not served (by this cache, and the plugin's
// caches when it is on one) until a retry in the background lands.
func (c *Cache) bump(ctx context.Context, op string, tags []string) error {
	if err := c.inv.Bump(ctx, tags); err != nil {
		c.stats.storeErrors.Add(1)
		return fmt.Errorf("lowlevel: %s %q: %w", op, tags, classify(err))
	}
	return nil
}

// Stamp is the state of some tables at one moment. Take it before computing
// a value from them, and store the value with [SetStamped]: if a write to
// one of the tables commits in between, the value is stored as stale and
// never served. ([Remember] does this by itself.)
type Stamp struct {
	tags     []string
	versions []uint64
}

// Stamp reads the current versions of tables.
func (c *Cache) Stamp(ctx context.Context, tables ...string) (Stamp, error) {
	tags, err := c.tags(tables)
	if err != nil {
		return Stamp{}, err
	}
	s := Stamp{tags: tags, versions: make([]uint64, len(tags))}
	err = c.versions(ctx, tags, s.versions)
	if err == nil && !core.Known(s.versions) {
		err = c.versions(ctx, tags, s.versions) // as in loadAgain
	}
	if err != nil {
		c.stats.storeErrors.Add(1)
		return Stamp{}, fmt.Errorf("lowlevel: stamp %q: %w", tables, classify(err))
	}
	return s, nil
}

// Delete removes keys (Django's delete and delete_many). Absent keys are
// not an error.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = c.key(k)
	}
	if c.swap == nil {
		defer lockKeys(ks)()
	}
	sctx, cancel := c.storeCtx(ctx)
	defer cancel()
	if err := c.st.Delete(sctx, ks...); err != nil {
		c.stats.storeErrors.Add(1)
		return fmt.Errorf("lowlevel: delete %q: %w", keys, classify(err))
	}
	return nil
}

// key is the store key of a caller's key.
func (c *Cache) key(k string) string { return c.prefix + ":" + k }

// normalise returns the sorted, distinct normalised names of tables.
func normalise(tables []string) ([]string, error) {
	tags := make([]string, 0, len(tables)+2)
	for _, t := range tables {
		n := invalidation.TableName(t)
		if n == "" {
			return nil, fmt.Errorf("%w: empty table name in %q", ErrInvalidArgument, tables)
		}
		tags = append(tags, n)
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}

// tags returns what an entry depending on tables depends on: the tables,
// the cache's namespace tag and store.GlobalTag.
func (c *Cache) tags(tables []string) ([]string, error) {
	tags, err := normalise(tables)
	if err != nil {
		return nil, err
	}
	if c.p != nil {
		// views and declared dependencies: a view's entry depends on its tables
		tags, _ = normalise(c.p.DependsOn(tags...))
	}
	return append(tags, c.nsTag, store.GlobalTag), nil
}

// ttlFor resolves a caller's TTL: 0 is the cache's.
func (c *Cache) ttlFor(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		ttl = c.ttl
	}
	if ttl < 0 && ttl != plugin.Forever && ttl != Skip {
		return 0, fmt.Errorf("%w: TTL must be positive, 0 (the cache's), plugin.Forever or Skip, got %v", ErrInvalidArgument, ttl)
	}
	return ttl, nil
}

// deadline is when a value stored now for ttl (positive or Forever) expires.
func deadline(ttl time.Duration) int64 {
	if ttl == plugin.Forever {
		return 0
	}
	return time.Now().Add(ttl).UnixNano()
}

// storeTTL is the TTL given to the store for a value expiring at deadline
// (0 = none); it is <= 0 when the value has expired already.
func storeTTL(deadline int64) time.Duration {
	if deadline == 0 {
		return 0
	}
	if d := time.Until(time.Unix(0, deadline)); d > 0 {
		return d
	}
	return -1
}

// storeCtx bounds a call to a store that is not in-process.
func (c *Cache) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return c.calls.Ctx(ctx, false)
}

// load reads the entry under k and the versions of tags in one store call.
// It returns nil, an *entry or an envelope.
func (c *Cache) load(ctx context.Context, k string, tags []string, versions []uint64) (any, error) {
	sctx, cancel := c.storeCtx(ctx)
	defer cancel()
	var v any
	var err error
	if c.mem != nil {
		v, err = c.mem.GetValue(sctx, k, tags, versions)
	} else {
		var b []byte
		b, err = c.st.Get(sctx, k, tags, versions)
		if b != nil {
			v = b
		}
	}
	c.record(ctx, tags, versions, err)
	return v, err
}

// record applies the invalidator's rule to what a read of tags found, and
// tells a recorded request (per-view caching) that it read them: a failed
// store call may be an outage (which stops the three caches on a plugin),
// and while a tag may not be served (its last invalidation did not reach
// the store, or a shared store had an outage) its version reads as
// unknown: nothing is served or stored for it.
func (c *Cache) record(ctx context.Context, tags []string, versions []uint64, err error) {
	if err != nil {
		c.inv.StoreFailed("lowlevel", "read", err)
		clear(versions) // unknown: the request's response is not stored
	} else {
		c.inv.Judge(tags, versions)
	}
	if c.p != nil {
		c.p.RecordRead(ctx, tags, versions)
	}
}

// loadAgain is load, done twice when a version reads 0: either a write is
// in flight, or a tag is new and another caller is giving it its first
// version (an in-process store answers 0 to the loser of that race).
func (c *Cache) loadAgain(ctx context.Context, k string, tags []string, versions []uint64) (any, error) {
	raw, err := c.load(ctx, k, tags, versions)
	if err == nil && !core.Known(versions) {
		raw, err = c.load(ctx, k, tags, versions)
	}
	return raw, err
}

func (c *Cache) versions(ctx context.Context, tags []string, versions []uint64) error {
	sctx, cancel := c.storeCtx(ctx)
	defer cancel()
	err := c.st.Versions(sctx, tags, versions)
	c.record(ctx, tags, versions, err)
	return err
}

// write stores e under k for the store TTL ttl (0 = none).
func (c *Cache) write(ctx context.Context, k string, e *entry, ttl time.Duration) error {
	ctx, cancel := c.storeCtx(ctx)
	defer cancel()
	var err error
	if c.mem != nil {
		err = c.mem.SetValue(ctx, k, e, e.size(), ttl)
	} else {
		err = c.st.Set(ctx, k, e.marshal(), ttl)
	}
	if err == nil {
		c.stats.stores.Add(1)
	}
	return err
}

// drop deletes a corrupt entry, best effort.
func (c *Cache) drop(ctx context.Context, k string) {
	ctx, cancel := c.storeCtx(context.WithoutCancel(ctx))
	defer cancel()
	_ = c.st.Delete(ctx, k)
}

// valueError is an error of the value itself (it will not encode, or is
// too large), not of the store.
type valueError struct{ err error }

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// classify makes a store error one of the store's sentinels; errors of the
// value are left as they are.
func classify(err error) error {
	var ve *valueError
	if errors.As(err, &ve) {
		return err
	}
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// opErr counts and wraps the store error of an operation on key.
func (c *Cache) opErr(op, key string, err error) error {
	var ve *valueError
	if !errors.As(err, &ve) {
		c.stats.storeErrors.Add(1)
	}
	return fmt.Errorf("lowlevel: %s %q: %w", op, key, classify(err))
}

// failOpen counts and logs a store error that an operation hides from its
// caller.
func (c *Cache) failOpen(op, key string, err error) {
	c.stats.storeErrors.Add(1)
	c.warn("lowlevel: cache store failed; the value was computed instead", "op", op, "key", key, "error", err)
}

// warn logs at most once a second, so that a store outage does not flood
// the log.
func (c *Cache) warn(msg string, args ...any) {
	c.log.Limited(slog.LevelWarn, msg, args...)
}

// status is what a read found under a key.
type status int

const (
	absent     status = iota
	live              // fresh, unexpired, for the tags asked
	stale             // its tables were written since it was computed (or are being written)
	expired           // past its deadline
	mismatched        // stored for other tables than asked
	corrupt           // not an entry of this format
)

// examine judges what load returned for tags and their current versions.
func examine(raw any, tags []string, versions []uint64) (*entry, status) {
	if raw == nil {
		return nil, absent
	}
	e, err := parse(raw)
	switch {
	case err != nil:
		return nil, corrupt
	case e.Expired(time.Now().UnixNano()):
		return e, expired
	case !slices.Equal(e.tags, tags):
		return e, mismatched
	case !e.Fresh(versions):
		return e, stale
	}
	return e, live
}

// hit returns the value of a live entry found by load as a T, counting the
// read. A corrupt entry, or one that will not decode into T, is deleted.
func hit[T any](ctx context.Context, c *Cache, k string, raw any, tags []string, versions []uint64) (T, bool) {
	e, st := examine(raw, tags, versions)
	if st == live {
		v, err := valueOf[T](e)
		if err == nil {
			c.stats.hits.Add(1)
			return v, true
		}
		st = corrupt
	}
	switch st {
	case corrupt:
		c.stats.corrupt.Add(1)
		c.drop(ctx, k)
	case mismatched:
		c.stats.mismatches.Add(1)
	}
	c.stats.misses.Add(1)
	var zero T
	return zero, false
}

// makeEntry builds the entry of v for tags stamped with versions.
func makeEntry[T any](c *Cache, v T, tags []string, versions []uint64, ttl time.Duration) (*entry, error) {
	payload, err := encode(v)
	if err != nil {
		return nil, &valueError{err}
	}
	e := newEntry(tags, slices.Clone(versions), deadline(ttl), payload)
	if n := e.envelopeSize(); n > c.max {
		return nil, &valueError{fmt.Errorf("%d bytes, more than MaxBytes (%d): %w", n, c.max, store.ErrTooLarge)}
	}
	if c.mem != nil && (c.share || shareable(reflect.TypeFor[T]())) {
		e.value, e.hasValue, e.payload = v, true, nil
	}
	return e, nil
}

// group is the flights of values of type t (a key's flight result must be
// of its caller's type).
func (c *Cache) group(t reflect.Type) *core.Flights[any] {
	if g, ok := c.flights.Load(t); ok {
		return g.(*core.Flights[any])
	}
	g, _ := c.flights.LoadOrStore(t, new(core.Flights[any]))
	return g.(*core.Flights[any])
}
