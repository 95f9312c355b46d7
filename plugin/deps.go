package plugin

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// Dependencies between tables that a statement's text does not show, read
// from the database's catalog and from Config.Dependencies:
//
//   - foreign keys with ON DELETE / ON UPDATE CASCADE, SET NULL or SET
//     DEFAULT: a write to the parent may change the child, so it bumps the
//     child too (transitively);
//   - views: a read of a view depends on the tables the view reads
//     (PostgreSQL's pg_depend; elsewhere the view's definition, classified
//     like any query); a view we cannot resolve is not cached;
//   - inheritance and partitions (PostgreSQL): a write to a partition bumps
//     its parents, a write to a parent bumps its partitions;
//   - triggers: a trigger whose body writes nothing (a BEFORE trigger that
//     sets NEW.updated_at) changes nothing else; one whose body's writes can
//     be named (SQLite, and plain bodies elsewhere) bumps those tables; any
//     other makes every write to its table invalidate everything, unless a
//     Config.Dependencies entry names the table as a source (the user has
//     said where its writes go). A warning is logged once per such table.
//
// The catalog is read when the plugin is installed and again, outside
// transactions, after any statement that may have changed the schema (DDL,
// or a statement the classifier does not know).

// depGraph is the loaded dependency information.
type depGraph struct {
	read     map[string][]string // reading t also depends on these tags
	readNo   map[string]string   // reading t cannot be cached: why
	write    map[string][]string // writing t also bumps these tags
	writeAll map[string]bool     // writing t may change tables we cannot name
}

var emptyDeps = &depGraph{}

// catalogFacts are what the catalog says, before closure.
type catalogFacts struct {
	cascades   [][2]string         // parent, child
	inherits   [][2]string         // parent, child
	views      map[string][]string // view → tables it reads
	badViews   map[string]bool     // views whose tables are unknown
	triggers   map[string][]string // table → tables its triggers write
	badTrigger map[string]bool     // tables with triggers whose writes are unknown
	tables     map[string]bool     // every table and view (for the policy's names)
}

func newFacts() *catalogFacts {
	return &catalogFacts{
		views: map[string][]string{}, badViews: map[string]bool{},
		triggers: map[string][]string{}, badTrigger: map[string]bool{},
		tables: map[string]bool{},
	}
}

type depState struct {
	graph   atomic.Pointer[depGraph]
	dirty   atomic.Bool
	mu      sync.Mutex
	retryAt time.Time
	pool    gorm.ConnPool // the pool catalog queries run on
	warned  sync.Map      // table → true: warned of an unknown trigger
	loads   atomic.Uint64
}

// depsGraph returns the current graph, reloading the catalog first when a
// schema change may have made it stale. Call it only where no transaction
// of ours holds a connection (the query may need one).
func (p *Plugin) depsGraph() *depGraph {
	if p.deps.dirty.Load() {
		p.reloadDeps()
	}
	if g := p.deps.graph.Load(); g != nil {
		return g
	}
	return emptyDeps
}

// currentDeps returns the graph as loaded, without reloading.
func (p *Plugin) currentDeps() *depGraph {
	if g := p.deps.graph.Load(); g != nil {
		return g
	}
	return emptyDeps
}

// schemaChanged marks the catalog stale: it is read again before the next
// statement outside a transaction.
func (p *Plugin) schemaChanged() { p.deps.dirty.Store(true) }

func (p *Plugin) reloadDeps() {
	d := &p.deps
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty.Load() || d.pool == nil || p.closed.Load() {
		return
	}
	if time.Now().Before(d.retryAt) {
		return
	}
	d.dirty.Store(false) // a schema change from here on marks it again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	facts, err := readCatalog(ctx, d.pool, p.dialect)
	if err != nil {
		d.dirty.Store(true)
		d.retryAt = time.Now().Add(30 * time.Second)
		p.stats.catalogErrors.Add(1)
		p.log.Warn("gormcache: could not read foreign keys, views and triggers from the catalog; retrying in 30s (until then, writes do not follow cascades or triggers)", "error", err)
		return
	}
	g := p.buildDeps(facts)
	d.graph.Store(g)
	if len(facts.tables) > 0 {
		for _, t := range p.policy.tables() {
			if facts.tables[t] {
				continue
			}
			if _, warned := d.warned.LoadOrStore("policy:"+t, true); !warned {
				p.log.Warn("gormcache: a table named in Config (Deny, Allow or TableTTL) does not exist in the database (yet?)", "table", t)
			}
		}
	}
	d.loads.Add(1)
	p.plans.InvalidateAll() // plans carry read tags computed from the graph
}

// buildDeps closes the facts and Config.Dependencies into a graph.
func (p *Plugin) buildDeps(f *catalogFacts) *depGraph {
	readEdges := map[string][]string{}
	writeEdges := map[string][]string{}
	declared := map[string]bool{} // tables named as sources in Config.Dependencies
	for name, srcs := range p.cfg.Dependencies {
		n := invalidation.TableName(name)
		for _, s := range srcs {
			s = invalidation.TableName(s)
			readEdges[n] = append(readEdges[n], s)
			declared[s] = true
		}
	}
	for v, tables := range f.views {
		readEdges[v] = append(readEdges[v], tables...)
		writeEdges[v] = append(writeEdges[v], tables...) // an updatable view writes its tables
	}
	for _, e := range f.cascades {
		writeEdges[e[0]] = append(writeEdges[e[0]], e[1])
	}
	for _, e := range f.inherits {
		writeEdges[e[0]] = append(writeEdges[e[0]], e[1])
		writeEdges[e[1]] = append(writeEdges[e[1]], e[0])
	}
	unknownWrite := map[string]bool{}
	for t, written := range f.triggers {
		writeEdges[t] = append(writeEdges[t], written...)
	}
	for t := range f.badTrigger {
		if declared[t] {
			continue
		}
		unknownWrite[t] = true
		if _, warned := p.deps.warned.LoadOrStore(t, true); !warned {
			p.log.Warn("gormcache: table has a trigger whose writes cannot be determined; every write to it invalidates every cached query (name the tables it writes in Config.Dependencies, e.g. \"audit_log\": {\""+t+"\"})", "table", t)
		}
	}
	g := &depGraph{
		read: map[string][]string{}, readNo: map[string]string{},
		write: map[string][]string{}, writeAll: map[string]bool{},
	}
	for t := range readEdges {
		reach := closure(readEdges, t)
		for _, r := range reach {
			if f.badViews[r] {
				g.readNo[t] = reasonUnknownTables
			}
		}
		if f.badViews[t] {
			g.readNo[t] = reasonUnknownTables
		}
		if len(reach) > 0 {
			g.read[t] = reach
		}
	}
	for t := range f.badViews {
		g.readNo[t] = reasonUnknownTables
	}
	for t := range writeEdges {
		reach := closure(writeEdges, t)
		if len(reach) > 0 {
			g.write[t] = reach
		}
		if unknownWrite[t] {
			g.writeAll[t] = true
		}
		for _, r := range reach {
			if unknownWrite[r] {
				g.writeAll[t] = true
			}
		}
	}
	for t := range unknownWrite {
		g.writeAll[t] = true
	}
	return g
}

// closure returns the nodes reachable from start (start excluded), sorted.
func closure(edges map[string][]string, start string) []string {
	seen := map[string]bool{start: true}
	var out []string
	stack := slices.Clone(edges[start])
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
		stack = append(stack, edges[n]...)
	}
	sort.Strings(out)
	return out
}

// readTags expands a read's tables with what they depend on; reason is
// non-empty when the read may not be cached.
func (g *depGraph) readTags(tables []string) (tags []string, reason string) {
	tags = append(make([]string, 0, len(tables)+1), tables...)
	for _, t := range tables {
		if r := g.readNo[t]; r != "" {
			return nil, r
		}
		for _, d := range g.read[t] {
			if !contains(tags, d) {
				tags = append(tags, d)
			}
		}
	}
	return append(tags, store.GlobalTag), ""
}

// writeTags expands a write's tables with what the write may change too.
func (g *depGraph) writeTags(tags []string) []string {
	if len(g.write) == 0 && len(g.writeAll) == 0 {
		return tags
	}
	var out []string
	for _, t := range tags {
		if t == store.GlobalTag || g.writeAll[t] {
			return globalOnly
		}
		for _, d := range g.write[t] {
			if !contains(tags, d) && !contains(out, d) {
				out = append(out, d)
			}
		}
	}
	if len(out) == 0 {
		return tags
	}
	out = append(out, tags...)
	sort.Strings(out)
	return out
}

// ---- the catalogs ----

func readCatalog(ctx context.Context, pool gorm.ConnPool, d invalidation.Dialect) (*catalogFacts, error) {
	f := newFacts()
	var err error
	switch d {
	case invalidation.Postgres:
		err = readPostgres(ctx, pool, f)
	case invalidation.MySQL:
		err = readMySQL(ctx, pool, f)
	case invalidation.SQLite:
		err = readSQLite(ctx, pool, f)
	default:
		return f, nil // nothing we know how to read
	}
	return f, err
}

// query runs a catalog query and calls fn with each row's columns as text.
func query(ctx context.Context, pool gorm.ConnPool, q string, n int, fn func(cols []string)) error {
	rows, err := pool.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]sql.NullString, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	cols := make([]string, n)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i := range vals {
			cols[i] = vals[i].String
		}
		fn(cols)
	}
	return rows.Err()
}

func cascades(onDelete, onUpdate string) bool {
	isChange := func(rule string) bool {
		switch strings.ToUpper(strings.TrimSpace(rule)) {
		case "C", "N", "D", "CASCADE", "SET NULL", "SET DEFAULT":
			return true
		}
		return false
	}
	return isChange(onDelete) || isChange(onUpdate)
}

func readPostgres(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	err := query(ctx, pool, `SELECT c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`, 1, func(c []string) {
		f.tables[invalidation.TableName(c[0])] = true
	})
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	err = query(ctx, pool, `SELECT confrelid::regclass::text, conrelid::regclass::text, confdeltype::text, confupdtype::text
FROM pg_catalog.pg_constraint WHERE contype = 'f'`, 4, func(c []string) {
		if cascades(c[2], c[3]) {
			f.cascades = append(f.cascades, [2]string{invalidation.TableName(c[0]), invalidation.TableName(c[1])})
		}
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	err = query(ctx, pool, `SELECT inhparent::regclass::text, inhrelid::regclass::text FROM pg_catalog.pg_inherits`, 2, func(c []string) {
		f.inherits = append(f.inherits, [2]string{invalidation.TableName(c[0]), invalidation.TableName(c[1])})
	})
	if err != nil {
		return fmt.Errorf("inheritance: %w", err)
	}
	// Views and the relations their rules read (PostgreSQL records them).
	err = query(ctx, pool, `SELECT DISTINCT v.oid::regclass::text, d.refobjid::regclass::text
FROM pg_catalog.pg_class v
JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> v.oid
JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
WHERE v.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`, 2, func(c []string) {
		v := invalidation.TableName(c[0])
		t := invalidation.TableName(c[1])
		if !contains(f.views[v], t) {
			f.views[v] = append(f.views[v], t)
		}
	})
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	// User triggers and their functions' bodies.
	return query(ctx, pool, `SELECT t.tgrelid::regclass::text, coalesce(p.prosrc, '')
FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal`, 2, func(c []string) {
		// (pgnotify's trigger reads as writing nothing: it only calls
		// built-ins and writes no table)
		f.addTrigger(invalidation.Postgres, invalidation.TableName(c[0]), c[1])
	})
}

func readMySQL(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	err := query(ctx, pool, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`, 1, func(c []string) {
		f.tables[invalidation.TableName(c[0])] = true
	})
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	err = query(ctx, pool, `SELECT REFERENCED_TABLE_NAME, TABLE_NAME, DELETE_RULE, UPDATE_RULE
FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`, 4, func(c []string) {
		if cascades(c[2], c[3]) {
			f.cascades = append(f.cascades, [2]string{invalidation.TableName(c[0]), invalidation.TableName(c[1])})
		}
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	err = query(ctx, pool, `SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()`, 2, func(c []string) {
		f.addView(invalidation.MySQL, invalidation.TableName(c[0]), c[1])
	})
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	return query(ctx, pool, `SELECT EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`, 2, func(c []string) {
		f.addTrigger(invalidation.MySQL, invalidation.TableName(c[0]), c[1])
	})
}

var (
	sqliteViewBody    = regexp.MustCompile(`(?is)^\s*create\s+(?:temp\s+|temporary\s+)?view\s+(?:if\s+not\s+exists\s+)?.*?\s+as\s+(select\b.*|with\b.*|values\b.*)$`)
	sqliteTriggerBody = regexp.MustCompile(`(?is)\bbegin\b(.*)\bend\s*;?\s*$`)
)

func readSQLite(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	err := query(ctx, pool, `SELECT f."table", m.name, f.on_delete, f.on_update
FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`, 4, func(c []string) {
		if cascades(c[2], c[3]) {
			f.cascades = append(f.cascades, [2]string{invalidation.TableName(c[0]), invalidation.TableName(c[1])})
		}
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	return query(ctx, pool, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')`, 4, func(c []string) {
		if c[0] != "trigger" {
			f.tables[invalidation.TableName(c[1])] = true
		}
		switch c[0] {
		case "view":
			body := ""
			if m := sqliteViewBody.FindStringSubmatch(c[3]); m != nil {
				body = m[1]
			}
			f.addView(invalidation.SQLite, invalidation.TableName(c[1]), body)
		case "trigger":
			body := c[3]
			if m := sqliteTriggerBody.FindStringSubmatch(body); m != nil {
				body = m[1]
			} else {
				body = "?" // unknown
			}
			f.addTrigger(invalidation.SQLite, invalidation.TableName(c[2]), body)
		}
	})
}

// addView records a view's tables from its defining query.
func (f *catalogFacts) addView(d invalidation.Dialect, view, def string) {
	st := invalidation.Classify(d, def)
	if st.Kind != invalidation.Read || !st.Complete || len(st.Tables) == 0 {
		f.badViews[view] = true
		return
	}
	f.views[view] = append(f.views[view], st.Tables...)
}

// writeWords finds statements that may write in a trigger body.
var writeWords = regexp.MustCompile(`(?i)\b(insert|update|delete|merge|replace|truncate|execute|perform|call|copy|alter|create|drop|refresh|notify)\b`)

// callRE finds function calls in a trigger body.
var callRE = regexp.MustCompile(`(?i)\b([a-z_][a-z0-9_$]*(?:\.[a-z_][a-z0-9_$]*)?)\s*\(`)

// bodyKeywords are procedural keywords that look like calls: "IF (…)".
var bodyKeywords = map[string]bool{
	"if": true, "elsif": true, "elseif": true, "while": true, "for": true, "foreach": true, "return": true,
	"raise": true, "exists": true, "in": true, "not": true, "and": true, "or": true, "when": true,
	"then": true, "else": true, "case": true, "values": true, "array": true, "row": true, "cast": true,
	"select": true, "from": true, "where": true, "into": true, "loop": true, "using": true, "on": true,
	"any": true, "all": true, "some": true, "set": true, "begin": true, "end": true, "declare": true,
	"signal": true, "leave": true, "iterate": true, "repeat": true, "until": true, "do": true,
}

// callsUnknown reports whether body calls a function that is not a known
// built-in: it may write anything.
func callsUnknown(d invalidation.Dialect, body string) bool {
	for _, m := range callRE.FindAllStringSubmatch(body, -1) {
		name := strings.ToLower(m[1])
		if bodyKeywords[name] {
			continue
		}
		if invalidation.FunctionKind(d, name) == invalidation.FuncUnknown {
			return true
		}
	}
	return false
}

// addTrigger records what a trigger on table writes, from its body.
func (f *catalogFacts) addTrigger(d invalidation.Dialect, table, body string) {
	if !writeWords.MatchString(body) && !callsUnknown(d, body) {
		if _, ok := f.triggers[table]; !ok {
			f.triggers[table] = nil // it writes nothing beyond its own row
		}
		return
	}
	plain := d == invalidation.SQLite // a SQLite trigger body is plain statements
	if d == invalidation.MySQL {
		// a single statement, or a BEGIN … END block (compound: unknown)
		b := strings.TrimSpace(body)
		plain = len(b) < 5 || !strings.EqualFold(b[:5], "begin")
	}
	if plain {
		// Name what the statements write; a function the classifier does
		// not know may write anything.
		st := invalidation.Classify(d, body)
		known := true
		for _, fn := range st.Functions {
			if invalidation.FunctionKind(d, fn) == invalidation.FuncUnknown {
				known = false
			}
		}
		if known && (st.Kind == invalidation.Write || st.Kind == invalidation.Read) && st.Complete {
			written := st.Written
			if st.Kind == invalidation.Read {
				written = nil
			}
			f.triggers[table] = append(f.triggers[table], written...)
			return
		}
	}
	f.badTrigger[table] = true
}

// catalogPool remembers the first pool the plugin wrapped: catalog queries
// run on it, below the plugin.
func (p *Plugin) catalogPool(pool gorm.ConnPool) {
	p.deps.mu.Lock()
	if p.deps.pool == nil {
		p.deps.pool = pool
	}
	p.deps.mu.Unlock()
}
