package plugin

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// A rawTx follows a session's transaction opened and ended by SQL (BEGIN,
// START TRANSACTION, SET autocommit = 0, XA START … COMMIT, ROLLBACK), which
// the pools never see begin or end: while it is open, reads through that
// session are not cached, and the tables it writes stay held until it ends,
// then are bumped.
//
// A dedicated connection (db.Connection's *sql.Conn) has a rawTx of its
// own. The shared pool has one for all its connections: database/sql may
// run each statement on another connection, so a BEGIN sent through it
// (the usual SQLite setup has one connection) makes every read through the
// pool go to the database until the COMMIT.
type rawTx struct {
	active atomic.Bool // open or manual: read on every statement

	mu     sync.Mutex
	open   bool // BEGIN … COMMIT / ROLLBACK
	manual bool // SET autocommit = 0: every statement is in a transaction
	writes writeSet
}

// rawScope returns the rawTx of the session a statement runs on, or nil
// inside a transaction begun through a pool (transaction control sent
// there is the application's business with that transaction).
func (s *stmtPool) rawScope() *rawTx {
	switch in := s.inner.(type) {
	case gorm.TxCommitter:
		return nil
	case *sql.Conn:
		return s.p.rawTxOf(in)
	}
	return &s.p.rawShared
}

// rawTxOf returns conn's rawTx. It is dropped when conn is garbage
// collected (a connection closed inside a transaction rolled it back): its
// holds end then.
func (p *Plugin) rawTxOf(conn *sql.Conn) *rawTx {
	w := weak.Make(conn)
	if r, ok := p.rawConns.Load(w); ok {
		return r.(*rawTx)
	}
	r, loaded := p.rawConns.LoadOrStore(w, &rawTx{})
	if !loaded {
		runtime.AddCleanup(conn, func(w weak.Pointer[sql.Conn]) {
			r, ok := p.rawConns.LoadAndDelete(w)
			if !ok {
				return
			}
			if rt := r.(*rawTx); rt.inTx() {
				// Closed inside a transaction opened as SQL: PostgreSQL's
				// driver ends it, but go-sql-driver/mysql hands the
				// connection back to the pool with it still open, to be
				// committed by whatever runs on it next. Its fate is unknown.
				p.log.Warn("gormcache: a dedicated connection (db.Connection) was closed inside a transaction opened as SQL; end such transactions before the callback returns")
				rt.endHolds(true)
				_ = p.inv.Bump(context.Background(), []string{store.GlobalTag})
			} else {
				rt.endHolds(false)
			}
		}, w)
	}
	return r.(*rawTx)
}

// warnShared warns, once, that transaction control sent as SQL through a
// pool of several connections may run its statements on different ones.
func (p *Plugin) warnShared(pool gorm.ConnPool) {
	var sqlDB *sql.DB
	switch in := pool.(type) {
	case *sql.DB:
		sqlDB = in
	case gorm.GetDBConnector:
		sqlDB, _ = in.GetDBConn()
	}
	if sqlDB != nil && sqlDB.Stats().MaxOpenConnections == 1 {
		return
	}
	if p.warnedShared.CompareAndSwap(false, true) {
		p.log.Warn("gormcache: transaction control sent as SQL through a pool of several connections: database/sql may run each statement on another connection; use db.Transaction, or db.Connection for a session of your own")
	}
}

// inTx reports whether the session is inside a transaction opened by SQL.
func (r *rawTx) inTx() bool { return r != nil && r.active.Load() }

// hold records tags as written inside the transaction (see writeSet.add).
func (r *rawTx) hold(ctx context.Context, p *Plugin, tags []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes.add(ctx, p, tags)
}

// control applies a transaction control statement that ended with err.
func (r *rawTx) control(p *Plugin, c invalidation.TxControl, err error) {
	unknown := outcomeUnknown(err)
	if err != nil && !unknown && c == invalidation.TxBegin {
		return // not begun
	}
	r.mu.Lock()
	var ending []*core.Hold
	switch c {
	case invalidation.TxBegin:
		r.open = true
	case invalidation.TxEnd, invalidation.TxChain, invalidation.TxAutocommitOn, invalidation.TxPrepare, invalidation.TxResolve:
		ending = r.writes.take()
		r.open = c == invalidation.TxChain
		if c == invalidation.TxAutocommitOn {
			r.manual = false
		}
	case invalidation.TxAutocommitOff:
		r.manual = true
	}
	r.active.Store(r.open || r.manual)
	r.mu.Unlock()
	switch c {
	case invalidation.TxPrepare:
		// Prepared, not committed: the holds stay until a COMMIT or
		// ROLLBACK PREPARED (from any session) resolves it.
		p.preparedMu.Lock()
		p.prepared = append(p.prepared, ending...)
		p.preparedMu.Unlock()
		return
	case invalidation.TxResolve:
		// A prepared transaction, which any session or instance may have
		// written, is committed or rolled back: everything is invalid.
		p.preparedMu.Lock()
		ending = append(ending, p.prepared...)
		p.prepared = nil
		p.preparedMu.Unlock()
		_ = p.inv.Bump(context.Background(), []string{store.GlobalTag})
	}
	for _, h := range ending {
		h.End(context.Background(), unknown)
	}
}

// endHolds ends the transaction's holds (its connection is gone).
func (r *rawTx) endHolds(unknown bool) {
	r.mu.Lock()
	holds := r.writes.take()
	r.open, r.manual = false, false
	r.active.Store(false)
	r.mu.Unlock()
	for _, h := range holds {
		h.End(context.Background(), unknown)
	}
}
