package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/keys"
	"github.com/gormcache/gormcache/serializer"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/maypok86/otter/v2"
	"gorm.io/gorm"
)

const pluginName = "gormcache"

// Plugin is the GORM plugin. Create it with [New] and install it with db.Use.
// One Plugin serves one database: several *gorm.DB on it (dbresolver opens
// one per source and replica) share its identity and catalog, and db.Use on
// a *gorm.DB of another database fails with [ErrOtherDatabase].
type Plugin struct {
	cfg      Config
	initOnce sync.Once
	initErr  error

	store    store.Store
	values   store.ValueStore // store's in-process form, or nil
	decoded  *decodedEntries  // a byte store's entries last decoded (when values is nil)
	ownStore bool
	keys     keys.Builder
	log      *slog.Logger
	clog     *core.Log // rate-limited, for what an outage repeats

	dialect  invalidation.Dialect
	dialName string
	identity string
	home     home // the database the plugin serves (identity.go)
	stable   map[string]bool

	plans *otter.Cache[string, *plan]
	deps  depState
	// replicas: when tables' versions were first seen, for reads through
	// pools other than the one the plugin was installed on
	replicas   replicaState
	adopted    sync.Map // pool → *rootPool made by adoptPool
	heartbeat  heartbeat
	refreshing sync.Map // key → true: a stale entry being refreshed
	temps      sync.Map // name → true: temporary tables created (plan.go)
	// policy: Config's per-table rules, normalised
	policy policy
	flight core.Flights[*serializer.Entry]

	stats counters
	unrec unrecordedWatch // viewcache's Config.Development (recorder.go)
	// shapes: per-shape figures while collecting (shapes.go); latency:
	// store call durations, recorded while collecting
	shapes  atomic.Pointer[shapeSet]
	latency core.Latency

	// inv: bumps, holds, broken tags and the epoch after an outage, shared
	// with the lowlevel and viewcache caches on this plugin
	inv   *core.Invalidator
	calls core.Calls

	// transactions opened by SQL: on the shared pool, on dedicated
	// connections (weak.Pointer[sql.Conn] → *rawTx), and prepared ones
	// (PREPARE TRANSACTION, XA PREPARE) waiting to be resolved
	rawShared    rawTx
	warnedShared atomic.Bool
	rawConns     sync.Map
	preparedMu   sync.Mutex
	prepared     []*core.Hold

	bg     *core.Background // work outside statements, cancelled and waited for by Close
	closed atomic.Bool
	// replacedQuery: gorm:query was seen replaced after db.Use (logged once)
	replacedQuery atomic.Bool
}

var _ gorm.Plugin = (*Plugin)(nil)

// New returns the plugin for cfg. Errors in cfg are reported by Initialize
// (that is, by db.Use).
func New(cfg Config) *Plugin {
	return &Plugin{cfg: cfg, bg: core.NewBackground()}
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return pluginName }

func (p *Plugin) setup() error {
	p.initOnce.Do(func() {
		cfg, err := p.cfg.withDefaults()
		if err != nil {
			p.initErr = err
			return
		}
		p.cfg = cfg
		p.log = cfg.Logger
		p.store = cfg.Store
		if p.store == nil {
			ms, err := memstore.New(memstore.Config{MaxBytes: cfg.MemoryBytes})
			if err != nil {
				p.initErr = fmt.Errorf("%w: %v", ErrInvalidConfig, err)
				return
			}
			p.store, p.ownStore = ms, true
		}
		p.values, _ = p.store.(store.ValueStore)
		if p.values == nil {
			p.decoded = newDecodedEntries()
		}
		p.calls = core.Calls{Timeout: cfg.StoreTimeout, InProcess: p.values != nil, Latency: &p.latency}
		p.clog = core.NewLog(cfg.Logger)
		p.inv = core.NewInvalidator(core.Config{
			Store: p.store, Calls: p.calls, Lease: cfg.WriteLease,
			Shared: !p.ownStore, FailWrite: cfg.BumpFailure == FailWrite,
			Log: p.clog, Background: p.bg,
		})
		if cu, ok := p.store.(store.CodecUser); ok {
			cu.UseCodec(p.encodeEntry, decodeEntry)
		}
		prefix := cfg.Prefix
		if cfg.Version != 0 {
			prefix += "v" + strconv.Itoa(cfg.Version)
		}
		p.keys = keys.Builder{Prefix: prefix}
		p.policy = newPolicy(cfg)
		p.stable = map[string]bool{}
		for _, f := range cfg.StableFunctions {
			p.stable[strings.ToLower(f)] = true
		}
		plans, err := otter.New(&otter.Options[string, *plan]{MaximumSize: 10_000})
		if err != nil {
			p.initErr = err
			return
		}
		p.plans = plans
	})
	return p.initErr
}

// Initialize implements gorm.Plugin: it wraps the connection pool (to see
// transactions end) and the query, row, create, update, delete and raw
// callbacks (to see every statement's final SQL). It is idempotent.
func (p *Plugin) Initialize(db *gorm.DB) error {
	if err := p.setup(); err != nil {
		return err
	}
	if p.dialName == "" && db.Dialector != nil {
		p.dialName = db.Dialector.Name()
		p.dialect = invalidation.DialectOf(p.dialName)
	}
	if err := p.checkDatabase(db); err != nil {
		return err
	}
	if p.identity == "" {
		p.identity = p.cfg.Identity
		if p.identity == "" {
			p.identity = p.askIdentity(db)
		}
	}
	p.wrapPools(db)
	// Read foreign keys, views and triggers now, while no statement runs;
	// once: dbresolver runs Initialize again for each source and replica,
	// and the catalog is the source's.
	if p.deps.graph.Load() == nil {
		p.schemaChanged()
		p.depsGraph()
	}

	cb := db.Callback()
	if cb.Query().Get(pluginName+":installed") != nil {
		return nil
	}
	if err := cb.Query().Register(pluginName+":installed", func(*gorm.DB) {}); err != nil {
		return err
	}
	for _, c := range []struct {
		proc interface {
			Get(string) func(*gorm.DB)
			Replace(string, func(*gorm.DB)) error
		}
		name string
		wrap func(func(*gorm.DB)) func(*gorm.DB)
	}{
		{cb.Query(), "gorm:query", p.queryCallback},
		{cb.Row(), "gorm:row", p.wrapCallback},
		{cb.Create(), "gorm:create", p.wrapCallback},
		{cb.Update(), "gorm:update", p.wrapCallback},
		{cb.Delete(), "gorm:delete", p.wrapCallback},
		{cb.Raw(), "gorm:raw", p.wrapCallback},
	} {
		orig := c.proc.Get(c.name)
		if orig == nil {
			return fmt.Errorf("gormcache: callback %s not found", c.name)
		}
		if err := c.proc.Replace(c.name, c.wrap(orig)); err != nil {
			return err
		}
	}
	// AfterFind hooks see a hit's SQL unmarked (hideHitMarker).
	if orig := cb.Query().Get("gorm:after_query"); orig != nil {
		if err := cb.Query().Replace("gorm:after_query", hideHitMarker(orig)); err != nil {
			return err
		}
	}
	// gorm:query replaced after this (queryGuard): its statements still
	// go through a read pool, taken off before preloads run.
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register(pluginName+":query_guard", p.queryGuard),
		cb.Query().Before("gorm:preload").Register(pluginName+":query_restore", queryRestore),
	} {
		if err != nil {
			return err
		}
	}
	// A pool put on the statement by another plugin (dbresolver hands the
	// pools it captured when it was registered, maybe before this plugin
	// wrapped them) gets a root pool before GORM's default transaction
	// begins on it, so that the transaction's commit is seen.
	adopt := pluginName + ":adopt_pool"
	for _, err := range []error{
		cb.Create().Before("gorm:begin_transaction").Register(adopt, p.adoptPool),
		cb.Update().Before("gorm:begin_transaction").Register(adopt, p.adoptPool),
		cb.Delete().Before("gorm:begin_transaction").Register(adopt, p.adoptPool),
	} {
		if err != nil {
			return err
		}
	}
	// dbresolver installed before this plugin: its resolver callback (which
	// db.Clauses(dbresolver.Write) also calls, before Begin) hands out the
	// pools it captured unwrapped; adopt them right after it. (Replace must
	// keep Before("*"): GORM sorts "*" callbacks last in its list, and Get
	// and the compiled chain take the last entry of a name.)
	const resolver = "gorm:db_resolver"
	for _, proc := range []struct {
		get     func(string) func(*gorm.DB)
		replace func(string, func(*gorm.DB)) error
	}{
		{cb.Create().Get, func(n string, f func(*gorm.DB)) error { return cb.Create().Before("*").Replace(n, f) }},
		{cb.Query().Get, func(n string, f func(*gorm.DB)) error { return cb.Query().Before("*").Replace(n, f) }},
		{cb.Update().Get, func(n string, f func(*gorm.DB)) error { return cb.Update().Before("*").Replace(n, f) }},
		{cb.Delete().Get, func(n string, f func(*gorm.DB)) error { return cb.Delete().Before("*").Replace(n, f) }},
		{cb.Row().Get, func(n string, f func(*gorm.DB)) error { return cb.Row().Before("*").Replace(n, f) }},
		{cb.Raw().Get, func(n string, f func(*gorm.DB)) error { return cb.Raw().Before("*").Replace(n, f) }},
	} {
		orig := proc.get(resolver)
		if orig == nil {
			continue
		}
		if err := proc.replace(resolver, func(db *gorm.DB) {
			orig(db)
			p.adoptPool(db)
		}); err != nil {
			return err
		}
	}
	return nil
}

// wrapPools puts the root pool under db, so that transactions begun through
// GORM are ours and their commit can bump. With PrepareStmt the prepared
// statement pool stays on top (GORM and the Migrator look for it) and the
// root pool goes under it.
func (p *Plugin) wrapPools(db *gorm.DB) {
	switch cp := db.ConnPool.(type) {
	case nil, *rootPool:
	case *gorm.PreparedStmtDB:
		if _, ok := cp.ConnPool.(*rootPool); !ok {
			p.catalogPool(cp.ConnPool)
			rp := &rootPool{p: p, inner: cp.ConnPool}
			p.setPrimary(rp)
			cp.ConnPool = rp
		}
	default:
		p.catalogPool(cp)
		rp := &rootPool{p: p, inner: cp}
		p.setPrimary(rp)
		db.ConnPool = rp
	}
	if db.Statement != nil {
		if _, isTx := db.Statement.ConnPool.(gorm.TxCommitter); !isTx {
			db.Statement.ConnPool = db.ConnPool
		}
	}
}

// Stats returns the counters since the plugin was created.
func (p *Plugin) Stats() Stats {
	if p.setup() != nil {
		return p.stats.snapshot(nil)
	}
	return p.stats.snapshot(&p.inv.C)
}

// Store returns the store the plugin uses.
func (p *Plugin) Store() store.Store {
	if err := p.setup(); err != nil {
		return nil
	}
	return p.store
}

// Invalidate bumps tables (as GORM or SQL names them), so that every cached
// result that read them is stale. Use it after writes made outside GORM.
func (p *Plugin) Invalidate(ctx context.Context, tables ...string) error {
	if err := p.setup(); err != nil {
		return err
	}
	tags := make([]string, 0, len(tables))
	for _, t := range tables {
		tags = append(tags, invalidation.TableName(t))
	}
	return p.inv.Bump(ctx, core.Wide(p.depsGraph().writeTags(tags)))
}

// Flush makes every cached result stale at once.
func (p *Plugin) Flush(ctx context.Context) error {
	if err := p.setup(); err != nil {
		return err
	}
	return p.inv.Bump(ctx, []string{store.GlobalTag})
}

// Close waits for pending invalidations, then closes the store if the plugin
// created it. Queries made afterwards go to the database.
func (p *Plugin) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.stopHeartbeat()
	if p.inv != nil {
		// Retries and refreshes stop, bumps in flight land, and one last
		// bounded attempt at what a retry had not managed yet.
		p.inv.Close()
	} else {
		p.bg.Stop()
	}
	var err error
	if p.ownStore && p.store != nil {
		err = p.store.Close()
	}
	return err // (replayDB stays open: see there)
}

// closedOwn reports whether the plugin is closed and its store with it: then
// statements run untouched. A closed plugin on a store it does not own keeps
// bumping on writes, since other processes may still read that store.
func (p *Plugin) closedOwn() bool { return p.closed.Load() && p.ownStore }

// storeCtx bounds a store call; bumps also outlive the caller's context.
func (p *Plugin) storeCtx(ctx context.Context, detached bool) (context.Context, context.CancelFunc) {
	return p.calls.Ctx(ctx, detached)
}
