package plugin

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
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
//     by the SQL parser); a view we cannot resolve is not cached. The body's
//     functions are judged as a read's are (the view's definition from
//     pg_get_viewdef, information_schema.VIEWS or sqlite_master): a view
//     calling a volatile function (random(), now()) is not cached, nor is a
//     view over it; one calling a function the plugin does not know is not
//     cached either, and a read of it invalidates everything;
//   - inheritance and partitions (PostgreSQL): a write to a partition bumps
//     its parents, a write to a parent bumps its partitions;
//   - triggers: a trigger whose body writes nothing (a BEFORE trigger that
//     sets NEW.updated_at) changes nothing else; one whose body's writes can
//     be named (SQLite, and plain bodies elsewhere) bumps those tables; any
//     other makes every write to its table invalidate everything, unless a
//     Config.Dependencies entry names the table as a source (the user has
//     said where its writes go). A warning is logged once per such table.
//     PostgreSQL trigger functions are read only in sql and plpgsql (a few
//     built-ins known to change only their row aside); one in C, internal,
//     plpython… may write anything. MySQL and MariaDB show a trigger's body
//     only to a user with the TRIGGER privilege on its table (MariaDB lists
//     the trigger with a NULL body, MySQL not at all): such a table's writes
//     invalidate everything, with one warning for all of them;
//   - rules (PostgreSQL's CREATE RULE … DO ALSO/INSTEAD): a write to the
//     rule's table bumps the relations its action refers to (pg_depend); a
//     rule referring to a function or operator may write anything.
//
// The catalog is read when the plugin is installed and again, outside
// transactions, after any statement that may have changed the schema (DDL,
// or a statement the classifier does not know).

// depGraph is the loaded dependency information.
type depGraph struct {
	read      map[string][]string // reading t also depends on these tags
	readNo    map[string]Reason   // reading t cannot be cached: why
	readWrite map[string]bool     // reading t runs a function that may write anything
	write     map[string][]string // writing t also bumps these tags
	writeAll  map[string]bool     // writing t may change tables we cannot name
	// keys: table → its primary key's column, where that is one integer
	// column (row-level invalidation keys entries and writes on it)
	keys map[string]string
	// columns: table → its other keyed columns, the integer columns of
	// its one-column foreign keys and indexes (entries keyed on them are
	// the rows of one parent, a user's posts, or of one tenant)
	columns map[string][]string
	// selfWrite: writing t also writes other rows of t (cascades, triggers)
	selfWrite map[string]bool
	// loaded: from a successful read of the catalog (or, on a dialect
	// whose catalog is not read, Config.WithoutCatalog); emptyDeps is not
	loaded bool
	// tables: every table and view the catalog lists (nil: a dialect whose
	// catalog is not read; names are then not checked)
	tables map[string]bool
	facts  *catalogFacts // what it was built from
}

// knows reports whether the catalog lists table t (a schema-qualified name
// by its last part: the catalog's names are unqualified).
func (g *depGraph) knows(t string) bool {
	if g.tables == nil || g.tables[t] {
		return true
	}
	i := strings.LastIndexByte(t, '.')
	return i >= 0 && g.tables[t[i+1:]]
}

// knowsAll reports whether the catalog lists every one of tables.
func (g *depGraph) knowsAll(tables []string) bool {
	for _, t := range tables {
		if !g.knows(t) {
			return false
		}
	}
	return true
}

var emptyDeps = &depGraph{}

// catalogFacts are what the catalog says, before closure.
type catalogFacts struct {
	cascades   [][2]string         // parent, child
	inherits   [][2]string         // parent, child
	views      map[string][]string // view → tables it reads
	badViews   map[string]bool     // views whose tables are unknown
	viewFuncs  map[string][]string // view → functions its body calls
	viewNo     map[string]Reason   // view → why it cannot be cached, other than its functions
	triggers   map[string][]string // table → tables its triggers (and rules) write
	badTrigger map[string]bool     // tables with triggers or rules whose writes are unknown
	unseen     map[string]bool     // tables whose triggers the user may not read (privileges)
	tables     map[string]bool     // every table and view (for the policy's names)
	keys       map[string]string   // table → its one-column integer primary key
	columns    map[string][]string // table → its integer one-column foreign keys' and indexes' columns
	// unreadable: table → keyed columns the catalog's user may not SELECT
	// (PostgreSQL: RETURNING them would fail a statement that works)
	unreadable map[string][]string
	// selfSet: table → columns the database sets without a write naming
	// them (generated columns; MySQL's ON UPDATE CURRENT_TIMESTAMP): a
	// member count's conditions may not be on them (rows.go)
	selfSet map[string][]string
	// lenient: MySQL's sql_mode (of the catalog's connection) is not
	// strict: an out-of-range value is stored clipped, NULL in a NOT NULL
	// column of a multi-row INSERT as 0, as with IGNORE (see RowShape)
	lenient bool
}

func newFacts() *catalogFacts {
	return &catalogFacts{
		views: map[string][]string{}, badViews: map[string]bool{},
		viewFuncs: map[string][]string{}, viewNo: map[string]Reason{},
		triggers: map[string][]string{}, badTrigger: map[string]bool{},
		unseen: map[string]bool{}, tables: map[string]bool{}, keys: map[string]string{},
		columns: map[string][]string{}, unreadable: map[string][]string{}, selfSet: map[string][]string{},
	}
}

// addSelfSet records (table, column) rows of columns the database sets
// itself (see catalogFacts.selfSet).
func (f *catalogFacts) addSelfSet(table, column string) {
	t := invalidation.TableName(table)
	if !slices.Contains(f.selfSet[t], column) {
		f.selfSet[t] = append(f.selfSet[t], column)
	}
}

// setsItself reports whether the database may set column c of table t
// without a write naming it, as far as the catalog tells (true when it
// was not read).
func (g *depGraph) setsItself(t, c string) bool {
	return g.facts == nil || slices.Contains(g.facts.selfSet[t], c)
}

// addKeys records the tables whose primary key is one integer column,
// from (table, column, type) rows listing every primary-key column.
func (f *catalogFacts) addKeys(rows [][3]string, integer func(typ string) bool) {
	n := map[string]int{}
	for _, r := range rows {
		n[r[0]]++
	}
	// Tables of one name in several schemas share their tags: they may be
	// keyed only when every one of them has the same integer key column
	// (another's "key" may be a plain column there).
	col := map[string]string{}
	for _, r := range rows {
		t := invalidation.TableName(r[0])
		c := ""
		if n[r[0]] == 1 && integer(r[2]) {
			c = r[1]
		}
		if prev, seen := col[t]; seen && prev != c {
			c = ""
		}
		col[t] = c
	}
	for t, c := range col {
		if t != "" && c != "" {
			f.keys[t] = c
		}
	}
}

// addKeyedColumns records the integer columns of one-column foreign keys
// and indexes, from (table, constraint or index, column, type) rows listing
// every column of every foreign key and index (an expression's column is
// "": it makes its index one of several columns). Tables of one name in
// several schemas share their tags, so their columns are merged: a column
// keyed for one of them keys entries of all, which is safe (a write's
// values are read from its own statement; a value that is no certain
// integer bumps the column wide).
func (f *catalogFacts) addKeyedColumns(rows [][4]string, integer func(typ string) bool) {
	n := map[[2]string]int{}
	for _, r := range rows {
		n[[2]string{r[0], r[1]}]++
	}
	for _, r := range rows {
		t := invalidation.TableName(r[0])
		if t == "" || r[2] == "" || n[[2]string{r[0], r[1]}] != 1 || !integer(r[3]) || r[2] == f.keys[t] || slices.Contains(f.columns[t], r[2]) {
			continue
		}
		f.columns[t] = append(f.columns[t], r[2])
	}
	for _, cols := range f.columns {
		sort.Strings(cols)
	}
}

type depState struct {
	graph    atomic.Pointer[depGraph]
	dirty    atomic.Bool
	mu       sync.Mutex
	retryAt  time.Time
	loadedAt time.Time     // of the last successful read
	refresh  sync.Once     // starts the periodic read (Config.CatalogRefresh)
	pool     gorm.ConnPool // the pool catalog queries run on
	warned   sync.Map      // table → true: warned of an unknown trigger
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

// reloadDeps reads the catalog again if it was marked stale, and returns
// the error of a read that failed.
func (p *Plugin) reloadDeps() error {
	d := &p.deps
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty.Load() || d.pool == nil || p.closed.Load() {
		return nil
	}
	if time.Now().Before(d.retryAt) {
		return nil
	}
	d.dirty.Store(false) // a schema change from here on marks it again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	facts, err := readCatalog(ctx, d.pool, p.dialect)
	if err != nil {
		d.dirty.Store(true)
		p.stats.catalogErrors.Add(1)
		if d.graph.Load() == nil {
			d.retryAt = time.Now().Add(time.Second)
			p.clog.Limited(slog.LevelWarn, "gormcache: could not read foreign keys, views and triggers from the catalog; nothing is cached, and every write invalidates everything, until it can be read (retried every second)", "error", err)
		} else {
			d.retryAt = time.Now().Add(30 * time.Second)
			p.clog.Limited(slog.LevelWarn, "gormcache: could not read the catalog again; retrying in 30s (until then, the one read before is used)", "error", err)
		}
		return err
	}
	p.installDeps(facts)
	d.refresh.Do(p.startCatalogRefresh)
	return nil
}

// catalogMissed asks for the catalog to be read again because a statement
// named a table it does not list: before the next statement outside a
// transaction, but at most once a second.
func (p *Plugin) catalogMissed() {
	d := &p.deps
	if d.dirty.Load() {
		return
	}
	d.mu.Lock()
	if next := d.loadedAt.Add(time.Second); d.retryAt.Before(next) {
		d.retryAt = next
	}
	d.mu.Unlock()
	d.dirty.Store(true)
}

// startCatalogRefresh reads the catalog again every Config.CatalogRefresh
// until Close.
func (p *Plugin) startCatalogRefresh() {
	if p.cfg.CatalogRefresh < 0 || !p.readsCatalog() {
		return
	}
	ctx := p.bg.Ctx()
	p.bg.Go(func() {
		t := time.NewTicker(p.cfg.CatalogRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p.schemaChanged() // (read before the next statement outside a transaction, or now)
			if err := p.reloadDeps(); err != nil && strings.Contains(err.Error(), "database is closed") {
				return // (the application closed its *sql.DB without closing the plugin)
			}
		}
	})
}

// readsCatalog reports whether the plugin knows how to read its dialect's
// catalog.
func (p *Plugin) readsCatalog() bool {
	switch p.dialect {
	case invalidation.Postgres, invalidation.MySQL, invalidation.SQLite:
		return true
	}
	return false
}

// installDeps makes the graph of facts the current one (d.mu held). When
// the facts that decide what a write invalidates changed since the last
// read, entries stored under the old ones may be stale: everything is
// invalidated once.
func (p *Plugin) installDeps(facts *catalogFacts) {
	d := &p.deps
	old := d.graph.Load()
	g := p.buildDeps(facts)
	d.graph.Store(g)
	d.loadedAt = time.Now()
	p.stats.catalogReads.Add(1)
	if old != nil && old.facts != nil && facts.depsPrint() != old.facts.depsPrint() {
		p.log.Info("gormcache: the catalog changed (foreign keys, views, triggers or keys): invalidating everything once")
		sctx, cancel := context.WithTimeout(p.bg.Ctx(), 5*time.Second)
		if err := p.inv.Bump(sctx, globalOnly); err != nil {
			p.log.Warn("gormcache: could not invalidate everything after a catalog change (retried in the background)", "error", err)
		}
		cancel()
	}
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
	for _, t := range sortedKeys(f.badTrigger) {
		if declared[t] {
			// (the declaration names what reads depend on; the trigger may
			// still write other rows of its own table)
			writeEdges[t] = append(writeEdges[t], t)
			continue
		}
		unknownWrite[t] = true
		if _, warned := p.deps.warned.LoadOrStore(t, true); !warned {
			p.log.Warn("gormcache: table has a trigger or rule whose writes cannot be determined; every write to it invalidates every cached query (name the tables it writes in Config.Dependencies, e.g. \"audit_log\": {\""+t+"\"})", "table", t)
		}
	}
	var unseen []string
	for _, t := range sortedKeys(f.unseen) {
		if declared[t] {
			writeEdges[t] = append(writeEdges[t], t) // (as for a declared unknown trigger)
		}
		if !declared[t] && !unknownWrite[t] {
			unknownWrite[t] = true
			unseen = append(unseen, t)
		}
	}
	if len(unseen) > 0 {
		list := strings.Join(unseen, ", ")
		if _, warned := p.deps.warned.LoadOrStore("unseen:"+list, true); !warned {
			p.log.Warn("gormcache: the database user may not read the triggers of some tables (it lacks the TRIGGER privilege on them), so every write to them invalidates every cached query; GRANT TRIGGER on them to this user, or name the tables their triggers write in Config.Dependencies (e.g. \"audit_log\": {\""+unseen[0]+"\"})", "tables", list)
		}
	}
	// Why each view may not be cached, and which views run a function that
	// may write anything.
	viewNo := map[string]Reason{}
	viewWrite := map[string]bool{}
	for v := range f.badViews {
		viewNo[v] = ReasonUnknownTables
	}
	for v, r := range f.viewNo {
		if viewNo[v] == "" {
			viewNo[v] = r
		}
	}
	for v, funcs := range f.viewFuncs {
		volatile, unknown := p.judgeFunctions(funcs)
		viewWrite[v] = unknown
		if volatile && viewNo[v] == "" {
			viewNo[v] = ReasonVolatile
		}
	}
	g := &depGraph{
		read: map[string][]string{}, readNo: map[string]Reason{}, readWrite: map[string]bool{},
		write: map[string][]string{}, writeAll: map[string]bool{}, selfWrite: map[string]bool{}, keys: f.keys,
		columns: f.columns, tables: f.tables, facts: f, loaded: p.readsCatalog() || p.cfg.WithoutCatalog,
	}
	readNodes := map[string]bool{}
	for t := range readEdges {
		readNodes[t] = true
	}
	for t := range viewNo {
		readNodes[t] = true
	}
	for t := range readNodes {
		reach := closure(readEdges, t)
		if len(reach) > 0 {
			g.read[t] = reach
		}
		reason, write := viewNo[t], viewWrite[t]
		for _, r := range reach { // sorted: the reason is deterministic
			if reason == "" {
				reason = viewNo[r]
			}
			write = write || viewWrite[r]
		}
		if reason != "" {
			g.readNo[t] = reason
		}
		if write {
			g.readWrite[t] = true
		}
	}
	for t := range writeEdges {
		reach := closure(writeEdges, t)
		if len(reach) > 0 {
			g.write[t] = reach
		}
		// Writing t writes other rows of t (a self-referencing cascade, a
		// trigger on t writing t, a cycle): its rows cannot be named.
		for _, r := range append([]string{t}, reach...) {
			if slices.Contains(writeEdges[r], t) {
				g.selfWrite[t] = true
			}
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
// non-empty when the read may not be cached, and writes is true when it
// runs (through a view) a function that may write anything.
func (g *depGraph) readTags(tables []string) (tags []string, reason Reason, writes bool) {
	for _, t := range tables {
		if g.readWrite[t] {
			return nil, g.readNo[t], true
		}
	}
	tags = append(make([]string, 0, len(tables)+1), tables...)
	for _, t := range tables {
		if r := g.readNo[t]; r != "" {
			return nil, r, false
		}
		for _, d := range g.read[t] {
			if !contains(tags, d) {
				tags = append(tags, d)
			}
		}
	}
	return append(tags, store.GlobalTag), "", false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
		f.tables = nil // nothing we know how to read: names are not checked
		return f, nil
	}
	return f, err
}

// depsPrint is a text of the facts that decide what a write invalidates
// and what an entry depends on (all but the list of tables), the same for
// the same facts whatever order the catalog gave them in.
func (f *catalogFacts) depsPrint() string {
	pairs := func(ps [][2]string) [][2]string {
		ps = slices.Clone(ps)
		slices.SortFunc(ps, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
		return slices.Compact(ps)
	}
	lists := func(m map[string][]string) map[string][]string {
		out := make(map[string][]string, len(m))
		for k, v := range m {
			v = slices.Clone(v)
			slices.Sort(v)
			out[k] = slices.Compact(v)
		}
		return out
	}
	return fmt.Sprint(pairs(f.cascades), pairs(f.inherits), lists(f.views), f.badViews, lists(f.viewFuncs), f.viewNo,
		lists(f.triggers), f.badTrigger, f.unseen, f.keys, lists(f.columns))
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
	var keys [][3]string
	// (a generated column's type reads as "": it changes when the columns
	// it is computed from do, which a write does not name)
	err := query(ctx, pool, `SELECT i.indrelid::regclass::text, a.attname, CASE WHEN a.attgenerated = '' THEN format_type(a.atttypid, NULL) ELSE '' END
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indisprimary`, 3, func(c []string) {
		keys = append(keys, [3]string{c[0], c[1], c[2]})
	})
	if err != nil {
		return fmt.Errorf("primary keys: %w", err)
	}
	pgInteger := func(typ string) bool { return typ == "integer" || typ == "bigint" || typ == "smallint" }
	f.addKeys(keys, pgInteger)
	var keyed [][4]string
	err = query(ctx, pool, `SELECT c.conrelid::regclass::text, 'f' || c.oid::text, a.attname, CASE WHEN a.attgenerated = '' THEN format_type(a.atttypid, NULL) ELSE '' END
FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.contype = 'f'
UNION ALL
SELECT i.indrelid::regclass::text, 'x' || i.indexrelid::text, coalesce(a.attname, ''), CASE WHEN a.attgenerated = '' THEN format_type(a.atttypid, NULL) ELSE '' END
FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) k(attnum)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
WHERE NOT i.indisprimary`, 4, func(c []string) {
		keyed = append(keyed, [4]string{c[0], c[1], c[2], c[3]})
	})
	if err != nil {
		return fmt.Errorf("foreign-key and index columns: %w", err)
	}
	f.addKeyedColumns(keyed, pgInteger)
	err = query(ctx, pool, `SELECT a.attrelid::regclass::text, a.attname
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '' AND c.relkind IN ('r', 'p')
AND n.nspname NOT IN ('pg_catalog', 'information_schema')`, 2, func(c []string) { f.addSelfSet(c[0], c[1]) })
	if err != nil {
		return fmt.Errorf("generated columns: %w", err)
	}
	// (the keyed columns' SELECT privilege: a RETURNING clause of them, see
	// learnable, needs it, an UPDATE that does not read them does not)
	err = query(ctx, pool, `SELECT DISTINCT a.attrelid::regclass::text, a.attname
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
AND NOT pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')`, 2, func(c []string) {
		t := invalidation.TableName(c[0])
		if slices.Contains(f.columns[t], c[1]) && !slices.Contains(f.unreadable[t], c[1]) {
			f.unreadable[t] = append(f.unreadable[t], c[1])
		}
	})
	if err != nil {
		return fmt.Errorf("column privileges: %w", err)
	}
	err = query(ctx, pool, `SELECT c.relname FROM pg_catalog.pg_class c
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
	// Views' bodies, for the functions they call.
	err = query(ctx, pool, `SELECT v.oid::regclass::text, coalesce(pg_catalog.pg_get_viewdef(v.oid), '')
FROM pg_catalog.pg_class v JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
WHERE v.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`, 2, func(c []string) {
		f.addPostgresView(invalidation.TableName(c[0]), c[1])
	})
	if err != nil {
		return fmt.Errorf("view definitions: %w", err)
	}
	// Rules other than views' SELECT rules, and what their actions refer to.
	err = query(ctx, pool, `SELECT DISTINCT r.ev_class::regclass::text, coalesce(d.refclassid::regclass::text, ''),
  CASE WHEN d.refclassid = 'pg_catalog.pg_class'::regclass THEN d.refobjid::regclass::text ELSE '' END
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
WHERE r.ev_type <> '1' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`, 3, func(c []string) {
		f.addPostgresRule(invalidation.TableName(c[0]), c[1], invalidation.TableName(c[2]))
	})
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	// User triggers, their functions' languages and bodies.
	// (tgtype: 1 FOR EACH ROW, 2 BEFORE)
	return query(ctx, pool, `SELECT t.tgrelid::regclass::text, coalesce(p.prosrc, ''), l.lanname, fn.nspname, p.proname,
  CASE WHEN (t.tgtype::int & 3) = 3 THEN 'b' ELSE '' END
FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
JOIN pg_catalog.pg_namespace fn ON fn.oid = p.pronamespace
WHERE NOT t.tgisinternal`, 6, func(c []string) {
		// (pgnotify's trigger reads as writing nothing: it only calls
		// built-ins and writes no table)
		t := invalidation.TableName(c[0])
		f.addPostgresTrigger(t, c[2], c[3], c[4], c[1])
		if c[5] == "b" && !(c[3] == "pg_catalog" && rowOnlyTriggers[c[4]]) {
			f.writesOwnRows(t)
		}
	})
}

// rowOnlyTriggers are PostgreSQL's built-in trigger functions (pg_catalog,
// language internal) that change only the row being written.
var rowOnlyTriggers = map[string]bool{
	"suppress_redundant_updates_trigger": true,
	"tsvector_update_trigger":            true,
	"tsvector_update_trigger_column":     true,
}

// addPostgresTrigger records a trigger on table from its function's
// language, schema, name and body (prosrc). Only sql and plpgsql bodies can
// be read; in any other language (c, internal, plpython3u…) the body is a
// symbol or a program the plugin cannot follow, so the trigger may write
// anything.
func (f *catalogFacts) addPostgresTrigger(table, lang, schema, name, body string) {
	switch {
	case lang == "plpgsql" || lang == "sql":
		f.addTrigger(invalidation.Postgres, table, body)
	case schema == "pg_catalog" && rowOnlyTriggers[name]:
		if _, ok := f.triggers[table]; !ok {
			f.triggers[table] = nil
		}
	default:
		f.badTrigger[table] = true
	}
}

// addPostgresRule records one dependency of a rule on table (one pg_depend
// row: the class of the object referred to, and the relation's name when it
// is one). The rule's action may write any relation it refers to; a
// function or operator it calls may write anything. Types, collations and
// schemas change nothing.
//
// Its action may also write rows of table itself (pg_depend lists every
// rule's own table, so that cannot be told), or replace the statement (an
// INSTEAD rule: the rows written are not those named, and RETURNING is
// refused): writing table writes rows of it the write does not name.
func (f *catalogFacts) addPostgresRule(table, refClass, rel string) {
	f.writesOwnRows(table)
	switch refClass {
	case "", "pg_type", "pg_collation", "pg_namespace":
		if _, ok := f.triggers[table]; !ok {
			f.triggers[table] = nil
		}
	case "pg_class":
		if rel != "" && rel != table && !contains(f.triggers[table], rel) {
			f.triggers[table] = append(f.triggers[table], rel)
		}
	default:
		f.badTrigger[table] = true
	}
}

// addPostgresView judges a view's body (pg_get_viewdef) for the functions it
// calls; its tables come from pg_depend.
func (f *catalogFacts) addPostgresView(view, def string) {
	st := invalidation.Classify(invalidation.Postgres, def)
	if st.Kind != invalidation.Read || st.Statements != 1 {
		f.badViews[view] = true
		return
	}
	f.viewFuncs[view] = st.Functions
	if st.Catalog {
		f.viewNo[view] = ReasonCatalog
	}
}

func readMySQL(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	var keys [][3]string
	// (a generated column's type reads as "": it changes when the columns
	// it is computed from do, which a write does not name)
	err := query(ctx, pool, `SELECT TABLE_NAME, COLUMN_NAME, IF(COALESCE(GENERATION_EXPRESSION, '') = '', DATA_TYPE, '') FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_KEY = 'PRI'`, 3, func(c []string) {
		keys = append(keys, [3]string{c[0], strings.ToLower(c[1]), c[2]})
	})
	if err != nil {
		return fmt.Errorf("primary keys: %w", err)
	}
	myInteger := func(typ string) bool {
		switch strings.ToLower(typ) {
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
			return true
		}
		return false
	}
	f.addKeys(keys, myInteger)
	var keyed [][4]string
	// (and an AUTO_INCREMENT column's: an inserted NULL or 0 makes it the
	// next value; the primary key's is kept, as an entry keyed on it that
	// found its rows is never of a new row)
	err = query(ctx, pool, `SELECT k.TABLE_NAME, CONCAT('f', k.CONSTRAINT_NAME), k.COLUMN_NAME,
  IF(COALESCE(c.GENERATION_EXPRESSION, '') = '' AND c.EXTRA NOT LIKE '%auto_increment%', c.DATA_TYPE, '')
FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c
ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL
UNION ALL
SELECT s.TABLE_NAME, CONCAT('x', s.INDEX_NAME), COALESCE(s.COLUMN_NAME, ''),
  IF(COALESCE(c.GENERATION_EXPRESSION, '') = '' AND c.EXTRA NOT LIKE '%auto_increment%', COALESCE(c.DATA_TYPE, ''), '')
FROM information_schema.STATISTICS s LEFT JOIN information_schema.COLUMNS c
ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
WHERE s.TABLE_SCHEMA = DATABASE() AND s.INDEX_NAME <> 'PRIMARY'`, 4, func(c []string) {
		keyed = append(keyed, [4]string{c[0], c[1], strings.ToLower(c[2]), c[3]})
	})
	if err != nil {
		return fmt.Errorf("foreign-key and index columns: %w", err)
	}
	f.addKeyedColumns(keyed, myInteger)
	err = query(ctx, pool, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND (COALESCE(GENERATION_EXPRESSION, '') <> '' OR EXTRA LIKE '%generated%' OR EXTRA LIKE '%on update%')`, 2, func(c []string) {
		f.addSelfSet(c[0], strings.ToLower(c[1]))
	})
	if err != nil {
		return fmt.Errorf("generated columns: %w", err)
	}
	err = query(ctx, pool, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`, 1, func(c []string) {
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
	// Without the TRIGGER privilege on its table, MariaDB shows a trigger
	// with a NULL body; MySQL does not show it.
	err = query(ctx, pool, `SELECT EVENT_OBJECT_TABLE, ACTION_STATEMENT, ACTION_STATEMENT IS NULL, ACTION_TIMING = 'BEFORE'
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`, 4, func(c []string) {
		t := invalidation.TableName(c[0])
		if c[3] == "1" {
			f.writesOwnRows(t)
		}
		if c[2] == "1" {
			f.unseen[t] = true
			return
		}
		f.addTrigger(invalidation.MySQL, t, c[1])
	})
	if err != nil {
		return fmt.Errorf("triggers: %w", err)
	}
	err = query(ctx, pool, `SELECT @@SESSION.sql_mode`, 1, func(c []string) {
		m := strings.ToUpper(c[0])
		f.lenient = !strings.Contains(m, "STRICT_TRANS_TABLES") && !strings.Contains(m, "STRICT_ALL_TABLES")
	})
	if err != nil {
		return fmt.Errorf("sql_mode: %w", err)
	}
	var version string
	err = query(ctx, pool, `SELECT VERSION()`, 1, func(c []string) { version = c[0] })
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return nil // its list is complete
	}
	return readHiddenTriggers(ctx, pool, f)
}

// readHiddenTriggers marks the tables whose triggers MySQL may be hiding:
// base tables that show no trigger and on which the current user holds no
// TRIGGER privilege (global, on the database or on the table). Privileges
// held through a role are not seen: such a table counts as hidden.
func readHiddenTriggers(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	err := query(ctx, pool, `SELECT t.TABLE_NAME
FROM information_schema.TABLES t
CROSS JOIN (SELECT CONCAT('''', LEFT(CURRENT_USER(), LENGTH(CURRENT_USER()) - LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1),
  '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') AS g) me
WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
AND NOT EXISTS (SELECT 1 FROM information_schema.TRIGGERS x
  WHERE x.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND x.EVENT_OBJECT_TABLE = t.TABLE_NAME)
AND NOT EXISTS (SELECT 1 FROM information_schema.USER_PRIVILEGES u
  WHERE u.PRIVILEGE_TYPE = 'TRIGGER' AND u.GRANTEE = me.g)
AND NOT EXISTS (SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES s
  WHERE s.PRIVILEGE_TYPE = 'TRIGGER' AND s.GRANTEE = me.g AND s.TABLE_SCHEMA = t.TABLE_SCHEMA)
AND NOT EXISTS (SELECT 1 FROM information_schema.TABLE_PRIVILEGES p
  WHERE p.PRIVILEGE_TYPE = 'TRIGGER' AND p.GRANTEE = me.g AND p.TABLE_SCHEMA = t.TABLE_SCHEMA AND p.TABLE_NAME = t.TABLE_NAME)`, 1, func(c []string) {
		f.unseen[invalidation.TableName(c[0])] = true
	})
	if err != nil {
		return fmt.Errorf("trigger privileges: %w", err)
	}
	return nil
}

var sqliteTriggerBody = regexp.MustCompile(`(?is)\bbegin\b(.*)\bend\s*;?\s*$`)

// sqliteConflictReplace finds a constraint's ON CONFLICT REPLACE in a
// CREATE TABLE: a plain INSERT or UPDATE of the table then deletes the rows
// its new values conflict with (rows it does not name).
var sqliteConflictReplace = regexp.MustCompile(`(?is)\bon(?:\s|/\*.*?\*/|--[^\n]*)+conflict(?:\s|/\*.*?\*/|--[^\n]*)+replace\b`)

// sqliteExternalContent finds the content table of an FTS3/4/5 virtual
// table (content='companies'; an empty one is contentless).
var sqliteExternalContent = regexp.MustCompile(`(?is)^\s*create\s+virtual\s+table\b.*\busing\s+fts[345]\s*\(.*\bcontent\s*=\s*(?:'([^']*)'|"([^"]*)"|([A-Za-z_][A-Za-z0-9_]*))`)

func readSQLite(ctx context.Context, pool gorm.ConnPool, f *catalogFacts) error {
	var keys [][3]string
	err := query(ctx, pool, `SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p
WHERE m.type = 'table' AND p.pk > 0`, 3, func(c []string) {
		keys = append(keys, [3]string{c[0], strings.ToLower(c[1]), c[2]})
	})
	if err != nil {
		return fmt.Errorf("primary keys: %w", err)
	}
	// (pragma_table_info leaves generated columns out: their type reads
	// as "", so they are never keyed; they change when the columns they
	// are computed from do, which a write does not name)
	//
	// Only INTEGER PRIMARY KEY (the rowid) holds integers whatever is
	// inserted; another INT key may hold text.
	f.addKeys(keys, func(typ string) bool { return strings.EqualFold(typ, "integer") })
	// A foreign key's column of INTEGER affinity (its declared type
	// contains INT) stores an integer for any integer value written to it;
	// a text value that is no integer stays text, and no integer compares
	// equal to it.
	var keyed [][4]string
	err = query(ctx, pool, `SELECT m.name, 'f' || f.id, f."from", coalesce(p.type, '') FROM sqlite_master m
JOIN pragma_foreign_key_list(m.name) f LEFT JOIN pragma_table_info(m.name) p ON p.name = f."from" COLLATE NOCASE
WHERE m.type = 'table'
UNION ALL
SELECT m.name, 'x' || il.name, coalesce(ii.name, ''), coalesce(p.type, '') FROM sqlite_master m
JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii
LEFT JOIN pragma_table_info(m.name) p ON p.name = ii.name COLLATE NOCASE
WHERE m.type = 'table'`, 4, func(c []string) {
		keyed = append(keyed, [4]string{c[0], c[1], strings.ToLower(c[2]), c[3]})
	})
	if err != nil {
		return fmt.Errorf("foreign-key and index columns: %w", err)
	}
	f.addKeyedColumns(keyed, func(typ string) bool { return strings.Contains(strings.ToUpper(typ), "INT") })
	err = query(ctx, pool, `SELECT m.name, x.name FROM sqlite_master m JOIN pragma_table_xinfo(m.name) x
WHERE m.type = 'table' AND x.hidden IN (2, 3)`, 2, func(c []string) { f.addSelfSet(c[0], strings.ToLower(c[1])) })
	if err != nil {
		return fmt.Errorf("generated columns: %w", err)
	}
	err = query(ctx, pool, `SELECT f."table", m.name, f.on_delete, f.on_update
FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`, 4, func(c []string) {
		if cascades(c[2], c[3]) {
			f.cascades = append(f.cascades, [2]string{invalidation.TableName(c[0]), invalidation.TableName(c[1])})
		}
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	// (sqlite_temp_master: the TEMP views and triggers of the connection
	// that reads the catalog, the only one with SQLite's usual pool of one)
	return query(ctx, pool, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')
UNION ALL SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_temp_master WHERE type IN ('view', 'trigger')`, 4, func(c []string) {
		if c[0] != "trigger" {
			f.tables[invalidation.TableName(c[1])] = true
		}
		if m := sqliteExternalContent.FindStringSubmatch(c[3]); c[0] == "table" && m != nil {
			// FTS3/4/5 with external content: its rows' values are read
			// from the content table
			if content := m[1] + m[2] + m[3]; content != "" {
				v := invalidation.TableName(c[1])
				f.views[v] = append(f.views[v], invalidation.TableName(content))
			}
		}
		if c[0] == "table" && sqliteConflictReplace.MatchString(c[3]) {
			t := invalidation.TableName(c[1])
			f.triggers[t] = append(f.triggers[t], t) // writing it writes other rows of it
		}
		switch c[0] {
		case "view":
			f.addSQLiteView(invalidation.TableName(c[1]), c[3])
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

// addView records a view's tables and functions from its defining query
// (MySQL's VIEW_DEFINITION: empty without the SHOW VIEW privilege, and then
// the view is not cached).
func (f *catalogFacts) addView(d invalidation.Dialect, view, def string) {
	st := invalidation.Classify(d, def)
	if st.Kind != invalidation.Read || !st.Complete || len(st.Tables) == 0 || st.Statements != 1 {
		f.badViews[view] = true
		return
	}
	f.addViewBody(view, st, st.Tables)
}

// addSQLiteView records a view from its CREATE VIEW statement
// (sqlite_master.sql), read whole by the SQL parser: comments and quoted
// names that look like "AS SELECT" are tokens like any other, and the
// tables the statement reads besides the view it creates are the body's.
func (f *catalogFacts) addSQLiteView(view, create string) {
	st := invalidation.Classify(invalidation.SQLite, create)
	if st.Kind != invalidation.Schema || !st.Complete || st.Statements != 1 || !contains(st.Written, view) {
		f.badViews[view] = true
		return
	}
	var tables []string
	for _, t := range st.Tables {
		if !contains(st.Written, t) {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		f.badViews[view] = true
		return
	}
	f.addViewBody(view, st, tables)
}

func (f *catalogFacts) addViewBody(view string, st invalidation.Statement, tables []string) {
	f.views[view] = append(f.views[view], tables...)
	f.viewFuncs[view] = st.Functions
	if st.Catalog {
		f.viewNo[view] = ReasonCatalog
	}
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

// writesOwnRows records that writing table writes rows of it the write
// does not name, as a self-referencing cascade does (selfWrite): a BEFORE
// row trigger may change the row being written (NEW.user_id := 2) while
// writing no table, so the values a write names are not those its rows
// end with (nor does RETURNING give those they had); a rule (see
// addPostgresRule). (A SQLite trigger cannot change NEW.)
func (f *catalogFacts) writesOwnRows(table string) {
	if !contains(f.triggers[table], table) {
		f.triggers[table] = append(f.triggers[table], table)
	}
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
