package plugin

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Read replicas (gorm.io/plugin/dbresolver). A replica may still be behind
// a write that has committed on the source: a miss read from it just after
// the write's bump would store old rows under the new versions, and serve
// them for the whole TTL. So results read through any pool other than the
// one the plugin was installed on (dbresolver's replicas and sources, or a
// session made before db.Use) are stored only when every table they read
// has kept its current version for at least Config.ReplicaWindow. The read
// itself is left where dbresolver sent it: the application asked for a
// replica read, with its lag; the cache only refuses to keep it longer.
// (Sending such misses to the source instead would be safe too, but the
// plugin cannot see dbresolver's source pool, and would move load the
// application put on replicas back to the source.)
//
// The time a version appeared is when this process first saw it, which is
// after the write that made it committed (a write's last bump comes after
// its commit): a replica that is at most ReplicaWindow behind its source
// has the write by the time the window is over. Lag has no upper bound, so
// set ReplicaWindow above the worst lag you tolerate from dbresolver itself;
// a replica further behind than that may fill the cache with rows older
// than the window (the test shows it with a window set too short).

// versionSeen is when this process first saw a tag's current version.
type versionSeen struct {
	version uint64
	at      time.Time
}

type replicaState struct {
	mu      sync.Mutex
	seen    map[string]versionSeen
	primary atomic.Pointer[rootPool] // the root pool of the db the plugin was installed on (set once)
}

// setPrimary records the root pool of the first database the plugin was
// installed on.
func (p *Plugin) setPrimary(rp *rootPool) { p.replicas.primary.CompareAndSwap(nil, rp) }

// fromPrimary reports whether a statement's pool reads the source the
// plugin was installed on (directly, through PrepareStmt, or in one of its
// transactions).
func (p *Plugin) fromPrimary(pool gorm.ConnPool) bool {
	primary := p.replicas.primary.Load()
	if primary == nil {
		return false
	}
	if pool == primary.inner {
		return true // the same pool, captured (by dbresolver) before the plugin wrapped it
	}
	switch cp := pool.(type) {
	case *rootPool:
		return cp == primary
	case *gorm.PreparedStmtDB:
		return cp.ConnPool == gorm.ConnPool(primary)
	case *txPool:
		return cp.root == primary
	case *stmtTxPool:
		return cp.root == primary
	}
	return false
}

// settled reports whether every tag has kept its version (as read now)
// for at least the replica window; it records versions not seen before.
func (p *Plugin) settled(tags []string, versions []uint64) bool {
	window := p.cfg.ReplicaWindow
	now := time.Now()
	r := &p.replicas
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]versionSeen{}
	}
	ok := true
	for i, t := range tags {
		s, known := r.seen[t]
		if !known || s.version != versions[i] {
			r.seen[t] = versionSeen{version: versions[i], at: now}
			ok = false
			continue
		}
		if now.Sub(s.at) < window {
			ok = false
		}
	}
	if len(r.seen) > 100_000 { // bounded: forgetting only delays storing
		clear(r.seen)
	}
	return ok
}

// replicaReason says why a result read through pool may not be stored
// ("" when it may).
func (p *Plugin) replicaReason(pool gorm.ConnPool, tags []string, versions []uint64) Reason {
	if p.fromPrimary(pool) {
		return ""
	}
	if p.replicaBehind(pool) {
		return ReasonReplicaBehind
	}
	if !p.settled(tags, versions) {
		return ReasonReplicaLag
	}
	return ""
}

// adoptPool replaces a statement's pool that the plugin does not wrap (a
// pool another plugin captured before db.Use of this one) with a root pool
// over it, so that transactions begun on it are the plugin's.
func (p *Plugin) adoptPool(db *gorm.DB) {
	if db.Statement == nil {
		return
	}
	switch cp := db.Statement.ConnPool.(type) {
	case nil, *rootPool, *stmtPool, gorm.TxCommitter, *sql.Conn, *gorm.PreparedStmtDB:
	default:
		db.Statement.ConnPool = p.rootFor(cp)
	}
}

// rootFor returns the root pool over pool: the plugin's own when pool is
// what the plugin wrapped, else one made once per pool.
func (p *Plugin) rootFor(pool gorm.ConnPool) *rootPool {
	if primary := p.replicas.primary.Load(); primary != nil && primary.inner == pool {
		return primary
	}
	if v, ok := p.adopted.Load(pool); ok {
		return v.(*rootPool)
	}
	v, _ := p.adopted.LoadOrStore(pool, &rootPool{p: p, inner: pool})
	return v.(*rootPool)
}

// ---- heartbeat: how far behind each replica is ----
//
// With Config.ReplicaHeartbeat set, the plugin writes the time into a
// one-row table on the source every quarter of ReplicaWindow, and reads it
// back through every other pool that served reads: a pool whose copy is
// further behind than ReplicaWindow (or that cannot answer) is not used to
// fill the cache until it catches up. The table must be replicated like
// any other (it is created on the source if missing).

type poolLag struct {
	pool   gorm.ConnPool // the pool to read the heartbeat through (below the plugin)
	behind atomic.Bool   // further behind than the window, or unknown
	lag    atomic.Int64  // last measured lag, ns (-1: could not read)
}

type heartbeat struct {
	once  sync.Once
	pools sync.Map // statement pool → *poolLag
}

// replicaBehind reports whether reads through pool may not fill the cache
// because the heartbeat says its copy is too old.
func (p *Plugin) replicaBehind(pool gorm.ConnPool) bool {
	if p.cfg.ReplicaHeartbeat == "" {
		return false
	}
	hb := &p.heartbeat
	hb.once.Do(p.startHeartbeat)
	if v, ok := hb.pools.Load(pool); ok {
		return v.(*poolLag).behind.Load()
	}
	inner := pool
	if rp, ok := pool.(*rootPool); ok {
		inner = rp.inner
	}
	pl := &poolLag{pool: inner}
	pl.behind.Store(true) // unknown until measured
	pl.lag.Store(-1)
	v, _ := hb.pools.LoadOrStore(pool, pl)
	return v.(*poolLag).behind.Load()
}

func (p *Plugin) startHeartbeat() {
	if p.closed.Load() {
		return
	}
	interval := max(p.cfg.ReplicaWindow/4, 20*time.Millisecond)
	table := p.cfg.ReplicaHeartbeat
	p.deps.mu.Lock()
	src := p.deps.pool
	p.deps.mu.Unlock()
	if src == nil {
		return
	}
	// The heartbeat is background work: Close cancels ctx, and waits.
	ctx := p.bg.Ctx()
	if _, err := src.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (id integer PRIMARY KEY, at bigint NOT NULL)"); err != nil {
		p.log.Warn("gormcache: cannot create the replica heartbeat table; replicas are not used to fill the cache", "table", table, "error", err)
	}
	p.bg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			p.beat(ctx, src, table)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// beat writes the time on the source and measures each replica's lag.
func (p *Plugin) beat(ctx context.Context, src gorm.ConnPool, table string) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReplicaWindow)
	defer cancel()
	now := time.Now().UnixNano()
	res, err := src.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET at = %d WHERE id = 1", table, now))
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			_, err = src.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (id, at) VALUES (1, %d)", table, now))
		}
	}
	if err != nil {
		p.log.Warn("gormcache: replica heartbeat write failed", "error", err)
	}
	p.heartbeat.pools.Range(func(_, v any) bool {
		pl := v.(*poolLag)
		var at int64
		err := pl.pool.QueryRowContext(ctx, "SELECT at FROM "+table+" WHERE id = 1").Scan(&at)
		if err != nil {
			pl.lag.Store(-1)
			pl.behind.Store(true)
			return true
		}
		lag := time.Duration(time.Now().UnixNano() - at)
		pl.lag.Store(int64(lag))
		pl.behind.Store(lag > p.cfg.ReplicaWindow)
		return true
	})
}

func (p *Plugin) stopHeartbeat() {
	p.heartbeat.once.Do(func() {}) // no start after Close
}

// ReplicaLags returns the last lag measured through each replica pool by
// the heartbeat (-1: could not be read); empty without ReplicaHeartbeat.
func (p *Plugin) ReplicaLags() []time.Duration {
	var out []time.Duration
	p.heartbeat.pools.Range(func(_, v any) bool {
		out = append(out, time.Duration(v.(*poolLag).lag.Load()))
		return true
	})
	return out
}
