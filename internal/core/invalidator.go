package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/store"
)

// ErrWriteRefused is wrapped, with store.ErrUnavailable, by the error of a
// write refused before it ran because its tags could not be invalidated in
// the store first (Config.FailWrite).
var ErrWriteRefused = errors.New("gormcache: write refused")

// Counters count what an Invalidator did.
type Counters struct {
	Invalidations   atomic.Uint64 // tags bumped, one per tag (row tags aside) per successful bump
	Renewals        atomic.Uint64 // holds renewed (a write ran longer than Lease/2)
	UnknownOutcomes atomic.Uint64 // writes that ended with a context or connection error
	Refused         atomic.Uint64 // writes refused (FailWrite)
	StoreErrors     atomic.Uint64 // bumps and releases that failed after their attempts
	Outages         atomic.Uint64 // outages of a shared store noticed
}

// Config configures an Invalidator.
type Config struct {
	Store store.Store
	Calls Calls
	// Lease bounds a write's hold (Config.WriteLease in the plugin).
	Lease time.Duration
	// Shared: other processes may read the store. Then an outage stops
	// everything until the epoch bump, and FailWrite applies.
	Shared bool
	// FailWrite refuses a write whose first bump fails (on a shared store).
	FailWrite bool
	Log       *Log
	// Background is where its work runs (nil: its own); Close stops it.
	Background *Background
}

// An Invalidator bumps tags and holds them for writes in flight, and keeps
// what may not be served: tags whose last invalidation did not reach the
// store (broken, retried in the background until a bump lands), and after
// an outage of a shared store, everything (until Global has been bumped
// there once: the epoch bump). Its own lock guards that state.
type Invalidator struct {
	cfg Config
	st  store.Store
	log *Log
	bg  *Background
	C   Counters

	mu     sync.Mutex
	broken map[string]bool // tags whose last bump failed
	// unreleased: holds whose release failed, released by the retry
	unreleased []lease
	// writing: per tag, writes in flight whose first bump failed (their
	// tags stay broken until they are over)
	writing map[string]int
	nBroken atomic.Int32

	// lingering: timers of writes whose outcome is unknown (linger)
	lingerMu  sync.Mutex
	lingering map[*time.Timer]bool

	closed atomic.Bool
}

type lease struct {
	tags []string
	id   uint64
}

// bumpAttempts is how many times a bump is tried before it counts as failed.
const bumpAttempts = 3

// maxHoldRenewal bounds how long a hold is renewed: a write still running
// after that (or a transaction or *sql.Rows the application never ended)
// keeps its tags held only until the last hold expires.
const maxHoldRenewal = time.Hour

// NewInvalidator returns an invalidator on cfg.Store.
func NewInvalidator(cfg Config) *Invalidator {
	if cfg.Log == nil {
		cfg.Log = NewLog(nil)
	}
	if cfg.Background == nil {
		cfg.Background = NewBackground()
	}
	return &Invalidator{cfg: cfg, st: cfg.Store, log: cfg.Log, bg: cfg.Background, broken: map[string]bool{}}
}

// Background is the invalidator's background work; its front may run its
// own there too (refreshes), so that Close stops and waits for both.
func (v *Invalidator) Background() *Background { return v.bg }

// Shared reports whether other processes may read the store.
func (v *Invalidator) Shared() bool { return v.cfg.Shared }

// Closed reports whether Close was called.
func (v *Invalidator) Closed() bool { return v.closed.Load() }

// ---- reads: what may be served ----

// Serving reports whether values depending on tags may be served from the
// store now.
func (v *Invalidator) Serving(tags []string) bool {
	return v.nBroken.Load() == 0 || !v.isBroken(tags)
}

// Judge sets to 0 (unknown: nothing is served or stored under them) the
// versions of tags the store may not be trusted for now. It reports
// whether it changed any.
func (v *Invalidator) Judge(tags []string, versions []uint64) bool {
	if v.nBroken.Load() == 0 {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	changed := false
	for i, t := range tags {
		if (v.broken[t] || v.broken[Global]) && versions[i] != 0 {
			versions[i] = 0
			changed = true
		}
	}
	return changed
}

// A Failure classifies a failed store call.
type Failure int

const (
	// Canceled: the caller gave up (its context): that says nothing about
	// the store.
	Canceled Failure = iota
	// Failed: the store failed (and, on a shared store that is
	// unavailable, an outage was marked).
	Failed
)

// StoreFailed handles a store call of a front that failed: an outage of a
// shared store (an error wrapping store.ErrUnavailable) stops everything
// until the epoch bump. It logs at most once a second; the front counts.
func (v *Invalidator) StoreFailed(front, op string, err error) Failure {
	if !errors.Is(err, store.ErrUnavailable) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return Canceled
	}
	v.log.Limited(slog.LevelWarn, front+": store error; served without the cache", "op", op, "error", err)
	if errors.Is(err, store.ErrUnavailable) && v.cfg.Shared {
		// An outage of a shared store may end with a failover to a replica
		// that missed the last bumps (replication is asynchronous): nothing
		// is served until everything has been invalidated once the store
		// answers again (the epoch bump, retried in the background).
		v.markOutage()
	}
	return Failed
}

// ---- plain invalidation ----

// Bump invalidates tags (no hold), trying bumpAttempts times; when it
// fails they are broken until a retry lands, and the error wraps
// store.ErrUnavailable (or store.ErrClosed).
func (v *Invalidator) Bump(ctx context.Context, tags []string) error {
	var err error
	for range bumpAttempts {
		sctx, cancel := v.cfg.Calls.Ctx(ctx, true)
		_, err = v.st.Bump(sctx, tags, 0)
		cancel()
		if err == nil {
			v.C.Invalidations.Add(tableTags(tags))
			v.clearBroken(tags)
			return nil
		}
		if errors.Is(err, store.ErrClosed) {
			return err
		}
	}
	v.Failed(tags, err)
	return errUnavailable(err)
}

// Failed records that an invalidation of tags did not reach the store:
// they are not served until a bump of them, retried in the background,
// lands.
func (v *Invalidator) Failed(tags []string, err error) {
	v.C.StoreErrors.Add(1)
	v.log.Limited(slog.LevelError, "gormcache: invalidation did not reach the store; those tables are served from the database until it does", "tables", tags, "error", err)
	v.markBroken(tags)
}

// errUnavailable makes sure err wraps store.ErrUnavailable.
func errUnavailable(err error) error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// ---- writes ----

// A Hold protects the tags of one write (a statement, or the writes of a
// transaction to tags it had not written before): they were bumped and
// held before it ran, the hold is renewed every Lease/2 while it runs (a
// write may take longer than Lease: a transaction left open, a statement
// waiting on a lock), and they are bumped again and released when it is
// over (End).
type Hold struct {
	v    *Invalidator
	tags []string

	mu sync.Mutex
	id uint64 // the store's lease; 0 when no hold could be placed
	// unprotected: the store holds nothing for this write (its first bump
	// or a renewal failed); its tags are counted in writing, so that they
	// stay broken (not served here) until it is over or held again.
	unprotected bool
	renewal     *time.Timer
	since       time.Time
	over        bool
	// strays are the leases of bumps that failed at the client but may
	// have been placed (a reply lost to a timeout): released once a hold
	// of this write is in place, or when it is over.
	strays []uint64
}

// Tags returns the tags the hold protects.
func (h *Hold) Tags() []string { return h.tags }

// HoldWrite bumps and holds tags for a write about to run. Under
// FailWrite, a bump that does not reach the store refuses the write: the
// error wraps ErrWriteRefused and store.ErrUnavailable, and the write must
// not run.
func (v *Invalidator) HoldWrite(ctx context.Context, tags []string) (*Hold, error) {
	h := &Hold{v: v, tags: tags, since: time.Now()}
	var err error
	if h.id, h.strays, err = v.begin(ctx, tags, true); err != nil {
		return nil, err
	}
	h.unprotected = h.id == 0
	h.mu.Lock() // renew reads h.renewal
	if !h.unprotected {
		v.releaseStrays(tags, h.takeStrays())
	}
	h.renewal = time.AfterFunc(v.cfg.Lease/2, h.renew)
	h.mu.Unlock()
	return h, nil
}

// renew places a fresh hold before the current one expires, then releases
// the current one.
func (h *Hold) renew() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.over {
		return
	}
	v := h.v
	if v.closed.Load() {
		return // closed: the hold stays in the store until it expires
	}
	if time.Since(h.since) > maxHoldRenewal {
		v.log.Always(slog.LevelError, "gormcache: a write has held its tables for over an hour; its hold is no longer renewed", "tables", h.tags)
		return
	}
	v.bg.Add()
	defer v.bg.Done()
	sctx, cancel := v.cfg.Calls.Ctx(context.Background(), true)
	id, err := v.st.Bump(sctx, h.tags, v.cfg.Lease)
	cancel()
	if err != nil {
		if id != 0 {
			h.strays = append(h.strays, id)
		}
		if !h.unprotected {
			h.unprotected = true
			v.writeStarted(h.tags)
		}
		v.Failed(h.tags, err)
		h.renewal.Reset(min(time.Second, v.cfg.Lease/4))
		return
	}
	v.C.Invalidations.Add(tableTags(h.tags))
	v.C.Renewals.Add(1)
	old := h.id
	h.id = id
	if h.unprotected {
		// Held again, and bumped: whatever was stored meanwhile is invalid.
		h.unprotected = false
		v.writeOver(h.tags)
	}
	if old != 0 {
		v.release(context.Background(), h.tags, old)
	}
	v.releaseStrays(h.tags, h.takeStrays())
	h.renewal.Reset(v.cfg.Lease / 2)
}

// takeStrays returns the stray leases and forgets them; h.mu is held.
func (h *Hold) takeStrays() []uint64 {
	s := h.strays
	h.strays = nil
	return s
}

// End bumps the tags again and releases the hold, once the write is over;
// when its outcome is unknown (it ended with a context or connection
// error: the database may still commit it), the tags stay held for Lease
// (linger).
func (h *Hold) End(ctx context.Context, unknown bool) {
	h.mu.Lock()
	if h.over {
		h.mu.Unlock()
		return
	}
	h.over = true
	h.renewal.Stop()
	id, unprotected, strays := h.id, h.unprotected, h.takeStrays()
	h.mu.Unlock()
	v := h.v
	if unknown {
		// A stray lease holds no longer than Lease, which is what linger
		// wants.
		v.linger(ctx, h.tags, id, unprotected)
		return
	}
	if unprotected {
		v.writeOver(h.tags)
	}
	v.endWrite(ctx, h.tags, id)
	v.releaseStrays(h.tags, strays)
}

// HoldForeign protects a write inside a transaction the front cannot see
// the end of (begun outside it): its tags are bumped and held for Lease
// now, and again when the statement is over (the returned func).
func (v *Invalidator) HoldForeign(ctx context.Context, tags []string) (func(), error) {
	id, _, err := v.begin(ctx, tags, true)
	if err != nil {
		return nil, err
	}
	return func() {
		if id == 0 {
			v.writeOver(tags)
		}
		sctx, cancel := v.cfg.Calls.Ctx(ctx, true)
		_, err := v.st.Bump(sctx, tags, v.cfg.Lease)
		cancel()
		if err != nil {
			v.Failed(tags, err)
			return
		}
		v.C.Invalidations.Add(tableTags(tags))
	}, nil
}

// releaseStrays releases, in the background, leases whose bump failed at
// the client but may have reached the store: left alone, each would hold
// the tags (on every instance) until it expires, Lease later.
func (v *Invalidator) releaseStrays(tags []string, ids []uint64) {
	if len(ids) == 0 || v.closed.Load() {
		return
	}
	v.bg.Go(func() {
		for _, id := range ids {
			v.release(context.Background(), tags, id)
		}
	})
}

// linger keeps the tags of a write whose outcome is unknown held for
// Lease from now (the database may still commit it: a statement waiting
// on a lock runs on after its caller gave up), then bumps and releases
// them. Statement and lock timeouts shorter than Lease bound how long such
// a write can run.
func (v *Invalidator) linger(ctx context.Context, tags []string, id uint64, unprotected bool) {
	v.C.UnknownOutcomes.Add(1)
	v.log.Always(slog.LevelWarn, "gormcache: a write ended without a known outcome (context or connection error); its tables are not cached until WriteLease has passed", "tables", tags, "lease", v.cfg.Lease)
	// Leases of failed attempts may hold too: for Lease, as wanted.
	next, _, _ := v.begin(ctx, tags, false)
	if unprotected {
		v.writeOver(tags)
	}
	if id != 0 {
		v.release(ctx, tags, id)
	}
	v.lingerMu.Lock()
	defer v.lingerMu.Unlock()
	if v.lingering == nil {
		v.lingering = map[*time.Timer]bool{}
	}
	var t *time.Timer
	t = time.AfterFunc(v.cfg.Lease, func() {
		v.lingerMu.Lock()
		live := v.lingering[t]
		delete(v.lingering, t)
		v.lingerMu.Unlock()
		if !live {
			return // stopped by Close
		}
		if next == 0 {
			v.writeOver(tags)
		}
		v.endWrite(context.Background(), tags, next)
	})
	v.lingering[t] = true
}

// stopLingering stops the timers of writes of unknown outcome (Close):
// their holds stay in the store until they expire by themselves.
func (v *Invalidator) stopLingering() int {
	v.lingerMu.Lock()
	defer v.lingerMu.Unlock()
	n := 0
	for t := range v.lingering {
		if t.Stop() {
			n++
		}
		delete(v.lingering, t)
	}
	return n
}

// begin bumps tags and holds them for Lease; it returns the lease id, and
// the leases of attempts that failed at the client (strays: a timed-out
// call may still have placed its hold, see store.Store.Bump). A bump that
// does not reach the store fails a write that has not run yet (before)
// under FailWrite, with an error wrapping ErrWriteRefused and
// store.ErrUnavailable (its strays are released in the background);
// otherwise it marks the tags broken, counts them as written
// (writeStarted) until writeOver, and returns 0.
func (v *Invalidator) begin(ctx context.Context, tags []string, before bool) (uint64, []uint64, error) {
	v.bg.Add()
	defer v.bg.Done()
	var err error
	var strays []uint64
	for range bumpAttempts {
		sctx, cancel := v.cfg.Calls.Ctx(ctx, true)
		var id uint64
		id, err = v.st.Bump(sctx, tags, v.cfg.Lease)
		cancel()
		if err == nil {
			v.C.Invalidations.Add(tableTags(tags))
			return id, strays, nil
		}
		if id != 0 {
			strays = append(strays, id)
		}
	}
	if before && v.cfg.FailWrite && v.cfg.Shared {
		v.C.Refused.Add(1)
		v.StoreFailed("gormcache", "bump", err)
		v.releaseStrays(tags, strays)
		return 0, nil, fmt.Errorf("%w: its tables could not be invalidated in the store first (Config.BumpFailure is FailWrite): %w", ErrWriteRefused, errUnavailable(err))
	}
	// No hold protects the tags while the write runs: they stay broken
	// (not served, not stored) until the write is over and bumped after it
	// (writeOver), whatever a background retry manages before.
	v.writeStarted(tags)
	v.Failed(tags, err)
	return 0, strays, nil
}

// writeStarted counts a write in flight that no hold protects.
func (v *Invalidator) writeStarted(tags []string) {
	v.mu.Lock()
	if v.writing == nil {
		v.writing = map[string]int{}
	}
	for _, t := range tags {
		v.writing[t]++
	}
	v.mu.Unlock()
}

// writeOver ends the in-flight accounting of a write that no hold
// protected, once it is over: from here on, a successful bump of its tags
// (made now, or retried in the background) clears them.
func (v *Invalidator) writeOver(tags []string) {
	v.mu.Lock()
	for _, t := range tags {
		if v.writing[t]--; v.writing[t] <= 0 {
			delete(v.writing, t)
		}
	}
	v.mu.Unlock()
}

// endWrite bumps tags again and releases the hold of lease id (0: none).
func (v *Invalidator) endWrite(ctx context.Context, tags []string, id uint64) {
	v.bg.Add()
	defer v.bg.Done()
	var err error
	for range bumpAttempts {
		sctx, cancel := v.cfg.Calls.Ctx(ctx, true)
		if id == 0 {
			_, err = v.st.Bump(sctx, tags, 0)
		} else {
			err = v.st.Release(sctx, tags, id)
		}
		cancel()
		if err == nil {
			v.C.Invalidations.Add(tableTags(tags))
			v.clearBroken(tags)
			return
		}
	}
	if id != 0 {
		v.unreleasedLease(tags, id)
	}
	v.Failed(tags, err)
}

// release drops the hold of lease id (bumping tags once more); a release
// that fails is retried in the background.
func (v *Invalidator) release(ctx context.Context, tags []string, id uint64) {
	v.bg.Add()
	defer v.bg.Done()
	sctx, cancel := v.cfg.Calls.Ctx(ctx, true)
	err := v.st.Release(sctx, tags, id)
	cancel()
	if err != nil {
		v.unreleasedLease(tags, id)
		v.Failed(tags, err)
		return
	}
	v.C.Invalidations.Add(tableTags(tags))
}

// unreleasedLease records a hold whose release failed: it would otherwise
// last until it expires (Lease), and its tags be read from the database
// all that time. The retry releases it.
func (v *Invalidator) unreleasedLease(tags []string, id uint64) {
	v.mu.Lock()
	v.unreleased = append(v.unreleased, lease{tags: tags, id: id})
	v.mu.Unlock()
}

// ---- broken tags and their retry ----

// markOutage stops serving anything from the store until Global has been
// bumped there (see StoreFailed).
func (v *Invalidator) markOutage() {
	if v.markBroken([]string{Global}) {
		v.C.Outages.Add(1)
		v.log.Always(slog.LevelWarn, "gormcache: the store failed; nothing is served from it until everything has been invalidated there once it answers again")
	}
}

// markBroken stops serving tags from the store until a bump of them
// succeeds, and starts the background retry when a tag is newly broken
// (which it reports).
func (v *Invalidator) markBroken(tags []string) bool {
	v.mu.Lock()
	added := false
	for _, t := range tags {
		if !v.broken[t] {
			v.broken[t] = true
			added = true
		}
	}
	v.nBroken.Store(int32(len(v.broken)))
	v.mu.Unlock()
	if !added || v.closed.Load() {
		return added
	}
	v.bg.Go(v.retry)
	return true
}

func (v *Invalidator) retry() {
	for delay := 50 * time.Millisecond; v.bg.Sleep(delay); delay = min(2*delay, 5*time.Second) {
		if v.retryOnce() {
			return
		}
	}
}

// retryOnce releases the holds whose release failed and bumps the broken
// tags, once; it reports whether nothing is left to do.
func (v *Invalidator) retryOnce() bool {
	v.mu.Lock()
	tags := make([]string, 0, len(v.broken))
	for t := range v.broken {
		tags = append(tags, t)
	}
	leases := v.unreleased
	v.unreleased = nil
	v.mu.Unlock()
	// Release the holds whose release failed (it bumps them too).
	for i, l := range leases {
		sctx, cancel := v.cfg.Calls.Ctx(context.Background(), true)
		err := v.st.Release(sctx, l.tags, l.id)
		cancel()
		if err != nil {
			v.mu.Lock()
			v.unreleased = append(v.unreleased, leases[i:]...)
			v.mu.Unlock()
			break
		}
	}
	if len(tags) > 0 {
		sctx, cancel := v.cfg.Calls.Ctx(context.Background(), true)
		_, err := v.st.Bump(sctx, tags, 0)
		cancel()
		if err != nil {
			return false
		}
		v.C.Invalidations.Add(tableTags(tags))
		v.clearBroken(tags)
	}
	v.mu.Lock()
	done := len(v.broken) == 0 && len(v.unreleased) == 0
	v.mu.Unlock()
	return done
}

func (v *Invalidator) clearBroken(tags []string) {
	if v.nBroken.Load() == 0 {
		return
	}
	v.mu.Lock()
	for _, t := range tags {
		if v.writing[t] == 0 { // a write whose first bump failed is still running
			delete(v.broken, t)
		}
	}
	v.nBroken.Store(int32(len(v.broken)))
	v.mu.Unlock()
}

func (v *Invalidator) isBroken(tags []string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.broken[Global] {
		return true
	}
	for _, t := range tags {
		if v.broken[t] {
			return true
		}
	}
	return false
}

// Broken lists the tags not served now, sorted.
func (v *Invalidator) Broken() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	tags := make([]string, 0, len(v.broken))
	for t := range v.broken {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags
}

// Close stops the retries and the timers of writes of unknown outcome,
// waits for the bumps in flight, and makes one last bounded attempt at
// what the retry had not managed; it logs what is left undone.
func (v *Invalidator) Close() {
	if v.closed.Swap(true) {
		return
	}
	v.bg.Stop()
	v.bg.Wait()
	if n := v.stopLingering(); n > 0 {
		v.log.Always(slog.LevelWarn, "gormcache: closed with writes of unknown outcome; their tables stay held in the store until their lease ends", "writes", n)
	}
	if !v.retryOnce() {
		v.mu.Lock()
		leases := len(v.unreleased)
		v.mu.Unlock()
		v.log.Always(slog.LevelError, "gormcache: closed with invalidations that did not reach the store; entries of those tables may be served by other instances until their TTL", "tables", v.Broken(), "unreleased_holds", leases)
	}
}

// Of returns the invalidator of a *plugin.Plugin (nil for anything else, or
// a plugin whose Config is invalid). Package plugin sets it, so that the
// lowlevel and viewcache caches on a plugin share its invalidator without
// an exported method.
var Of func(plugin any) *Invalidator

// WatchUnrecorded makes a *plugin.Plugin call report with the SQL of every
// statement run through it, until stop, whose context carries no
// plugin.Recorder: viewcache's Config.Development reports statements made
// during a recorded request without the request's context. Package plugin
// sets it.
var WatchUnrecorded func(plugin any, report func(query string)) (stop func())
