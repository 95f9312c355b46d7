package plugin

import (
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
)

// plan is what the plugin does with one SQL text; plans are memoised by text.
type plan struct {
	cacheable bool                   // a plain read whose result may be served and stored
	reason    Reason                 // why not, for a read that is not cacheable
	tags      []string               // a cacheable read's tags: its tables, then the global tag
	write     bool                   // the statement may change data: bump writeTags around it
	writeTags []string               // tables written, or just the global tag
	ddl       bool                   // the statement may change the schema: read the catalog again
	tx        invalidation.TxControl // transaction control sent as SQL
	deps      *depGraph
	ttl       time.Duration       // from Config.TableTTL (0: none)
	counts    []*tableCount       // per-table counters of a cacheable read's tables
	rows      *rowRead            // a cacheable read's row condition (rows.go), or nil
	ranged    *rangeRead          // a cacheable read's order and limit (ranges.go), or nil
	shape     *invalidation.Shape // a write's rows (rows.go)
	temp      string              // the temporary table or view a DDL statement creates
	stat      *shapeStat          // per-shape figures (shapes.go); nil unless collecting
	shapes    *shapeSet           // the collection stat belongs to (nil: none)
	// layout: where the last direct scan of this read's result put its
	// columns (direct.go)
	layout atomic.Pointer[scanLayout]
	// columns: the columns of this read's last captured result (replay.go)
	columns atomic.Pointer[knownColumns]
}

var globalOnly = []string{store.GlobalTag}

func (p *Plugin) planFor(sql string) *plan {
	g := p.currentDeps()
	if pl, ok := p.plans.GetIfPresent(sql); ok && pl.deps == g && pl.shapes == p.shapes.Load() {
		return pl
	}
	pl := p.makePlan(sql, invalidation.Classify(p.dialect, sql), g)
	p.attachShape(sql, pl)
	p.plans.Set(sql, pl)
	return pl
}

func (p *Plugin) makePlan(sql string, st invalidation.Statement, g *depGraph) *plan {
	pl := &plan{deps: g, tx: st.Tx}
	switch st.Kind {
	case invalidation.Neutral:
		pl.reason = ReasonNotSelect
		return pl
	case invalidation.Write:
		pl.reason, pl.write = ReasonWrite, true
		if sh := invalidation.RowShape(p.dialect, sql); sh.OK {
			pl.shape = &sh
		}
		pl.writeTags = st.Written
		if len(pl.writeTags) == 0 {
			pl.writeTags = st.Tables
		}
		if _, unknown := p.judgeFunctions(st.Functions); len(pl.writeTags) == 0 || !st.Complete || unknown {
			// (a function the plugin does not know may write anywhere:
			// UPDATE t SET x = f() as much as SELECT f())
			pl.writeTags = globalOnly
		}
		switch {
		case !g.loaded && p.readsCatalog():
			pl.writeTags = globalOnly // (its cascades and triggers are not known yet)
		case !g.knowsAll(pl.writeTags):
			pl.writeTags = globalOnly // a table created elsewhere: its cascades and triggers are not known yet
			p.catalogMissed()
		}
		return pl
	case invalidation.Read:
	default: // Schema, Unknown: may change anything
		pl.reason, pl.write, pl.writeTags, pl.ddl = ReasonWrite, true, globalOnly, true
		pl.temp, _ = invalidation.TempTable(p.dialect, sql)
		return pl
	}
	// A read. Functions first: one that may write makes it a write to everything.
	switch volatile, unknown := p.judgeFunctions(st.Functions); {
	case unknown:
		pl.reason, pl.write, pl.writeTags = ReasonVolatile, true, globalOnly
		return pl
	case volatile:
		pl.reason = ReasonVolatile
	}
	switch {
	case pl.reason != "":
	case st.Statements > 1:
		pl.reason = ReasonMultiStatement
	case st.Into:
		pl.reason = ReasonInto
	case st.Returning:
		pl.reason, pl.write, pl.writeTags = ReasonWrite, true, globalOnly
	case st.Locking:
		pl.reason = ReasonLocking
	case st.Catalog:
		pl.reason = ReasonCatalog
	case !st.Complete:
		pl.reason = ReasonUnknownTables
	case !g.loaded:
		pl.reason = ReasonNoCatalog
	case !g.knowsAll(st.Tables):
		// a table or view created elsewhere (a migration, another
		// instance), or the catalog does not list it (another database):
		// its views, triggers and keys are not known
		pl.reason = ReasonUnknownTables
		p.catalogMissed()
	default:
		tags, reason, writes := g.readTags(st.Tables)
		if writes { // a view calling a function that may write anything
			pl.reason, pl.write, pl.writeTags = reason, true, globalOnly
			break
		}
		if p.shadowed(st.Tables) {
			pl.reason = ReasonTempTable
			break
		}
		if reason == "" {
			reason = p.policy.check(tags)
		}
		if reason != "" {
			pl.reason = reason
			break
		}
		pl.cacheable, pl.tags = true, tags
		if sh := p.readShape(sql, st, g); sh != nil {
			if pl.rows = rowReadOf(sh, st, g); pl.rows == nil {
				pl.ranged = rangeReadOf(sh, st, g)
			}
		}
		pl.ttl = p.policy.planTTL(tags)
		pl.counts = p.stats.tables.forTags(tags)
	}
	return pl
}

// shadow records a temporary table's name before the statement creating
// it runs: it exists in one session only (and there shadows a base table
// of its name), so reads of that name are never cached from then on.
func (p *Plugin) shadow(name string) {
	if _, seen := p.temps.LoadOrStore(name, true); !seen {
		p.clog.Always(slog.LevelWarn, "gormcache: a temporary table or view was created through the plugin; reads of its name are not cached from now on (it exists in one session, and shadows a table of that name there)", "table", name)
	}
}

// shadowed reports whether a temporary table of one of tables' names was
// created.
func (p *Plugin) shadowed(tables []string) bool {
	for _, t := range tables {
		if _, ok := p.temps.Load(t); ok {
			return true
		}
	}
	return false
}

// judgeFunctions applies a read's rules to the functions it calls (a read's
// own, or a view's body): volatile when one makes the result uncacheable,
// unknown when one may also write anything. Config.StableFunctions are
// stable.
func (p *Plugin) judgeFunctions(funcs []string) (volatile, unknown bool) {
	for _, f := range funcs {
		if p.stable[f] {
			continue
		}
		switch invalidation.FunctionKind(p.dialect, f) {
		case invalidation.FuncStable:
		case invalidation.FuncVolatile:
			volatile = true
		default:
			return true, true
		}
	}
	return volatile, false
}

// withTables returns tags ∪ the normalised names, sorted, deduplicated.
func withTables(tags []string, names ...string) []string {
	var out []string
	for _, n := range names {
		if n == "" {
			continue
		}
		t := invalidation.TableName(n)
		if t == "" || contains(tags, t) || contains(out, t) {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return tags
	}
	out = append(out, tags...)
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
