package plugin

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// policy is Config's per-table rules, with table names normalised.
type policy struct {
	deny     map[string]bool
	allow    map[string]bool // nil: every table allowed
	tableTTL map[string]time.Duration
	jitter   float64
	ttl      time.Duration // Config.TTL (Forever kept as is)
	swr      time.Duration // Config.StaleWhileRevalidate
}

func newPolicy(cfg Config) policy {
	pol := policy{deny: map[string]bool{}, tableTTL: map[string]time.Duration{}, jitter: cfg.TTLJitter, ttl: cfg.TTL, swr: cfg.StaleWhileRevalidate}
	for _, t := range cfg.Deny {
		pol.deny[invalidation.TableName(t)] = true
	}
	if len(cfg.Allow) > 0 {
		pol.allow = map[string]bool{}
		for _, t := range cfg.Allow {
			pol.allow[invalidation.TableName(t)] = true
		}
	}
	for t, d := range cfg.TableTTL {
		pol.tableTTL[invalidation.TableName(t)] = d
	}
	return pol
}

// tables names every table the policy mentions (for the existence check).
func (pol *policy) tables() []string {
	var out []string
	for t := range pol.deny {
		out = append(out, t)
	}
	for t := range pol.allow {
		out = append(out, t)
	}
	for t := range pol.tableTTL {
		out = append(out, t)
	}
	return out
}

// check says why a read of tags may not be cached ("" when it may).
func (pol *policy) check(tags []string) Reason {
	for _, t := range tags {
		if t == store.GlobalTag {
			continue
		}
		if pol.deny[t] {
			return ReasonDenied
		}
		if pol.allow != nil && !pol.allow[t] {
			return ReasonNotAllowed
		}
	}
	return ""
}

// planTTL is the TTL of a read of tags under TableTTL: the shortest of
// theirs, 0 when none has one.
func (pol *policy) planTTL(tags []string) time.Duration {
	var ttl time.Duration
	for _, t := range tags {
		d, ok := pol.tableTTL[t]
		switch {
		case !ok:
		case ttl == 0, ttl == Forever:
			ttl = d
		case d != Forever && d < ttl:
			ttl = d
		}
	}
	return ttl
}

// freshTTL is how long an entry is fresh: the query's option, else the
// plan's, else Config.TTL; Forever becomes 0 (until invalidated).
func (pol *policy) freshTTL(opt, planTTL time.Duration) time.Duration {
	ttl := pol.ttl
	switch {
	case opt != 0:
		ttl = opt
	case planTTL != 0:
		ttl = planTTL
	}
	if ttl == Forever {
		return 0
	}
	return ttl
}

// entryTTL is the store TTL of an entry fresh for fresh: jitter applies,
// and with stale-while-revalidate the entry is kept that much longer.
func (pol *policy) entryTTL(opt, planTTL time.Duration) time.Duration {
	ttl := pol.freshTTL(opt, planTTL)
	if ttl == 0 {
		return 0
	}
	if pol.jitter > 0 {
		ttl -= time.Duration(rand.Float64() * pol.jitter * float64(ttl))
	}
	return ttl + pol.swr
}

// ---- per-table counts ----

// tableCount counts hits and misses of queries reading one table.
type tableCount struct {
	hits, misses atomic.Uint64
}

type tableCounts struct{ m sync.Map } // table → *tableCount

func (c *tableCounts) get(t string) *tableCount {
	if v, ok := c.m.Load(t); ok {
		return v.(*tableCount)
	}
	v, _ := c.m.LoadOrStore(t, new(tableCount))
	return v.(*tableCount)
}

func (c *tableCounts) forTags(tags []string) []*tableCount {
	out := make([]*tableCount, 0, len(tags))
	for _, t := range tags {
		if t != store.GlobalTag {
			out = append(out, c.get(t))
		}
	}
	return out
}

// optionsReason says why a statement's options keep it out of the cache.
func (p *Plugin) optionsReason(opts *queryOptions) Reason {
	switch {
	case opts != nil && opts.skip:
		return ReasonSkip
	case p.cfg.OptIn && (opts == nil || !opts.cache):
		return ReasonOptIn
	}
	return ""
}

// withTags returns tags (ending with the global tag) with extra added
// before the global tag.
func withTags(tags, extra []string) []string {
	out := make([]string, 0, len(tags)+len(extra))
	for _, t := range tags {
		if t != store.GlobalTag {
			out = append(out, t)
		}
	}
	for _, t := range extra {
		if !contains(out, t) {
			out = append(out, t)
		}
	}
	return append(out, store.GlobalTag)
}

// ---- stale-while-revalidate ----

// revalidate refreshes, in the background, an entry served past its TTL:
// one query per key at a time, stamped with the versions read before it,
// stored like any miss.
func (p *Plugin) revalidate(pool gorm.ConnPool, pr *probe) {
	if p.closed.Load() {
		return
	}
	key := pr.key
	if _, busy := p.refreshing.LoadOrStore(key, true); busy {
		return
	}
	p.stats.revalidations.Add(1)
	query, args := pr.query, append([]any(nil), pr.args...)
	check := append([]byte(nil), pr.canonical...)
	tags, ttl := pr.tags, pr.ttl
	p.bg.Go(func() {
		defer p.refreshing.Delete(key)
		ctx, cancel := context.WithTimeout(p.bg.Ctx(), 30*time.Second)
		defer cancel()
		versions := make([]uint64, len(tags))
		sctx, scancel := p.storeCtx(ctx, false)
		err := p.store.Versions(sctx, tags, versions)
		scancel()
		if err != nil {
			p.storeFailed("versions", err)
			return
		}
		if p.unstorable(tags, versions, 0) != "" || p.replicaReason(pool, tags, versions) != "" {
			return
		}
		rows, err := pool.QueryContext(ctx, query, args...)
		if err != nil {
			p.clog.Limited(slog.LevelWarn, "gormcache: background refresh failed", "error", err)
			return
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			return
		}
		c := p.newCapture(columnsOf(cts), true)
		c.entry.Check, c.entry.Versions = check, versions
		var row rowBuf
		row.reset(len(cts))
		for rows.Next() && c.reason == "" {
			if err := row.scan(rows); err != nil {
				return
			}
			var cols []serializer.Column
			if c.rowTypes {
				cols = rowColumns(rows)
			}
			c.keep(row.vals, cols)
		}
		if rows.Err() != nil || c.reason != "" {
			return
		}
		p.put(key, &c.entry, ttl)
	})
}
