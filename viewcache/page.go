package viewcache

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
)

// looked is the outcome of a lookup.
type looked struct {
	hit      *record  // a fresh stored response
	ok       bool     // the store answered: fixed is valid
	stale    bool     // a response was found, but a table it read was written since
	varyMiss bool     // the URL's responses vary, and none matched
	found    bool     // a response was found, but could not be used (expired, or another key's)
	sawVary  []string // the Vary names of the vary record read, if one was
	fixed    []uint64 // the versions of the fixed tags, read before the handler
	key      string   // the key read last, and the versions read with it (for coalescing)
	versions []uint64
}

// fwd is the Cache-Status fwd parameter of a miss.
func (l *looked) fwd() string {
	switch {
	case l.stale:
		return "stale"
	case l.varyMiss:
		return "vary-miss"
	case l.found:
		return "miss"
	}
	return "uri-miss"
}

// flightKey names a miss for coalescing: its key and the versions read
// with it, so that requests that saw different versions never share one.
func (l *looked) flightKey() string {
	var b strings.Builder
	b.WriteString(l.key)
	for _, v := range l.versions {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v, 36))
	}
	return b.String()
}

// lookup finds r's stored response. With a hint (what this URL, or else
// this route, last stored), the first store call reads the right key and
// every tag's version: a hit costs one round trip. Without one, or when
// the hint is out of date, it costs two or three: the base key (the
// response, or the URL's vary record), the full key, and the versions of
// tags the call before did not read. Every call also reads the fixed
// tags' versions, which a miss stores its response with.
func (c *Cache) lookup(ctx context.Context, r *http.Request, scope string, base baseKey, fixed []string) looked {
	hn, _ := c.hints.GetIfPresent(base.store)
	if hn == nil {
		hn, _ = c.hints.GetIfPresent(scope)
	}
	var vary []string
	tags := fixed
	if hn != nil {
		vary, tags = hn.vary, union(hn.tags, fixed)
	}
	text, key := c.fullKey(base, vary, r)
	var res looked
	tried := make([]string, 0, 3)
	for {
		rec, versions, err := c.get(ctx, key, tags)
		if err != nil {
			return looked{}
		}
		tried = append(tried, key)
		res.ok, res.key, res.versions = true, key, versions
		res.fixed, _ = c.versionsOf(ctx, fixed, tags, versions) // fixed ⊆ tags: no store call
		switch {
		case rec == nil:
			if key == base.store || slices.Contains(tried, base.store) {
				return res
			}
			// The hint's Vary may be out of date: the base key tells.
			text, key, tags = base.text, base.store, fixed
			continue
		case rec.Kind == kindVary && key == base.store && rec.Check == base.text:
			res.sawVary = rec.vary
			text, key = c.fullKey(base, rec.vary, r)
			if slices.Contains(tried, key) {
				res.varyMiss = key != base.store
				return res
			}
			res.varyMiss = true
			tags = union(rec.Tags, fixed)
			continue
		case rec.Kind == kindPage && rec.Check == text:
			if rec.Expired(time.Now().UnixNano()) {
				res.found = true
				return res
			}
			current, err := c.versionsOf(ctx, rec.Tags, tags, versions)
			if err != nil {
				return res
			}
			if !rec.Fresh(current) {
				res.stale = true
				return res
			}
			res.hit, res.varyMiss = rec, false
			c.remember(base, scope, rec.vary, rec.Tags)
			return res
		default:
			// Another kind of record, or another key's: a hash collision or
			// a foreign writer. A miss; the store will overwrite it.
			c.stats.corrupt.Add(1)
			res.found = true
			return res
		}
	}
}

// remember records what a URL (and its route) last stored.
func (c *Cache) remember(base baseKey, scope string, vary, tags []string) {
	for _, k := range [2]string{base.store, scope} {
		if h, ok := c.hints.GetIfPresent(k); ok && slices.Equal(h.vary, vary) && slices.Equal(h.tags, tags) {
			continue
		}
		c.hints.Set(k, &hint{vary: vary, tags: tags})
	}
}

// serve answers r from rec.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, rec *record, st status, now time.Time) {
	h := w.Header()
	copyHeader(h, rec.header)
	remaining := time.Duration(-1)
	if rec.Deadline != 0 {
		remaining = time.Duration(rec.Deadline - now.UnixNano())
	}
	st.ttl = remaining
	age := max(0, (now.UnixNano()-rec.Created)/int64(time.Second))
	h.Set("Age", strconv.FormatInt(age, 10))
	h.Add("Cache-Status", st.String())
	depend(r.Context(), rec.Tags, rec.Versions, max(remaining, 0))
	if c.browser && remaining > 0 {
		addBrowserMaxAge(h, remaining, now)
	}
	if rec.status == http.StatusOK && notModified(r, rec.etag, rec.header.Get("Last-Modified")) {
		c.stats.notModified.Add(1)
		writeNotModified(w)
		return
	}
	if bodyAllowed(rec.status) {
		h.Set("Content-Length", strconv.Itoa(len(rec.body)))
	}
	w.WriteHeader(rec.status)
	if r.Method != http.MethodHead && bodyAllowed(rec.status) && len(rec.body) > 0 {
		_, _ = w.Write(rec.body)
	}
}

// copyHeader sets dst's fields to src's values, copied (into one backing
// array), so that nothing done to dst reaches a stored record.
func copyHeader(dst, src http.Header) {
	n := 0
	for _, vs := range src {
		n += len(vs)
	}
	all := make([]string, 0, n)
	for k, vs := range src {
		start := len(all)
		all = append(all, vs...)
		dst[k] = all[start:len(all):len(all)]
	}
}

// miss runs the handler for r, stores its response when it may, and
// answers r.
func (h *handler) miss(w http.ResponseWriter, r *http.Request, base baseKey, fixed []string, lk looked, f *core.Flight[struct{}]) {
	c, rt := h.c, h.rt
	ctx := context.WithValue(r.Context(), ownerKey{}, c)
	ctx, rec := plugin.WithRecorder(ctx)
	ctx, sc := withScope(ctx)
	r2 := r.WithContext(ctx)
	if len(r.Header["If-None-Match"]) > 0 || len(r.Header["If-Modified-Since"]) > 0 {
		// The cache answers the condition itself, from the full response.
		r2.Header = r.Header.Clone()
		r2.Header.Del("If-None-Match")
		r2.Header.Del("If-Modified-Since")
	}
	fwd := lk.fwd()
	pre := w.Header().Clone()
	cw := &capture{w: w, max: c.maxBytes, refusal: c.refusal}
	cw.onStream = func(reason Reason) string {
		if f != nil {
			f.Finish(struct{}{})
		}
		c.stats.notStore(reason)
		refuse(r.Context(), reason)
		return status{fwd: fwd, fwdStatus: cw.status, detail: reason, ttl: -1}.String()
	}
	completed := false
	defer func() {
		if !completed { // the handler panicked: store nothing, and let the panic go on
			if !cw.streaming {
				c.stats.notStore(ReasonPanic)
			}
			refuse(r.Context(), ReasonPanic)
		}
	}()
	if c.dev {
		stop := core.WatchUnrecorded(c.p, func(query string) {
			c.stats.unrecorded.Add(1)
			c.clog.Limited(slog.LevelWarn, "viewcache: a statement ran through the plugin without the request's context while a cached page was rendered: its tables are not recorded, so the stored page will not be invalidated by writes to them (use db.WithContext(r.Context()))", "path", r.URL.Path, "sql", query)
		})
		defer stop()
	}
	h.next.ServeHTTP(cw, r2)
	completed = true
	if !cw.streaming && !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK) // net/http's answer to a handler that writes nothing
	}
	if cw.streaming {
		return
	}

	now := time.Now()
	snap, body := cw.snap, cw.buf.Bytes()
	if _, ok := snap["Content-Type"]; !ok && len(body) > 0 {
		snap.Set("Content-Type", http.DetectContentType(body)) // as net/http would
	}
	var (
		tags     []string
		versions []uint64
		ttl      time.Duration
		forever  bool
	)
	reason := h.unstorable(r, rec, sc, w.Header(), lk)
	if reason == "" {
		tags, versions, reason = dependencies(fixed, lk.fixed, rec, sc)
	}
	if reason == "" {
		def := rt.ttl
		if def == 0 {
			def = c.ttl
		}
		var said bool
		if ttl, said = responseTTL(snap, now); !said {
			ttl, forever = def, def == plugin.Forever
		}
		sc.mu.Lock()
		limit := sc.ttlCap
		sc.mu.Unlock()
		if limit > 0 && (forever || ttl > limit) {
			ttl, forever = limit, false
		}
		if ttl <= 0 && !forever {
			reason = ReasonExpired
		}
	}
	if reason == "" {
		reason = h.store(r, base, snap, pre, body, cw.status, tags, versions, ttl, forever, now, lk)
	}

	st := status{fwd: fwd, fwdStatus: cw.status, ttl: -1, detail: reason}
	if reason == "" {
		st.stored = true
		if !forever {
			st.ttl = ttl
		}
		c.stats.stores.Add(1)
		depend(r.Context(), tags, versions, st.ttl)
	} else {
		c.stats.notStore(reason)
		refuse(r.Context(), reason)
	}
	hd := w.Header()
	restore(hd, snap)
	hd.Add("Cache-Status", st.String())
	if st.stored && c.browser && !forever {
		addBrowserMaxAge(hd, ttl, now)
	}
	if cw.status == http.StatusOK && notModified(r, hd.Get("Etag"), hd.Get("Last-Modified")) {
		c.stats.notModified.Add(1)
		writeNotModified(w)
		return
	}
	if bodyAllowed(cw.status) {
		hd.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(cw.status)
	if len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// unstorable says why a complete response may not be stored, before its
// dependencies are looked at ("" when it may).
func (h *handler) unstorable(r *http.Request, rec *plugin.Recorder, sc *scope, final http.Header, lk looked) Reason {
	sc.mu.Lock()
	noStore, inner := sc.noStore, len(sc.versions) > 0
	sc.mu.Unlock()
	switch {
	case r.Context().Err() != nil:
		return ReasonCancelled
	case rec.Unknown() != "":
		return ReasonUnknown
	case rec.Wrote():
		return ReasonWrote
	case noStore != "":
		return noStore
	case rec.Queries() == 0 && !inner && !h.rt.withoutQueries:
		return ReasonNoQueries
	case !lk.ok:
		return ReasonStoreError
	}
	for k := range final {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return ReasonTrailers
		}
	}
	return ""
}

// dependencies returns the sorted tags a response depends on, with the
// versions each had before the first read of it: the fixed tags (read by
// the lookup), the tables the recorder saw, and what the scope collected.
func dependencies(fixed []string, fixedVersions []uint64, rec *plugin.Recorder, sc *scope) ([]string, []uint64, Reason) {
	acc := make(map[string]uint64, len(fixed)+8)
	changed := merge(acc, fixed, fixedVersions)
	rt, rv := rec.Tables()
	changed = merge(acc, rt, rv) || changed
	sc.mu.Lock()
	for t, v := range sc.versions {
		if cur, seen := acc[t]; seen && cur != v {
			changed = true
		} else if !seen {
			acc[t] = v
		}
	}
	changed = changed || sc.changed
	sc.mu.Unlock()
	if changed {
		return nil, nil, ReasonChanged
	}
	tags := slices.Sorted(maps.Keys(acc))
	versions := make([]uint64, len(tags))
	for i, t := range tags {
		if versions[i] = acc[t]; versions[i] == 0 {
			return nil, nil, ReasonHeld
		}
	}
	return tags, versions, ""
}

// store stores a complete response, and returns why it did not ("" when
// it did). It adds to snap the fields the stored response is served with
// (a computed ETag, Date).
func (h *handler) store(r *http.Request, base baseKey, snap, pre http.Header, body []byte, code int,
	tags []string, versions []uint64, ttl time.Duration, forever bool, now time.Time, lk looked) Reason {
	c := h.c
	etag := snap.Get("Etag")
	if etag == "" && bodyAllowed(code) {
		etag = computeETag(body)
		snap.Set("Etag", etag)
	}
	if snap.Get("Date") == "" {
		snap.Set("Date", now.UTC().Format(http.TimeFormat))
	}
	vary, _ := varyNames(snap)
	text, key := c.fullKey(base, vary, r)
	if cap(body) > len(body)+len(body)/8+64 {
		body = slices.Clone(body) // do not keep the buffer's spare room
	}
	rec := &record{
		Head:   head(kindPage, text, tags, versions, now),
		status: code, header: storedHeader(snap, pre), body: body, vary: vary, etag: etag,
	}
	storeTTL := ttl
	if forever {
		storeTTL = 0
	} else {
		rec.Deadline = now.Add(ttl).UnixNano()
	}
	if err := c.put(key, rec, storeTTL); err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			return ReasonTooLarge
		}
		c.storeFailed("set", err)
		return ReasonStoreError
	}
	if len(vary) > 0 && !slices.Equal(lk.sawVary, vary) {
		vr := &record{Head: head(kindVary, base.text, tags, nil, now), vary: vary}
		vr.Deadline = rec.Deadline
		if err := c.put(base.store, vr, storeTTL); err != nil {
			c.storeFailed("set", err)
			return ReasonStoreError
		}
	}
	c.remember(base, h.hintScope(r), vary, tags)
	return ""
}
