package viewcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/maypok86/otter/v2"
)

// Cache caches whole HTTP responses, each depending on the tables the
// request's queries read, on the store of a gormcache plugin. Make one with
// [New]; wrap views with [Cache.Page] or a whole site with
// [Cache.Middleware]. A Cache is safe for concurrent use.
type Cache struct {
	settings
	p        *plugin.Plugin
	st       store.Store
	values   store.ValueStore // set only for memstore, which keeps *record values as they are
	nsTag    string
	baseTags []string // store.GlobalTag and nsTag, sorted
	// inv is the plugin's invalidator: an outage or a lost bump met by any
	// of the caches on the plugin stops all of them
	inv   *core.Invalidator
	calls core.Calls
	clog  *core.Log

	hints   *otter.Cache[string, *hint]
	flights core.Flights[struct{}] // followers look up again once the leader is done
	routes  atomic.Uint64
	stats   counters
	lastLog atomic.Int64
}

// hint is what a key (or a route) last stored: the headers it varied on and
// its tags. Hints let a lookup read the entry and its tags' versions in one
// store call; a wrong hint costs one more call, never a wrong answer.
type hint struct {
	vary []string
	tags []string
}

// New returns a cache on the plugin's store. It may be called before
// db.Use(p). The plugin must be the one installed on the *gorm.DB the
// handlers query with r.Context(): its Recorder tells which tables a
// request read.
func New(p *plugin.Plugin, cfg Config) (*Cache, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil plugin", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st := p.Store()
	if st == nil {
		return nil, fmt.Errorf("%w: the plugin has no store (its Config is invalid: db.Use reports why)", ErrInvalidConfig)
	}
	hints, err := otter.New(&otter.Options[string, *hint]{MaximumSize: 10_000})
	if err != nil {
		return nil, fmt.Errorf("viewcache: %w", err)
	}
	c := &Cache{settings: cfg.settings(), p: p, st: st, hints: hints, inv: core.Of(p)}
	if ms, ok := st.(*memstore.Store); ok {
		c.values = ms
	}
	c.calls = core.Calls{Timeout: c.timeout, InProcess: c.values != nil}
	c.clog = core.NewLog(c.log)
	c.nsTag = core.Namespace("Viewcache", c.prefix)
	c.baseTags = []string{store.GlobalTag, c.nsTag}
	slices.Sort(c.baseTags)
	return c, nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats { return c.stats.snapshot() }

// Flush makes every response and fragment this cache stored (under its
// Prefix, on its store) stale at once. Query results are not touched; the
// plugin's Flush drops everything, pages included.
func (c *Cache) Flush(ctx context.Context) error {
	if err := c.inv.Bump(ctx, []string{c.nsTag}); err != nil {
		c.stats.storeErrors.Add(1)
		return fmt.Errorf("viewcache: flush: %w", err)
	}
	return nil
}

// Page returns h cached per view, as Django's cache_page: GET and HEAD
// requests are answered from a stored response while every table its
// queries read is unchanged. It panics on a bad option (see [Option]).
//
// The handler's queries must be made with the request's context
// (db.WithContext(r.Context())): a statement made without it is not
// recorded, so the stored response does not depend on its tables and
// stays stale after writes to them until its TTL. [Config.Development]
// reports such statements.
func (c *Cache) Page(h http.Handler, opts ...Option) http.Handler {
	return c.handler(h, newRoute(opts), 'p')
}

// Middleware returns h cached site-wide, as Django's cache middleware:
// every GET and HEAD request is cached as by Page without options.
// Routes inside it that need options (or Never) wrap their handler with
// Page too: an inner Page's Never, VaryOn and TTL are honoured by the
// enclosing Middleware. As for Page, every handler's queries must be made
// with the request's context ([Config.Development] reports those that
// are not).
func (c *Cache) Middleware(h http.Handler) http.Handler {
	return c.handler(h, &route{}, 'm')
}

func (c *Cache) handler(next http.Handler, rt *route, kind byte) *handler {
	return &handler{c: c, next: next, rt: rt, kind: kind, scope: "\x00" + strconv.FormatUint(c.routes.Add(1), 36)}
}

type handler struct {
	c     *Cache
	next  http.Handler
	rt    *route
	kind  byte   // 'p' Page, 'm' Middleware
	scope string // the route's hint scope
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, rt := h.c, h.rt
	reason, vo := h.bypass(r)
	if reason != "" {
		c.stats.bypass(reason)
		if reason == ReasonNever {
			neverCache(w.Header())
			refuse(r.Context(), ReasonInnerNever)
		} else if reason == ReasonIdentity && rt.varyOn != nil {
			refuse(r.Context(), ReasonVaries)
		}
		w.Header().Add("Cache-Status", status{fwd: "bypass", detail: reason, ttl: -1}.String())
		h.next.ServeHTTP(w, r)
		return
	}
	if rt.varyOn != nil || (c.key != nil && !c.enclosedBySelf(r.Context())) {
		// An enclosing cache does not know what this route varies on.
		refuse(r.Context(), ReasonVaries)
	}
	ck := ""
	if c.key != nil {
		ck = c.key(r)
	}
	base := c.newBaseKey(h.kind, r, ck, vo, rt.varyOn != nil)
	fixed := c.fixedTags(rt)
	lk := c.lookup(r.Context(), r, h.hintScope(r), base, fixed)
	if lk.hit != nil {
		c.stats.hits.Add(1)
		c.serve(w, r, lk.hit, status{hit: true}, time.Now())
		return
	}
	var f *core.Flight[struct{}]
	if c.coalesce && lk.ok && r.Method == http.MethodGet {
		var leader bool
		f, leader = c.flights.Join(lk.flightKey())
		if !leader {
			select {
			case <-f.Done():
			case <-r.Context().Done():
				c.stats.misses.Add(1)
				c.stats.notStore(ReasonCancelled)
				return
			}
			f = nil
			again := c.lookup(r.Context(), r, h.hintScope(r), base, fixed)
			if again.hit != nil {
				// The first request's response, stored and still fresh.
				c.stats.collapsed.Add(1)
				c.serve(w, r, again.hit, status{fwd: lk.fwd(), collapsed: true}, time.Now())
				return
			}
			lk = again
		}
	}
	c.stats.misses.Add(1)
	if lk.stale {
		c.stats.stale.Add(1)
	}
	if r.Method == http.MethodHead {
		c.stats.notStore(ReasonHead)
		refuse(r.Context(), ReasonHead)
		w.Header().Add("Cache-Status", status{fwd: lk.fwd(), detail: ReasonHead, ttl: -1}.String())
		h.next.ServeHTTP(w, r)
		return
	}
	if f != nil {
		defer f.Finish(struct{}{})
	}
	h.miss(w, r, base, fixed, lk, f)
}

// bypass says why r is not looked up ("" when it is), and returns the
// route's VaryOn value.
func (h *handler) bypass(r *http.Request) (reason Reason, varyOn string) {
	c, rt := h.c, h.rt
	switch {
	case rt.never:
		return ReasonNever, ""
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return ReasonMethod, ""
	case len(r.Header["Range"]) > 0:
		return ReasonRange, ""
	case len(r.Header["Upgrade"]) > 0:
		return ReasonUpgrade, ""
	}
	if rt.varyOn != nil {
		varyOn = rt.varyOn(r)
	}
	if varyOn == "" && hasIdentity(r, c.identity) {
		return ReasonIdentity, ""
	}
	return "", varyOn
}

// enclosedBySelf reports whether ctx is a request being rendered by this
// same cache (whose key includes Config.Key already).
func (c *Cache) enclosedBySelf(ctx context.Context) bool {
	owner, _ := ctx.Value(ownerKey{}).(*Cache)
	return owner == c
}

type ownerKey struct{}

// hintScope names the route, for the hint of a URL not seen yet: a Page
// route's URLs usually share their tables and Vary; a Middleware's, per
// path. Scopes start with a NUL byte, which no store key (URL hints are
// keyed by store key) has.
func (h *handler) hintScope(r *http.Request) string {
	if h.kind == 'p' {
		return h.scope
	}
	return h.scope + ":" + r.Host + r.URL.EscapedPath()
}

// fixedTags are the tags whose versions are read before every handler
// runs: the global tag, the cache's own, and the route's Tags (with the
// tables under views, as the plugin knows them, which it may learn only
// once the database is first queried). Sorted, distinct; not to be
// modified.
func (c *Cache) fixedTags(rt *route) []string {
	if len(rt.tables) == 0 {
		return c.baseTags
	}
	tags := append(slices.Clone(c.baseTags), c.p.DependsOn(rt.tables...)...)
	slices.Sort(tags)
	return slices.Compact(tags)
}

func (c *Cache) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return c.calls.Ctx(ctx, false)
}

// judge applies the invalidator's rule to versions just read: a tag that
// may not be served now (its last invalidation did not reach the store, or
// a shared store had an outage) reads as unknown, so that no page is
// served or stored for it.
func (c *Cache) judge(tags []string, versions []uint64) {
	c.inv.Judge(tags, versions)
}

func (c *Cache) storeFailed(op string, err error) {
	c.inv.StoreFailed("viewcache", op, err) // an outage stops the three caches alike
	c.stats.storeErrors.Add(1)
}

// logLimited logs at most once a second.
func (c *Cache) logLimited(level slog.Level, msg string, args ...any) {
	c.clog.Limited(level, msg, args...)
}

// get reads the record at key and the versions of tags, in one store
// call. A record that does not decode is counted, deleted, and returned as
// none.
func (c *Cache) get(ctx context.Context, key string, tags []string) (*record, []uint64, error) {
	versions := make([]uint64, len(tags))
	sctx, cancel := c.storeCtx(ctx)
	defer cancel()
	var raw any
	var err error
	if c.values != nil {
		raw, err = c.values.GetValue(sctx, key, tags, versions)
	} else {
		var b []byte
		b, err = c.st.Get(sctx, key, tags, versions)
		if b != nil {
			raw = b
		}
	}
	if err != nil {
		c.storeFailed("get", err)
		return nil, nil, err
	}
	c.judge(tags, versions)
	switch v := raw.(type) {
	case nil:
		return nil, versions, nil
	case *record:
		return v, versions, nil
	case []byte:
		rec, err := unmarshal(v)
		if err == nil {
			return rec, versions, nil
		}
		c.corrupt(key, err)
		return nil, versions, nil
	default:
		c.corrupt(key, fmt.Errorf("%w: a %T", errCorrupt, raw))
		return nil, versions, nil
	}
}

// corrupt counts and deletes an entry that does not decode.
func (c *Cache) corrupt(key string, err error) {
	c.stats.corrupt.Add(1)
	c.logLimited(slog.LevelWarn, "viewcache: entry does not decode; treated as a miss and deleted", "key", key, "error", err)
	sctx, cancel := c.storeCtx(context.Background())
	defer cancel()
	if err := c.st.Delete(sctx, key); err != nil && !errors.Is(err, store.ErrClosed) {
		c.storeFailed("delete", err)
	}
}

// put stores rec at key for ttl (0: no expiry).
func (c *Cache) put(key string, rec *record, ttl time.Duration) error {
	sctx, cancel := c.storeCtx(context.Background())
	defer cancel()
	if c.values != nil {
		return c.values.SetValue(sctx, key, rec, rec.size(), ttl)
	}
	b, err := rec.marshal()
	if err != nil {
		return err
	}
	return c.st.Set(sctx, key, b, ttl)
}

// versionsOf picks the versions of want out of (tags, versions) when all
// are there, or else reads them from the store.
func (c *Cache) versionsOf(ctx context.Context, want, tags []string, versions []uint64) ([]uint64, error) {
	out := make([]uint64, len(want))
	j := 0
	for i, t := range want {
		for j < len(tags) && tags[j] < t {
			j++
		}
		if j == len(tags) || tags[j] != t {
			sctx, cancel := c.storeCtx(ctx)
			defer cancel()
			if err := c.st.Versions(sctx, want, out); err != nil {
				c.storeFailed("versions", err)
				return nil, err
			}
			c.judge(want, out)
			return out, nil
		}
		out[i] = versions[j]
	}
	return out, nil
}

// union returns the sorted, distinct union of two sorted, distinct tag
// lists (a itself when it holds b).
func union(a, b []string) []string {
	if subset(b, a) {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// subset reports whether every element of the sorted list a is in the
// sorted list b.
func subset(a, b []string) bool {
	j := 0
	for _, t := range a {
		for j < len(b) && b[j] < t {
			j++
		}
		if j == len(b) || b[j] != t {
			return false
		}
	}
	return true
}
