package plugin

import (
	"context"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
)

// A Recorder collects what the statements made with a context read: the
// tables (with the version each had before the first statement that read
// it), whether any statement's tables were unknown, and whether any wrote.
// Per-view caching (the viewcache package) records each request this way,
// so that a stored response depends on the tables its queries read,
// whether they were served from the cache, from the database, or bypassed
// it (Skip, inside a transaction).
type Recorder struct {
	mu       sync.Mutex
	versions map[string]uint64
	order    []string
	unknown  Reason
	wrote    bool
	queries  int
}

type recorderKey struct{}

// WithRecorder returns a context whose statements are recorded by the
// returned Recorder. Recorders nest: a statement is recorded by every
// Recorder of its context.
func WithRecorder(ctx context.Context) (context.Context, *Recorder) {
	r := &Recorder{versions: map[string]uint64{}}
	parent, _ := ctx.Value(recorderKey{}).(*recorders)
	rs := &recorders{list: append(append([]*Recorder(nil), parentList(parent)...), r)}
	return context.WithValue(ctx, recorderKey{}, rs), r
}

type recorders struct{ list []*Recorder }

func parentList(r *recorders) []*Recorder {
	if r == nil {
		return nil
	}
	return r.list
}

func recordersOf(ctx context.Context) []*Recorder {
	if ctx == nil {
		return nil
	}
	if rs, ok := ctx.Value(recorderKey{}).(*recorders); ok {
		return rs.list
	}
	return nil
}

// Tables returns the tags read (table names, and the global tag "*") and
// the version each had before the first statement that read it (0: held
// by a write in flight, or unknown: such a response must not be stored).
func (r *Recorder) Tables() (tags []string, versions []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tags = slices.Clone(r.order)
	sort.Strings(tags)
	versions = make([]uint64, len(tags))
	for i, t := range tags {
		versions[i] = r.versions[t]
	}
	return tags, versions
}

// Unknown returns why some statement's tables could not be determined (or
// its result depends on more than tables: a volatile function), or "".
func (r *Recorder) Unknown() Reason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unknown
}

// Wrote reports whether any recorded statement may have changed data.
func (r *Recorder) Wrote() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wrote
}

// Queries returns the number of statements recorded.
func (r *Recorder) Queries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queries
}

func (r *Recorder) read(tags []string, versions []uint64) {
	r.mu.Lock()
	r.queries++
	for i, t := range tags {
		if _, seen := r.versions[t]; !seen {
			r.versions[t] = versions[i]
			r.order = append(r.order, t)
		}
	}
	r.mu.Unlock()
}

func (r *Recorder) mark(unknown Reason, wrote bool) {
	r.mu.Lock()
	r.queries++
	if unknown != "" && r.unknown == "" {
		r.unknown = unknown
	}
	r.wrote = r.wrote || wrote
	r.mu.Unlock()
}

// RecordRead tells the Recorders of ctx that something read tags, whose
// versions (as read before the read) are versions: the way a value cached
// outside the query chain (the lowlevel package) makes a recorded request
// depend on the tables it came from. A tag whose last invalidation did not
// reach the store is recorded as version 0 (such a result must not be
// stored).
func (p *Plugin) RecordRead(ctx context.Context, tags []string, versions []uint64) {
	rs := recordersOf(ctx)
	if len(rs) == 0 {
		return
	}
	if !p.inv.Serving(tags) {
		versions = slices.Clone(versions)
		p.inv.Judge(tags, versions)
	}
	for _, r := range rs {
		r.read(tags, versions)
	}
}

func init() {
	core.Of = func(x any) *core.Invalidator {
		if p, ok := x.(*Plugin); ok && p != nil && p.setup() == nil {
			return p.inv
		}
		return nil
	}
	core.WatchUnrecorded = func(x any, report func(query string)) func() {
		p, ok := x.(*Plugin)
		if !ok || p == nil {
			return func() {}
		}
		return p.unrec.watch(report)
	}
}

// unrecordedWatch holds the watchers of statements run without a Recorder
// (core.WatchUnrecorded: viewcache's Config.Development).
type unrecordedWatch struct {
	n    atomic.Int32 // watchers: 0 on the hot path costs one load
	mu   sync.Mutex
	next int
	fns  map[int]func(query string)
}

func (w *unrecordedWatch) watch(report func(string)) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(string){}
	}
	id := w.next
	w.next++
	w.fns[id] = report
	w.n.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.fns, id)
			w.mu.Unlock()
			w.n.Add(-1)
		})
	}
}

// unrecorded reports query, run with ctx, to the watchers if ctx carries
// no Recorder.
func (p *Plugin) unrecorded(ctx context.Context, query string) {
	w := &p.unrec
	if w.n.Load() == 0 || len(recordersOf(ctx)) > 0 {
		return
	}
	w.mu.Lock()
	fns := make([]func(string), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(query)
	}
}

// recordPlan records a statement the cache did not look up: a write, a
// read of unknown tables, or a cacheable read that bypassed the cache (its
// tables' versions are read now, before it runs).
func (p *Plugin) recordPlan(ctx context.Context, pl *plan, query string, extra []string) {
	rs := recordersOf(ctx)
	if len(rs) == 0 {
		p.unrecorded(ctx, query)
		return
	}
	switch {
	case pl.write:
		for _, r := range rs {
			r.mark("", true)
		}
	case !pl.cacheable:
		reason := pl.reason
		if reason == ReasonNotSelect {
			for _, r := range rs {
				r.mark("", false)
			}
			return
		}
		for _, r := range rs {
			r.mark(reason, false)
		}
	default:
		tags := pl.tags
		if len(extra) > 0 {
			tags = withTags(tags, extra)
		}
		versions := make([]uint64, len(tags))
		sctx, cancel := p.storeCtx(ctx, false)
		if err := p.store.Versions(sctx, tags, versions); err != nil {
			clear(versions) // unknown: the response will not be stored
		}
		cancel()
		p.RecordRead(ctx, tags, versions)
	}
}

// DependsOn returns the tables (as GORM or SQL names them, normalised) with
// every table they depend on for reads: the tables under a view, and
// Config.Dependencies. An entry depending on a view must depend on those
// too, or writes to them would not reach it.
func (p *Plugin) DependsOn(tables ...string) []string {
	g := p.currentDeps()
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		n := invalidation.TableName(t)
		if n == "" {
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
		for _, d := range g.read[n] {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}
