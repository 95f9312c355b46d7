package plugin

import (
	"database/sql"
	"sync"
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
	primary gorm.ConnPool // the root pool of the db the plugin was installed on
}

// setPrimary records the root pool of the first database the plugin was
// installed on.
func (p *Plugin) setPrimary(pool gorm.ConnPool) {
	p.replicas.mu.Lock()
	if p.replicas.primary == nil {
		p.replicas.primary = pool
	}
	p.replicas.mu.Unlock()
}

// fromPrimary reports whether a statement's pool reads the source the
// plugin was installed on (directly, through PrepareStmt, or in one of its
// transactions).
func (p *Plugin) fromPrimary(pool gorm.ConnPool) bool {
	p.replicas.mu.Lock()
	primary := p.replicas.primary
	p.replicas.mu.Unlock()
	if rp, ok := primary.(*rootPool); ok && pool == rp.inner {
		return true // the same pool, captured (by dbresolver) before the plugin wrapped it
	}
	switch cp := pool.(type) {
	case *rootPool:
		return cp == primary
	case *gorm.PreparedStmtDB:
		return cp.ConnPool == primary
	case *txPool:
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
func (p *Plugin) replicaReason(pool gorm.ConnPool, tags []string, versions []uint64) string {
	if p.fromPrimary(pool) {
		return ""
	}
	if !p.settled(tags, versions) {
		return reasonReplicaLag
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
	case nil, *rootPool, *txPool, *stmtPool, gorm.TxCommitter, *sql.Conn, *gorm.PreparedStmtDB:
	default:
		db.Statement.ConnPool = p.rootFor(cp)
	}
}

// rootFor returns the root pool over pool: the plugin's own when pool is
// what the plugin wrapped, else one made once per pool.
func (p *Plugin) rootFor(pool gorm.ConnPool) *rootPool {
	p.replicas.mu.Lock()
	primary, _ := p.replicas.primary.(*rootPool)
	p.replicas.mu.Unlock()
	if primary != nil && primary.inner == pool {
		return primary
	}
	if v, ok := p.adopted.Load(pool); ok {
		return v.(*rootPool)
	}
	v, _ := p.adopted.LoadOrStore(pool, &rootPool{p: p, inner: pool})
	return v.(*rootPool)
}
