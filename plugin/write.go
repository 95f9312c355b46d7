package plugin

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// startWrite is called before a statement that may change data runs. It
// returns the function to call once the statement is over, with its error.
//
// Outside a transaction: bump the tables and hold them (reads of them go to
// the database and nothing is stored for them) until the statement is over,
// then bump again and release. Inside one of our transactions: hold the
// tables until the transaction ends (txPool.end). Inside a transaction we
// cannot see end (begun outside GORM's pool): bump now and hold for
// WriteLease, and again when the statement is over.
//
// A statement whose outcome is unknown (it ended with a context or
// connection error: the database may still commit it) keeps its tables
// held for WriteLease, and bumps them again then (see linger).
//
// When the first bump cannot be placed and Config.BumpFailure is FailWrite,
// it returns an error wrapping store.ErrUnavailable instead: the statement
// must not run.
func (s *stmtPool) startWrite(ctx context.Context, pl *plan) (func(error), error) {
	p := s.p
	tags := pl.writeTags
	if s.db != nil && len(tags) > 0 && tags[0] != store.GlobalTag {
		tags = withTables(tags, s.db.Statement.Table)
		if sch := s.db.Statement.Schema; sch != nil {
			tags = withTables(tags, sch.Table)
		}
	}
	tags = p.currentDeps().writeTags(tags) // cascades, partitions, triggers
	if tx := ourTx(s.inner); tx != nil {
		if err := tx.hold(ctx, tags); err != nil {
			return nil, err
		}
		if pl.ddl {
			tx.ddl.Store(true)
			return func(error) { p.schemaChanged() }, nil
		}
		return func(error) {}, nil
	}
	if raw := s.rawScope(); raw.inTx() || raw != nil && opensTx(pl.tx) {
		if err := raw.hold(ctx, p, tags); err != nil {
			return nil, err
		}
		return func(error) {
			if pl.ddl {
				p.schemaChanged()
			}
		}, nil
	}
	if _, foreign := s.inner.(gorm.TxCommitter); foreign {
		id, _, err := p.beginWrite(ctx, tags, p.cfg.WriteLease, true)
		if err != nil {
			return nil, err
		}
		return func(error) {
			if id == 0 {
				p.writeOver(tags)
			}
			p.holdAgain(ctx, tags)
			if pl.ddl {
				p.schemaChanged()
			}
		}, nil
	}
	h, err := p.holdWrite(ctx, tags)
	if err != nil {
		return nil, err
	}
	// A context already done when the statement starts: database/sql
	// returns its error without running the statement.
	done := ctx.Err() != nil
	return func(err error) {
		h.end(ctx, !done && outcomeUnknown(err))
		if pl.ddl {
			p.schemaChanged()
		}
	}, nil
}

// opensTx tells whether a statement leaves a transaction open ("BEGIN;
// UPDATE …" in one Exec): its writes are held until that ends.
func opensTx(c invalidation.TxControl) bool {
	return c == invalidation.TxBegin || c == invalidation.TxChain || c == invalidation.TxAutocommitOff
}

// outcomeUnknown tells whether a statement or a commit that ended with err
// may still have taken effect: the caller's context ended it (pgx stops
// reading at the deadline without cancelling the statement;
// go-sql-driver/mysql closes the connection) or the connection failed
// under it. An error the database returned is not such an error.
func outcomeUnknown(err error) bool {
	if err == nil || errors.Is(err, ErrWriteRefused) {
		return false
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"invalid connection", "bad connection", "conn closed", "connection reset", "broken pipe", "timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

const bumpAttempts = 3

// A writeHold protects the tables of one write (a statement, or the
// writes of a transaction to tables it had not written before): they were
// bumped and held before it ran, the hold is renewed every WriteLease/2
// while it runs (a write may take longer than WriteLease: a transaction
// left open, a statement waiting on a lock), and they are bumped again and
// released when it is over.
type writeHold struct {
	p    *Plugin
	tags []string

	mu sync.Mutex
	id uint64 // the store's lease; 0 when no hold could be placed
	// unprotected: the store holds nothing for this write (its first bump
	// or a renewal failed); its tags are counted in Plugin.writing, so that
	// they stay broken (not served here) until it is over or held again.
	unprotected bool
	renewal     *time.Timer
	since       time.Time
	over        bool
	// strays are the leases of bumps that failed at the client but may
	// have been placed (a reply lost to a timeout): released once a hold
	// of this write is in place, or when it is over.
	strays []uint64
}

// maxHoldRenewal bounds how long a hold is renewed: a write still running
// after that (or a transaction or *sql.Rows the application never ended)
// keeps its tables held only until the last hold expires.
const maxHoldRenewal = time.Hour

// A writeSet is the holds of a transaction's writes: a table is bumped
// and held the first time the transaction writes it, until it ends. Its
// owner locks it.
type writeSet struct {
	held  map[string]bool
	holds []*writeHold
}

// add holds the tags not held yet. An error (Config.BumpFailure) means the
// write must not run; nothing is recorded then.
func (w *writeSet) add(ctx context.Context, p *Plugin, tags []string) error {
	var fresh []string
	for _, t := range tags {
		if !w.held[t] {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	h, err := p.holdWrite(ctx, fresh)
	if err != nil {
		return err
	}
	if w.held == nil {
		w.held = make(map[string]bool, len(fresh))
	}
	for _, t := range fresh {
		w.held[t] = true
	}
	w.holds = append(w.holds, h)
	return nil
}

// take returns the holds and empties the set (the transaction is over).
func (w *writeSet) take() []*writeHold {
	holds := w.holds
	w.held, w.holds = nil, nil
	return holds
}

// holdWrite bumps and holds tags for a write about to run (see beginWrite
// for its error).
func (p *Plugin) holdWrite(ctx context.Context, tags []string) (*writeHold, error) {
	h := &writeHold{p: p, tags: tags, since: time.Now()}
	var err error
	if h.id, h.strays, err = p.beginWrite(ctx, tags, p.cfg.WriteLease, true); err != nil {
		return nil, err
	}
	h.unprotected = h.id == 0
	if !h.unprotected {
		p.releaseStrays(tags, h.takeStrays())
	}
	h.mu.Lock() // renew reads h.renewal
	h.renewal = time.AfterFunc(p.cfg.WriteLease/2, h.renew)
	h.mu.Unlock()
	return h, nil
}

// renew places a fresh hold before the current one expires, then releases
// the current one.
func (h *writeHold) renew() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.over {
		return
	}
	p := h.p
	if p.closed.Load() {
		return // closed: the hold stays in the store until it expires
	}
	if time.Since(h.since) > maxHoldRenewal {
		p.log.Error("gormcache: a write has held its tables for over an hour; its hold is no longer renewed", "tables", h.tags)
		return
	}
	p.bg.add()
	defer p.bg.done()
	sctx, cancel := p.storeCtx(context.Background(), true)
	id, err := p.store.Bump(sctx, h.tags, p.cfg.WriteLease)
	cancel()
	if err != nil {
		if id != 0 {
			h.strays = append(h.strays, id)
		}
		if !h.unprotected {
			h.unprotected = true
			p.writeStarted(h.tags)
		}
		p.bumpFailed(h.tags, err)
		h.renewal.Reset(min(time.Second, p.cfg.WriteLease/4))
		return
	}
	p.stats.invalidations.Add(uint64(len(h.tags)))
	p.stats.renewals.Add(1)
	old := h.id
	h.id = id
	if h.unprotected {
		// Held again, and bumped: whatever was stored meanwhile is invalid.
		h.unprotected = false
		p.writeOver(h.tags)
	}
	if old != 0 {
		p.release(context.Background(), h.tags, old)
	}
	p.releaseStrays(h.tags, h.takeStrays())
	h.renewal.Reset(p.cfg.WriteLease / 2)
}

// takeStrays returns the stray leases and forgets them; h.mu is held.
func (h *writeHold) takeStrays() []uint64 {
	s := h.strays
	h.strays = nil
	return s
}

// releaseStrays releases, in the background, leases whose bump failed at
// the client but may have reached the store: left alone, each would hold
// the tags (on every instance) until it expires, WriteLease later.
func (p *Plugin) releaseStrays(tags []string, ids []uint64) {
	if len(ids) == 0 || p.closed.Load() {
		return
	}
	p.bg.add()
	go func() {
		defer p.bg.done()
		for _, id := range ids {
			p.release(context.Background(), tags, id)
		}
	}()
}

// end bumps the tags again and releases the hold, once the write is over;
// when its outcome is unknown, the tags stay held for WriteLease (linger).
func (h *writeHold) end(ctx context.Context, unknown bool) {
	h.mu.Lock()
	if h.over {
		h.mu.Unlock()
		return
	}
	h.over = true
	h.renewal.Stop()
	id, unprotected, strays := h.id, h.unprotected, h.takeStrays()
	h.mu.Unlock()
	p := h.p
	// A stray lease holds no longer than WriteLease, which is what linger
	// wants; otherwise it is released with the write's own.
	if !unknown {
		defer p.releaseStrays(h.tags, strays)
	}
	if unknown {
		p.linger(ctx, h.tags, id, unprotected)
		return
	}
	if unprotected {
		p.writeOver(h.tags)
	}
	p.endWrite(ctx, h.tags, id)
}

// linger keeps the tags of a write whose outcome is unknown held for
// WriteLease from now (the database may still commit it: a statement
// waiting on a lock runs on after its caller gave up), then bumps and
// releases them. Statement and lock timeouts shorter than WriteLease bound
// how long such a write can run.
func (p *Plugin) linger(ctx context.Context, tags []string, id uint64, unprotected bool) {
	p.stats.unknownOutcomes.Add(1)
	p.log.Warn("gormcache: a write ended without a known outcome (context or connection error); its tables are not cached until WriteLease has passed", "tables", tags, "lease", p.cfg.WriteLease)
	// Leases of failed attempts may hold too: for WriteLease, as wanted.
	next, _, _ := p.beginWrite(ctx, tags, p.cfg.WriteLease, false)
	if unprotected {
		p.writeOver(tags)
	}
	if id != 0 {
		p.release(ctx, tags, id)
	}
	p.lingerMu.Lock()
	defer p.lingerMu.Unlock()
	if p.lingering == nil {
		p.lingering = map[*time.Timer]bool{}
	}
	var t *time.Timer
	t = time.AfterFunc(p.cfg.WriteLease, func() {
		p.lingerMu.Lock()
		live := p.lingering[t]
		delete(p.lingering, t)
		p.lingerMu.Unlock()
		if !live {
			return // stopped by Close
		}
		if next == 0 {
			p.writeOver(tags)
		}
		p.endWrite(context.Background(), tags, next)
	})
	p.lingering[t] = true
}

// stopLingering stops the timers of writes of unknown outcome (Close):
// their holds stay in the store until they expire by themselves.
func (p *Plugin) stopLingering() int {
	p.lingerMu.Lock()
	defer p.lingerMu.Unlock()
	n := 0
	for t := range p.lingering {
		if t.Stop() {
			n++
		}
		delete(p.lingering, t)
	}
	return n
}

// beginWrite bumps tags and holds them for hold; it returns the lease id,
// and the leases of attempts that failed at the client (strays: a timed-out
// call may still have placed its hold, see store.Store.Bump).
// A bump that does not reach the store fails a write that has not run yet
// (before) under Config.BumpFailure FailWrite, with an error wrapping
// store.ErrUnavailable (its strays are released in the background);
// otherwise it marks the tags broken, counts them as written (writeStarted)
// until writeOver, and returns 0.
func (p *Plugin) beginWrite(ctx context.Context, tags []string, hold time.Duration, before bool) (uint64, []uint64, error) {
	p.bg.add()
	defer p.bg.done()
	var err error
	var strays []uint64
	for i := 0; i < bumpAttempts; i++ {
		sctx, cancel := p.storeCtx(ctx, true)
		var id uint64
		id, err = p.store.Bump(sctx, tags, hold)
		cancel()
		if err == nil {
			p.stats.invalidations.Add(uint64(len(tags)))
			return id, strays, nil
		}
		if id != 0 {
			strays = append(strays, id)
		}
	}
	if before && p.cfg.BumpFailure == FailWrite && !p.ownStore {
		p.stats.refused.Add(1)
		p.storeFailed("bump", err)
		p.releaseStrays(tags, strays)
		return 0, nil, fmt.Errorf("%w: its tables could not be invalidated in the store first (Config.BumpFailure is FailWrite): %w", ErrWriteRefused, errUnavailable(err))
	}
	// No hold protects the tables while the write runs: they stay broken
	// (not served, not stored) until the write is over and bumped after it
	// (writeOver), whatever a background retry manages before.
	p.writeStarted(tags)
	p.bumpFailed(tags, err)
	return 0, strays, nil
}

// errUnavailable makes sure err wraps store.ErrUnavailable.
func errUnavailable(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// writeStarted counts a write in flight that no hold protects.
func (p *Plugin) writeStarted(tags []string) {
	p.brokenMu.Lock()
	if p.writing == nil {
		p.writing = map[string]int{}
	}
	for _, t := range tags {
		p.writing[t]++
	}
	p.brokenMu.Unlock()
}

// holdAgain bumps tags and holds them for WriteLease (a write in a
// transaction we cannot see the end of); it reports success.
func (p *Plugin) holdAgain(ctx context.Context, tags []string) bool {
	sctx, cancel := p.storeCtx(ctx, true)
	_, err := p.store.Bump(sctx, tags, p.cfg.WriteLease)
	cancel()
	if err != nil {
		p.bumpFailed(tags, err)
		return false
	}
	p.stats.invalidations.Add(uint64(len(tags)))
	return true
}

// writeOver ends the in-flight accounting of a write that no hold
// protected, once it is over: from here on, a successful bump of its
// tables (made now, or retried in the background) clears them.
func (p *Plugin) writeOver(tags []string) {
	p.brokenMu.Lock()
	for _, t := range tags {
		if p.writing[t]--; p.writing[t] <= 0 {
			delete(p.writing, t)
		}
	}
	p.brokenMu.Unlock()
}

// endWrite bumps tags again and releases the hold of lease id (0: none).
func (p *Plugin) endWrite(ctx context.Context, tags []string, id uint64) {
	p.bg.add()
	defer p.bg.done()
	var err error
	for i := 0; i < bumpAttempts; i++ {
		sctx, cancel := p.storeCtx(ctx, true)
		if id == 0 {
			_, err = p.store.Bump(sctx, tags, 0)
		} else {
			err = p.store.Release(sctx, tags, id)
		}
		cancel()
		if err == nil {
			p.stats.invalidations.Add(uint64(len(tags)))
			p.clearBroken(tags)
			return
		}
	}
	if id != 0 {
		p.unreleasedLease(tags, id)
	}
	p.bumpFailed(tags, err)
}

// release drops the hold of lease id (bumping tags once more); a release
// that fails is retried in the background.
func (p *Plugin) release(ctx context.Context, tags []string, id uint64) {
	p.bg.add()
	defer p.bg.done()
	sctx, cancel := p.storeCtx(ctx, true)
	err := p.store.Release(sctx, tags, id)
	cancel()
	if err != nil {
		p.unreleasedLease(tags, id)
		p.bumpFailed(tags, err)
		return
	}
	p.stats.invalidations.Add(uint64(len(tags)))
}

// unreleasedLease records a hold whose release failed: it would otherwise
// last until it expires (WriteLease), and its tables be read from the
// database all that time. retryBroken releases it.
func (p *Plugin) unreleasedLease(tags []string, id uint64) {
	p.brokenMu.Lock()
	p.unreleased = append(p.unreleased, lease{tags: tags, id: id})
	p.brokenMu.Unlock()
}

// bump is a plain invalidation (no hold).
func (p *Plugin) bump(ctx context.Context, tags []string) error {
	sctx, cancel := p.storeCtx(ctx, true)
	defer cancel()
	if _, err := p.store.Bump(sctx, tags, 0); err != nil {
		p.bumpFailed(tags, err)
		return err
	}
	p.stats.invalidations.Add(uint64(len(tags)))
	p.clearBroken(tags)
	return nil
}

// bumpFailed stops serving tags from the store until a later bump of them
// succeeds (retried in the background).
func (p *Plugin) bumpFailed(tags []string, err error) {
	p.stats.storeErrors.Add(1)
	p.log.Error("gormcache: invalidation did not reach the store; those tables are served from the database until it does", "tables", tags, "error", err)
	p.markBroken(tags)
}

// markOutage stops serving anything from the store until the global tag
// has been bumped there (see storeFailed).
func (p *Plugin) markOutage() {
	if p.markBroken([]string{store.GlobalTag}) {
		p.stats.outages.Add(1)
		p.log.Warn("gormcache: the store failed; nothing is served from it until everything has been invalidated there once it answers again")
	}
}

// markBroken stops serving tags from the store until a bump of them
// succeeds, and starts the background retry when a tag is newly broken
// (which it reports).
func (p *Plugin) markBroken(tags []string) bool {
	p.brokenMu.Lock()
	added := false
	for _, t := range tags {
		if !p.broken[t] {
			p.broken[t] = true
			added = true
		}
	}
	p.nBroken.Store(int32(len(p.broken)))
	p.brokenMu.Unlock()
	if !added || p.closed.Load() {
		return added
	}
	p.bg.add()
	go p.retryBroken()
	return true
}

func (p *Plugin) retryBroken() {
	defer p.bg.done()
	for delay := 50 * time.Millisecond; p.bg.sleep(delay); delay = min(2*delay, 5*time.Second) {
		if p.retryBrokenOnce() {
			return
		}
	}
}

// retryBrokenOnce releases the holds whose release failed and bumps the
// broken tags, once; it reports whether nothing is left to do.
func (p *Plugin) retryBrokenOnce() bool {
	p.brokenMu.Lock()
	tags := make([]string, 0, len(p.broken))
	for t := range p.broken {
		tags = append(tags, t)
	}
	leases := p.unreleased
	p.unreleased = nil
	p.brokenMu.Unlock()
	// Release the holds whose release failed (it bumps them too).
	for i, l := range leases {
		sctx, cancel := p.storeCtx(context.Background(), true)
		err := p.store.Release(sctx, l.tags, l.id)
		cancel()
		if err != nil {
			p.brokenMu.Lock()
			p.unreleased = append(p.unreleased, leases[i:]...)
			p.brokenMu.Unlock()
			break
		}
	}
	if len(tags) > 0 {
		sctx, cancel := p.storeCtx(context.Background(), true)
		_, err := p.store.Bump(sctx, tags, 0)
		cancel()
		if err != nil {
			return false
		}
		p.stats.invalidations.Add(uint64(len(tags)))
		p.clearBroken(tags)
	}
	p.brokenMu.Lock()
	done := len(p.broken) == 0 && len(p.unreleased) == 0
	p.brokenMu.Unlock()
	return done
}

// leftBroken lists the tags still broken and the holds still unreleased.
func (p *Plugin) leftBroken() (tags []string, leases int) {
	p.brokenMu.Lock()
	defer p.brokenMu.Unlock()
	for t := range p.broken {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, len(p.unreleased)
}

func (p *Plugin) clearBroken(tags []string) {
	if p.nBroken.Load() == 0 {
		return
	}
	p.brokenMu.Lock()
	for _, t := range tags {
		if p.writing[t] == 0 { // a write whose first bump failed is still running
			delete(p.broken, t)
		}
	}
	p.nBroken.Store(int32(len(p.broken)))
	p.brokenMu.Unlock()
}

func (p *Plugin) isBroken(tags []string) bool {
	p.brokenMu.Lock()
	defer p.brokenMu.Unlock()
	if p.broken[store.GlobalTag] {
		return true
	}
	for _, t := range tags {
		if p.broken[t] {
			return true
		}
	}
	return false
}
