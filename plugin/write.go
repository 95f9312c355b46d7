package plugin

import (
	"context"
	"time"

	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// startWrite is called before a statement that may change data runs. It
// returns the function to call once the statement is over.
//
// Outside a transaction: bump the tables and hold them (reads of them go to
// the database and nothing is stored for them) until the statement is over,
// then bump again and release. Inside one of our transactions: hold the
// tables until the transaction ends (txPool.end). Inside a transaction we
// cannot see end (begun outside GORM's pool): bump now and hold for
// WriteLease, and again when the statement is over.
func (s *stmtPool) startWrite(ctx context.Context, pl *plan) func() {
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
		tx.hold(ctx, tags)
		if pl.ddl {
			tx.ddl.Store(true)
			return p.schemaChanged
		}
		return func() {}
	}
	if _, foreign := s.inner.(gorm.TxCommitter); foreign {
		id := p.beginWrite(ctx, tags, p.cfg.WriteLease)
		return func() {
			if id == 0 {
				p.writeOver(tags)
			}
			p.holdAgain(ctx, tags)
			if pl.ddl {
				p.schemaChanged()
			}
		}
	}
	id := p.beginWrite(ctx, tags, p.cfg.WriteLease)
	return func() {
		p.endWrite(ctx, tags, id)
		if pl.ddl {
			p.schemaChanged()
		}
	}
}

const bumpAttempts = 3

// beginWrite bumps tags and holds them for hold; it returns the lease id.
// It never fails: a bump that does not reach the store marks the tags broken.
func (p *Plugin) beginWrite(ctx context.Context, tags []string, hold time.Duration) uint64 {
	p.pending.Add(1)
	defer p.pending.Done()
	var err error
	for i := 0; i < bumpAttempts; i++ {
		sctx, cancel := p.storeCtx(ctx, true)
		var id uint64
		id, err = p.store.Bump(sctx, tags, hold)
		cancel()
		if err == nil {
			p.stats.invalidations.Add(uint64(len(tags)))
			return id
		}
	}
	// No hold protects the tables while the write runs: they stay broken
	// (not served, not stored) until the write is over and bumped after it
	// (writeOver), whatever a background retry manages before.
	p.brokenMu.Lock()
	if p.writing == nil {
		p.writing = map[string]int{}
	}
	for _, t := range tags {
		p.writing[t]++
	}
	p.brokenMu.Unlock()
	p.bumpFailed(tags, err)
	return 0
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

// writeOver ends the in-flight accounting of a write whose first bump
// failed, once the write is over: from here on, a successful bump of its
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

// endWrite bumps tags again and releases the hold of lease id.
func (p *Plugin) endWrite(ctx context.Context, tags []string, id uint64) {
	if id == 0 {
		p.writeOver(tags)
	}
	p.pending.Add(1)
	defer p.pending.Done()
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
		// The hold would otherwise last until it expires (WriteLease), and
		// the tables be read from the database all that time.
		p.brokenMu.Lock()
		p.unreleased = append(p.unreleased, lease{tags: tags, id: id})
		p.brokenMu.Unlock()
	}
	p.bumpFailed(tags, err)
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
		return false
	}
	p.pending.Add(1)
	go p.retryBroken()
	return true
}

func (p *Plugin) retryBroken() {
	defer p.pending.Done()
	for delay := 50 * time.Millisecond; !p.closed.Load(); delay = min(2*delay, 5*time.Second) {
		time.Sleep(delay)
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
				continue
			}
			p.stats.invalidations.Add(uint64(len(tags)))
			p.clearBroken(tags)
		}
		p.brokenMu.Lock()
		done := len(p.broken) == 0 && len(p.unreleased) == 0
		p.brokenMu.Unlock()
		if done {
			return
		}
	}
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
