package plugin

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/keys"
	"github.com/gormcache/gormcache/serializer"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// wrapCallback wraps one of GORM's statement callbacks in place: while it
// runs, the statement's pool is a stmtPool, the one place where the final SQL
// and arguments are known. The original pool is back before later callbacks
// (gorm:preload, after hooks) run.
func (p *Plugin) wrapCallback(orig func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		if db.Error != nil || db.DryRun || db.Statement.ConnPool == nil || p.closedOwn() {
			orig(db)
			return
		}
		p.runWrapped(db, orig, nil)
	}
}

// runWrapped runs orig with a stmtPool on the statement.
func (p *Plugin) runWrapped(db *gorm.DB, orig func(*gorm.DB), pre *probe) {
	inner := db.Statement.ConnPool
	sp := &stmtPool{p: p, inner: inner, db: db, pre: pre}
	db.Statement.ConnPool = sp
	defer func() {
		if db.Statement.ConnPool == sp {
			db.Statement.ConnPool = inner
		}
		if sp.pre != nil {
			sp.pre.release()
		}
	}()
	orig(db)
}

// stmtPool is the pool a statement sees while its callback runs.
type stmtPool struct {
	p     *Plugin
	inner gorm.ConnPool
	db    *gorm.DB
	pre   *probe // the query callback's lookup of the statement's SQL
	guard bool   // put by queryGuard, not by a wrapper
}

var _ gorm.ConnPool = (*stmtPool)(nil)

func (s *stmtPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return s.inner.PrepareContext(ctx, query)
}

// controlSent tells the plugin's transaction under the statement, if any,
// that pl is transaction control sent as SQL (a raw COMMIT: see
// txPool.controlSent); an error means the statement must not be sent (what
// it would commit could not be held).
func (s *stmtPool) controlSent(ctx context.Context, pl *plan) error {
	if pl.tx == invalidation.TxNone {
		return nil
	}
	if tx := ourTx(s.inner); tx != nil {
		return tx.controlSent(ctx)
	}
	return nil
}

// outsideTx reports whether the statement runs on the shared pool (not in a
// transaction nor on a dedicated connection); only there may the catalog be
// read again (it may need a connection of its own).
func (s *stmtPool) outsideTx() bool {
	switch s.inner.(type) {
	case gorm.TxCommitter, *sql.Conn:
		return false
	}
	return true
}

func (s *stmtPool) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	if s.outsideTx() {
		s.p.depsGraph()
	}
	pl := s.p.planFor(query)
	var raw *rawTx // transaction control sent as SQL: applied once the statement was sent
	if pl.tx != invalidation.TxNone {
		if raw = s.rawScope(); raw == &s.p.rawShared && opensTx(pl.tx) {
			s.p.warnShared(s.inner)
		}
	}
	if err := s.controlSent(ctx, pl); err != nil {
		return nil, err
	}
	if !pl.write {
		if raw != nil {
			defer func() { raw.control(s.p, pl.tx, err) }()
		}
		return s.inner.ExecContext(ctx, query, args...)
	}
	var learn *learning
	tx := ourTx(s.inner)
	if tx != nil {
		learn = s.p.learnable(pl, s.p.currentDeps(), args)
	}
	finish, err := s.startWrite(ctx, pl, args, learn)
	if err != nil {
		return nil, err // refused: not sent, so neither recorded nor a transaction control
	}
	s.p.recordPlan(ctx, pl, query, nil)
	pl.stat.wrote()
	defer func() {
		finish(err)
		if raw != nil {
			raw.control(s.p, pl.tx, err)
		}
	}()
	if learn != nil {
		return s.execLearning(ctx, tx, pl, query, args, learn)
	}
	return s.inner.ExecContext(ctx, query, args...)
}

func (s *stmtPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	src, rows, err := s.query(ctx, query, args)
	if src == nil {
		return rows, err
	}
	rows, err = replayDB.QueryContext(ctx, "", src)
	if err != nil {
		closeSource(src)
	}
	return rows, err
}

func (s *stmtPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	src, rows, err := s.query(ctx, query, args)
	var r replayable = src
	switch {
	case src != nil:
	case err != nil:
		r = errSource{err}
	default:
		src = &liveSource{rows: rows, rowTypes: s.p.rowDependentTypes()}
		r = src
	}
	row := replayDB.QueryRowContext(ctx, "", r)
	if row.Err() != nil {
		closeSource(src) // the replay never opened it: free the real rows
	}
	return row
}

func closeSource(src rowSource) {
	if ls, ok := src.(*liveSource); ok {
		_ = ls.rows.Close()
		ls.finish(nil, false, nil)
	}
}

// query runs a statement of the query or row chain. It returns a source to
// replay, or (nil, rows, err) to hand back as they are.
func (s *stmtPool) query(ctx context.Context, query string, args []any) (rowSource, *sql.Rows, error) {
	p := s.p
	if s.outsideTx() {
		p.depsGraph()
	}
	pl := p.planFor(query)
	if err := s.controlSent(ctx, pl); err != nil {
		return nil, nil, err
	}
	if pl.tx != invalidation.TxNone && !pl.write {
		if raw := s.rawScope(); raw != nil {
			// Transaction control through Raw(…).Rows(): applied once sent.
			rows, err := s.inner.QueryContext(ctx, query, args...)
			raw.control(p, pl.tx, err)
			p.stats.bypassed(ReasonTransaction)
			return nil, rows, err
		}
	}
	if pl.write {
		p.stats.bypassed(pl.reason)
		pl.stat.wrote()
		finish, err := s.startWrite(ctx, pl, args, nil)
		if err != nil {
			return nil, nil, err // refused: not sent
		}
		p.recordPlan(ctx, pl, query, nil)
		if raw := s.rawScope(); pl.tx != invalidation.TxNone && raw != nil {
			write := finish
			finish = func(err error) {
				write(err)
				raw.control(p, pl.tx, err)
			}
		}
		rows, err := s.queryWriting(ctx, query, args, finish)
		if err != nil {
			finish(err)
			return nil, nil, err
		}
		// The write is over when its rows are closed.
		return &liveSource{rows: rows, rowTypes: p.rowDependentTypes(), done: func(_ *capture, _ bool, err error) { finish(err) }}, nil, nil
	}
	opts, err := optionsOf(s.db)
	if err != nil {
		p.stats.bypassed(ReasonBadOption)
		return nil, nil, err
	}
	reason := s.bypassReason(pl)
	if reason == "" {
		reason = p.optionsReason(opts)
	}
	if reason != "" {
		p.stats.bypassed(reason)
		pl.stat.bypassed(reason)
		var extra []string
		if opts != nil {
			extra = opts.tags
		}
		p.recordPlan(ctx, pl, query, extra)
		rows, err := s.inner.QueryContext(ctx, query, args...)
		return nil, rows, err
	}
	pr := s.pre
	if pr == nil || pr.query != query {
		pr = p.probeQuery(ctx, s.inner, pl, query, args, opts)
	}
	pr.db = s.db
	s.pre = nil
	return p.cachedQuery(ctx, s.inner, pr)
}

// queryWriting runs a write sent as a query; a panic under it ends the
// write (its holds would otherwise be renewed) before going on.
func (s *stmtPool) queryWriting(ctx context.Context, query string, args []any, finish func(error)) (*sql.Rows, error) {
	defer func() {
		if r := recover(); r != nil {
			finish(fmt.Errorf("gormcache: panic: %v", r))
			panic(r)
		}
	}()
	return s.inner.QueryContext(ctx, query, args...)
}

// bypassReason says why a read of plan pl must go straight to the
// database, or "" when the cache may serve it.
func (s *stmtPool) bypassReason(pl *plan) Reason {
	switch {
	case !pl.cacheable:
		return pl.reason
	case s.p.closed.Load():
		return ReasonClosed
	}
	switch s.inner.(type) {
	case gorm.TxCommitter:
		return ReasonTransaction
	case *sql.Conn:
		return ReasonConnection
	}
	if s.p.rawShared.inTx() {
		return ReasonTransaction // BEGIN sent through the shared pool
	}
	return ""
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// probe is a looked-up query: its key, the versions of its tags read before
// it runs, and what the cache can do for it.
type probe struct {
	query      string
	args       []any
	pl         *plan
	buf        *[]byte
	canonical  []byte
	key        string
	versions   []uint64
	entry      *serializer.Entry // a verified, fresh entry: a hit
	bypass     Reason            // why the result may be neither served nor stored
	tags       []string          // the plan's tags, and the query's Tags option
	ttl        time.Duration     // the TTL to store the result with
	stored     *serializer.Entry // the result, once stored (for coalesced misses)
	noStore    Reason            // why a miss may be served but not stored (a replica read)
	revalidate bool              // the entry is past its TTL: serve it and refresh it
	db         *gorm.DB          // the statement (for the hit marker), or nil
	// loose: 1 + the index in tags of the table tag a row-level entry
	// ignores (0: a table-level read), marker what such an entry stamps
	// there instead; nrows: the rows it names (-1: keyed on a column other
	// than the primary key, it ignores the table's tag whatever it finds)
	loose, nrows int
	marker       uint64
	hint         *rangeHint // a ranged read's (ranges.go), when its plan has one
	vbuf         [4]uint64  // versions' storage, for up to four tags
}

// fresh reports whether e, found under the probe's key, is fresh for the
// versions the probe read (core.FreshExcept: a row-level entry ignores its
// table's tag, at loose-1).
func (pr *probe) fresh(e *serializer.Entry) bool {
	return core.FreshExcept(e.Versions, pr.versions, pr.loose-1, pr.marker)
}

// settle makes a captured entry of a row-level read depend on its rows
// alone when it is keyed on a column other than the primary key or found
// one row per value, or else on its table too; it returns why it may not
// be stored ("" when it may).
func (pr *probe) settle(e *serializer.Entry) Reason {
	if r := pr.pl.ranged; r != nil {
		return r.settle(pr.hint, e, pr.loose-1, pr.args)
	}
	if pr.loose == 0 {
		return ""
	}
	i := pr.loose - 1
	if pr.nrows < 0 || e.Rows == pr.nrows {
		e.Versions[i] = pr.marker // (the entry's own copy of pr.versions)
		return ""
	}
	if e.Versions[i] == 0 {
		return ReasonHeld // a write to the table was in flight
	}
	return ""
}

// stamp gives a capture of the probed query's result what its entry is
// checked by on a hit: the canonical query, and the versions read before
// the query ran (copies: the probe's buffers are reused).
func (pr *probe) stamp(c *capture) {
	c.entry.Check = append([]byte(nil), pr.canonical...)
	c.entry.Versions = slices.Clone(pr.versions)
}

func (pr *probe) release() {
	if pr.buf != nil {
		*pr.buf = pr.canonical[:0]
		bufPool.Put(pr.buf)
		pr.buf, pr.canonical = nil, nil
	}
}

// probeQuery builds the query's key and looks it up. It counts nothing.
func (p *Plugin) probeQuery(ctx context.Context, pool gorm.ConnPool, pl *plan, query string, args []any, opts *queryOptions) *probe {
	pr := &probe{query: query, args: args, pl: pl, buf: bufPool.Get().(*[]byte), tags: pl.tags}
	var optTTL time.Duration
	refresh := false
	if opts != nil {
		optTTL, refresh = opts.ttl, opts.refresh
		if len(opts.tags) > 0 {
			pr.tags = withTags(pl.tags, opts.tags)
		}
	}
	if pl.rows != nil {
		if tags, n, ok := pl.rows.withTags(pr.tags, args); ok {
			pr.tags = tags // (the global tag stays last)
			if pl.rows.foreign {
				n = -1
			}
			pr.loose, pr.nrows, pr.marker = slices.Index(pr.tags, pl.rows.table)+1, n, pl.rows.marker
		}
	}
	if pl.ranged != nil {
		if h := pl.ranged.hint.Load(); h != nil {
			pr.tags, pr.hint = h.withTags(pr.tags), h
			pr.loose, pr.marker = slices.Index(pr.tags, pl.ranged.table)+1, pl.ranged.marker
		}
	}
	pr.ttl = p.policy.entryTTL(optTTL, pl.ttl)
	canonical, err := keys.AppendQuery((*pr.buf)[:0], p.dialName, p.identity, query, args)
	if err == nil && pr.hint != nil {
		canonical = append(canonical, pr.hint.suffix...) // (its own entry: other rows, other tags)
	}
	pr.canonical = canonical
	if err != nil {
		pr.bypass = ReasonUnsupportedArg
		var extra []string
		if opts != nil {
			extra = opts.tags
		}
		p.recordPlan(ctx, pl, query, extra)
		return pr
	}
	pr.key = p.keys.Key(canonical)
	if n := len(pr.tags); n <= len(pr.vbuf) {
		pr.versions = pr.vbuf[:n] // (an entry stamped with them gets a copy)
	} else {
		pr.versions = make([]uint64, n)
	}
	entry, ok := p.lookup(ctx, pr.key, pr.tags, pr.versions)
	p.RecordRead(ctx, pr.tags, pr.versions)
	p.unrecorded(ctx, query)
	if !ok {
		pr.bypass = ReasonStoreError
		return pr
	}
	if reason := p.unstorable(pr.tags, pr.versions, pr.loose); reason != "" {
		pr.bypass = reason
		return pr
	}
	pr.noStore = p.replicaReason(pool, pr.tags, pr.versions)
	if pr.noStore == "" && p.currentDeps() != pl.deps {
		// The catalog was read again since the plan was made (its tags may
		// key columns that are keyed no more): serve, but store nothing.
		// (installDeps stores the new graph before it bumps the global tag,
		// so a read whose versions came after that bump sees it here.)
		pr.noStore = ReasonNoCatalog
	}
	if entry != nil && !refresh {
		switch {
		case !bytes.Equal(entry.Check, canonical):
			p.stats.collisions.Add(1)
		case pr.fresh(entry) && entryKnowsScanTypes(entry):
			pr.entry = entry
			if fresh := p.policy.freshTTL(optTTL, pl.ttl); fresh > 0 && p.policy.swr > 0 {
				// stale-while-revalidate: past its TTL (not invalidated)
				age := time.Duration(time.Now().UnixNano() - entry.Created)
				switch {
				case age <= fresh:
				case age <= fresh+p.policy.swr && pr.noStore == "":
					pr.revalidate = true
				default:
					pr.entry = nil
				}
			}
		default:
			noteStale(pr, entry)
		}
	}
	return pr
}

// cachedQuery serves a probed query: from the entry on a hit, else from the
// database, capturing the result to store it.
func (p *Plugin) cachedQuery(ctx context.Context, inner gorm.ConnPool, pr *probe) (rowSource, *sql.Rows, error) {
	defer pr.release()
	if pr.bypass != "" {
		p.stats.bypassed(pr.bypass)
		pr.pl.stat.bypassed(pr.bypass)
		rows, err := inner.QueryContext(ctx, pr.query, pr.args...)
		return nil, rows, err
	}
	if pr.entry != nil && !p.replaysTypes(pr.entry) {
		// stored by the fast path without per-row column types, which a
		// map or Rows() destination reads: a miss, stored again with them
		pr.entry = nil
	}
	if pr.entry != nil {
		if pr.revalidate {
			p.revalidate(inner, pr)
		}
		p.countHit(pr.pl)
		p.markHit(pr.db)
		return newEntrySource(pr.entry), nil, nil
	}
	if pr.noStore != "" {
		p.stats.bypassed(pr.noStore)
		pr.pl.stat.bypassed(pr.noStore)
		rows, err := inner.QueryContext(ctx, pr.query, pr.args...)
		return nil, rows, err
	}
	p.countMiss(pr.pl)
	rows, err := inner.QueryContext(ctx, pr.query, pr.args...)
	if err != nil {
		return nil, nil, err
	}
	c := p.newCapture(nil, true) // (the columns: when the rows are opened)
	pr.stamp(c)
	return &liveSource{rows: rows, rowTypes: c.rowTypes, capture: c, known: &pr.pl.columns, done: func(c *capture, complete bool, _ error) {
		p.keepMiss(pr, c, complete) // (when the rows are closed: after pr.release, which keeps what this reads)
	}}, nil, nil
}

// lookup reads the entry under key and the versions of tags. ok is false
// when the store failed (the query then goes to the database, unstored).
func (p *Plugin) lookup(ctx context.Context, key string, tags []string, versions []uint64) (*serializer.Entry, bool) {
	sctx, cancel := p.storeCtx(ctx, false)
	defer cancel()
	if p.values != nil {
		v, err := p.values.GetValue(sctx, key, tags, versions)
		if err != nil {
			p.storeFailed("get", err)
			return nil, false
		}
		e, _ := v.(*serializer.Entry)
		return e, true
	}
	b, err := p.store.Get(sctx, key, tags, versions)
	if err != nil {
		p.storeFailed("get", err)
		return nil, false
	}
	if b == nil {
		return nil, true
	}
	e, err := p.decoded.decode(key, b)
	if err != nil {
		p.stats.corrupt.Add(1)
		p.clog.Limited(slog.LevelWarn, "gormcache: entry does not decode; treated as a miss", "key", key, "error", err)
		return nil, true
	}
	return e, true
}

func (p *Plugin) storeFailed(op string, err error) {
	if p.inv.StoreFailed("gormcache", op, err) == core.Canceled {
		// The application gave up on the query (store.CallerGaveUp): that
		// says nothing about the store.
		p.stats.storeCanceled.Add(1)
		return
	}
	p.stats.storeErrors.Add(1)
}

// unstorable says why a result read now may not be served or stored under
// versions ("" when it may): a tag held by a write in flight or unknown, or
// a tag whose last invalidation did not reach the store. The tag at
// loose-1 (a row-level read's table) is judged when the result is known
// (probe.settle).
func (p *Plugin) unstorable(tags []string, versions []uint64, loose int) Reason {
	for i, v := range versions {
		if v == 0 && i != loose-1 {
			return ReasonHeld
		}
	}
	if !p.inv.Serving(tags) {
		return ReasonBumpFailed
	}
	return ""
}

// put stores a captured entry for ttl, and reports whether it did.
func (p *Plugin) put(key string, e *serializer.Entry, ttl time.Duration) bool {
	if e.Rows == 0 && p.cfg.SkipEmpty {
		p.stats.bypassed(ReasonEmpty)
		return false
	}
	if e.Rows == 0 && p.cfg.EmptyTTL > 0 && (ttl <= 0 || p.cfg.EmptyTTL < ttl) {
		ttl = p.cfg.EmptyTTL
	}
	e.Created = time.Now().UnixNano()
	sctx, cancel := p.storeCtx(context.Background(), false) // (nothing to detach from)
	defer cancel()
	var err error
	if p.values != nil {
		err = p.values.SetValue(sctx, key, e, e.Size(), ttl)
	} else {
		var b []byte
		b, err = serializer.AppendEncodeOptions(nil, e, serializer.Options{CompressAbove: p.cfg.CompressAbove})
		if errors.Is(err, serializer.ErrValueType) {
			p.stats.bypassed(ReasonUnsupportedValue)
			return false
		}
		if err == nil && len(b) > p.cfg.MaxBytes {
			p.stats.bypassed(ReasonTooLarge)
			return false
		}
		if err == nil {
			err = p.store.Set(sctx, key, b, ttl)
		}
	}
	switch {
	case errors.Is(err, serializer.ErrValueType):
		p.stats.bypassed(ReasonUnsupportedValue)
		return false
	case errors.Is(err, store.ErrTooLarge):
		p.stats.bypassed(ReasonTooLarge)
		return false
	case err != nil:
		p.storeFailed("set", err)
		return false
	}
	p.stats.stores.Add(1)
	return true
}

// encodeEntry is the entry codec given to two-level stores.
func (p *Plugin) encodeEntry(v any) ([]byte, error) {
	e, ok := v.(*serializer.Entry)
	if !ok {
		return nil, fmt.Errorf("gormcache: cannot encode a %T", v)
	}
	b, err := serializer.AppendEncodeOptions(nil, e, serializer.Options{CompressAbove: p.cfg.CompressAbove})
	if err == nil && len(b) > p.cfg.MaxBytes {
		return nil, fmt.Errorf("gormcache: %d bytes: %w", len(b), store.ErrTooLarge)
	}
	return b, err
}

func decodeEntry(b []byte) (any, error) { return serializer.Decode(b) }
