package plugin

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gormcache/gormcache/serializer"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
)

// The hit fast path. For the query chain, the wrapper builds the SQL itself
// (callbacks.BuildQuerySQL; the original callback then skips building) and
// looks the query up. On a hit whose destination is not a map, it hands GORM
// an entrySource, which assigns cached driver values straight to GORM's
// destination pointers: no database/sql, no replay driver. Only the
// conversion table's assignments (convert.go: database/sql's own rules) are
// done here; anything else (another conversion, an error to report) goes
// through a one-value replay, so conversions and their errors stay exactly
// database/sql's.

// queryCallback wraps gorm:query. The fast path stands in for GORM's own
// callbacks.Query, so it is taken only when that is what orig is: any other
// orig (an application's replacement, which may add clauses and must run on
// every statement) runs whole, with the statement's read pool looking up
// the SQL it finally sends.
func (p *Plugin) queryCallback(orig func(*gorm.DB)) func(*gorm.DB) {
	slow := p.wrapCallback(orig)
	fast := isFunc(orig, callbacks.Query)
	return func(db *gorm.DB) {
		if sp, ok := db.Statement.ConnPool.(*stmtPool); ok && sp.guard {
			// The application's gorm:query, which queryGuard took for one
			// that does not call this wrapper, does: take over.
			db.Statement.ConnPool = sp.inner
		}
		if !fast || db.Error != nil || db.DryRun || db.Statement.ConnPool == nil || p.closed.Load() || !fastDest(db.Statement.Dest) {
			// (closed: the ordinary way, which still bumps a shared store on writes)
			slow(db)
			return
		}
		callbacks.BuildQuerySQL(db)
		if db.Error != nil || db.DryRun {
			return
		}
		opts, err := optionsOf(db)
		if err != nil {
			p.stats.bypassed(ReasonBadOption)
			db.AddError(err)
			return
		}
		pr := p.fastProbe(db, opts)
		if pr == nil {
			slow(db)
			return
		}
		if pr.entry != nil {
			if pr.revalidate {
				p.revalidate(db.Statement.ConnPool, pr)
			}
			pr.release()
			p.serveHit(db, pr.entry, pr.pl, false)
			return
		}
		if pr.bypass == "" && pr.noStore == "" {
			p.fastMiss(db, pr)
			return
		}
		// A bypass: the ordinary way, with this lookup.
		p.runWrapped(db, orig, pr)
	}
}

// queryWrapperPC identifies the functions queryCallback returns.
var queryWrapperPC = reflect.ValueOf((&Plugin{}).queryCallback(nil)).Pointer()

// isFunc reports whether f is g (both non-nil).
func isFunc(f, g func(*gorm.DB)) bool {
	return f != nil && g != nil && reflect.ValueOf(f).Pointer() == reflect.ValueOf(g).Pointer()
}

// queryGuard runs just before gorm:query. When gorm:query is no longer the
// plugin's wrapper (the application replaced it after db.Use), it puts a
// read pool on the statement, so that whatever gorm:query now is, its final
// SQL is looked up (and a write through the query chain still bumps);
// queryRestore takes it off before gorm:preload. If the application's
// callback calls the wrapper after all, the wrapper takes over.
func (p *Plugin) queryGuard(db *gorm.DB) {
	if db.Error != nil || db.DryRun || db.Statement.ConnPool == nil || p.closedOwn() {
		return
	}
	if reflect.ValueOf(db.Callback().Query().Get("gorm:query")).Pointer() == queryWrapperPC {
		return
	}
	if !p.replacedQuery.Swap(true) {
		p.log.Info("gormcache: gorm:query was replaced after db.Use; the cache reads its statements through their connection pool (hits take the slower path)")
	}
	db.Statement.ConnPool = &stmtPool{p: p, inner: db.Statement.ConnPool, db: db, guard: true}
}

// queryRestore takes queryGuard's read pool off the statement.
func queryRestore(db *gorm.DB) {
	if sp, ok := db.Statement.ConnPool.(*stmtPool); ok && sp.guard {
		db.Statement.ConnPool = sp.inner
	}
}

// serveHit scans a fresh entry into the statement's destination, as
// gorm:query would scan the rows.
// coalesced: the entry is an identical query's, just run (counted apart).
func (p *Plugin) serveHit(db *gorm.DB, e *serializer.Entry, pl *plan, coalesced bool) {
	if err := db.Statement.Context.Err(); err != nil {
		// as database/sql would: a done context fails the query
		db.AddError(err)
		return
	}
	if coalesced {
		p.stats.coalesced.Add(1)
	} else {
		p.countHit(pl)
	}
	scanSource(db, newEntrySource(e), pl, e.Rows)
	p.markHit(db)
}

const hitMarker = "/* gormcache hit */ "

// markHit puts hitMarker before the statement's SQL, for loggers and
// tracers, and calls Config.OnHit. AfterFind hooks do not see it
// (hideHitMarker).
func (p *Plugin) markHit(db *gorm.DB) {
	if db == nil {
		return
	}
	if p.cfg.OnHit != nil {
		p.cfg.OnHit(db.Statement.Context)
	}
	if p.cfg.NoHitMarker {
		return
	}
	sql := db.Statement.SQL.String()
	db.Statement.SQL.Reset()
	db.Statement.SQL.Grow(len(hitMarker) + len(sql))
	db.Statement.SQL.WriteString(hitMarker)
	db.Statement.SQL.WriteString(sql)
}

// hideHitMarker wraps gorm:after_query, which runs the AfterFind hooks:
// while it runs, a hit's SQL is what plain GORM shows; the marker is back
// for what comes after it (tracing plugins' after callbacks, GORM's logger).
func hideHitMarker(orig func(*gorm.DB)) func(*gorm.DB) {
	gormsOwn := isFunc(orig, callbacks.AfterQuery)
	return func(db *gorm.DB) {
		st := db.Statement
		marked := st.SQL.String()
		if !strings.HasPrefix(marked, hitMarker) ||
			gormsOwn && !(db.Error == nil && st.Schema != nil && !st.SkipHooks && st.Schema.AfterFind && db.RowsAffected > 0) {
			// (GORM's own callback reads the SQL only through the hooks)
			orig(db)
			return
		}
		plain := marked[len(hitMarker):]
		st.SQL.Reset()
		st.SQL.WriteString(plain)
		orig(db)
		if st.SQL.String() == plain {
			st.SQL.Reset()
			st.SQL.WriteString(marked)
		}
	}
}

// fastMiss runs a missed query as gorm:query does, scanning the real rows
// itself (directScan, or gorm.Scan over a liveSource) so that each value is
// converted once, and stores the result when it was read to the end.
func (p *Plugin) fastMiss(db *gorm.DB, pr *probe) {
	defer pr.release()
	// Stampede protection: identical misses wait for the first one.
	f, leader := p.flight.Join(pr.key)
	if !leader {
		if e, _ := f.Wait(db.Statement.Context); e != nil && bytes.Equal(e.Check, pr.canonical) && pr.fresh(e) {
			// (the same versions: no write committed between the leader's
			// reading of them and ours, so its rows are fresh for us too)
			p.serveHit(db, e, pr.pl, true)
			return
		}
	} else {
		var stored *serializer.Entry
		defer func() { f.Finish(stored) }()
		defer func() {
			if pr.stored != nil {
				stored = pr.stored
			}
		}()
	}
	p.countMiss(pr.pl)
	st := db.Statement
	rows, err := st.ConnPool.QueryContext(st.Context, pr.query, st.Vars...)
	if err != nil {
		db.AddError(err)
		return
	}
	ls := &liveSource{rows: rows}
	if cts, err := rows.ColumnTypes(); err == nil {
		c := &ls.kept
		p.startCapture(c, sharedColumnsOf(&pr.pl.columns, cts), false) // (see replaysTypes)
		pr.stamp(c)
		ls.capture = c
	}
	scanSource(db, ls, pr.pl, 0)
	complete, closeErr := ls.close()
	db.AddError(closeErr)
	// (First, Take and Last of no rows: the scan's own error, which a hit
	// gives again)
	p.keepMiss(pr, ls.capture, complete && (db.Error == nil || db.Error == gorm.ErrRecordNotFound && db.RowsAffected == 0))
}

// countHit and countMiss count a hit and a miss of a read of plan pl, in
// Stats and per table.
func (p *Plugin) countHit(pl *plan) {
	p.stats.hits.Add(1)
	for _, c := range pl.counts {
		c.hits.Add(1)
	}
}

func (p *Plugin) countMiss(pl *plan) {
	p.stats.misses.Add(1)
	for _, c := range pl.counts {
		c.misses.Add(1)
	}
}

// keepMiss stores the capture c of a missed query when its result was read
// whole (complete), or counts why it may not be stored.
func (p *Plugin) keepMiss(pr *probe, c *capture, complete bool) {
	switch {
	case c == nil:
	case c.reason != "":
		p.stats.bypassed(c.reason)
		pr.pl.stat.bypassed(c.reason)
	case complete:
		if reason := pr.settle(&c.entry); reason != "" {
			p.stats.bypassed(reason)
			pr.pl.stat.bypassed(reason)
		} else if p.put(pr.key, &c.entry, pr.ttl) {
			pr.stored = &c.entry
			pr.pl.stat.stored(&c.entry)
		}
	}
}

// scanSource scans src into the statement's destination, as gorm:query
// would: directly into the fields where directScan can (sizeHint: the rows,
// when known), else through gorm.Scan. (Maps, Row and Rows read a source
// through the replay driver instead: stmtPool.QueryContext.)
func scanSource(db *gorm.DB, src rowSource, pl *plan, sizeHint int) {
	if !directScan(db, src, &pl.layout, sizeHint) {
		gorm.Scan(src, db, 0)
	}
	if db.Statement.Result != nil {
		db.Statement.Result.RowsAffected = db.RowsAffected
	}
}

// fastDest reports whether GORM scans dest without ColumnTypes (everything
// but maps).
func fastDest(dest any) bool {
	switch dest.(type) {
	case map[string]any, *map[string]any, *[]map[string]any, nil:
		return false
	}
	return true
}

// fastProbe looks the statement up, or returns nil when it is not a
// cacheable read outside a transaction.
func (p *Plugin) fastProbe(db *gorm.DB, opts *queryOptions) *probe {
	pool := db.Statement.ConnPool
	switch pool.(type) {
	case gorm.TxCommitter, *sql.Conn:
		return nil
	}
	if p.rawShared.inTx() {
		return nil // (the ordinary way counts the reason)
	}
	query := db.Statement.SQL.String()
	p.depsGraph()
	pl := p.planFor(query)
	if !pl.cacheable || p.optionsReason(opts) != "" {
		return nil // (the ordinary way counts the reason)
	}
	return p.probeQuery(db.Statement.Context, pool, pl, query, db.Statement.Vars, opts)
}

// assign stores src in dest as database/sql's convertAssign would.
func assign(dest any, src driver.Value) error {
	if assignExact(dest, src) {
		return nil
	}
	return assignSlow(dest, src) // (which copies bytes: entries are shared)
}

// assignExact does the assignments of the conversion table (convert.go),
// for pointers to the types it classifies and pointers to those pointers
// (GORM scans struct fields through **T); false: database/sql's way. The
// common destinations are switched on without reflection.
func assignExact(dest any, src driver.Value) bool {
	switch d := dest.(type) {
	case *any:
		if b, ok := src.([]byte); ok {
			src = bytes.Clone(b) // entries are shared; destinations may keep what they get
		}
		*d = src
		return true
	case *[]byte:
		b, ok := convBytes(src)
		if ok {
			*d = b
		}
		return ok
	case *string:
		x, ok := convString(src)
		if ok {
			*d = x
		}
		return ok
	case *int64:
		x, ok := convInt(src, 64)
		if ok {
			*d = x
		}
		return ok
	case *int:
		x, ok := convInt(src, strconv.IntSize)
		if ok {
			*d = int(x)
		}
		return ok
	case *float64:
		x, ok := convFloat(src, 64)
		if ok {
			*d = x
		}
		return ok
	case *bool:
		x, ok := convBool(src)
		if ok {
			*d = x
		}
		return ok
	case *time.Time:
		x, ok := src.(time.Time)
		if ok {
			*d = x
		}
		return ok
	case **string:
		return assignPtr(d, src)
	case **int64:
		return assignPtr(d, src)
	case **int:
		return assignPtr(d, src)
	case **float64:
		return assignPtr(d, src)
	case **bool:
		return assignPtr(d, src)
	case **time.Time:
		return assignPtr(d, src)
	case sql.Scanner:
		return false
	}
	p := reflect.ValueOf(dest)
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return false
	}
	v := p.Elem()
	if v.Kind() == reflect.Pointer {
		// as convertAssign: NULL is a nil pointer; a value, a new one
		if src == nil {
			v.SetZero()
			return true
		}
		n := reflect.New(v.Type().Elem())
		if !assignExact(n.Interface(), src) {
			return false
		}
		v.Set(n)
		return true
	}
	k, bits := destKind(v.Type())
	return setValue(k, bits, v, src)
}

// assignPtr is assignExact for a **T: NULL is a nil pointer, a value a new
// one.
func assignPtr[T any](d **T, src driver.Value) bool {
	if src == nil {
		*d = nil
		return true
	}
	v := new(T)
	if !assignExact(v, src) {
		return false
	}
	*d = v
	return true
}

// assignSlow replays one value through database/sql, so that conversions and
// their errors are exactly database/sql's.
func assignSlow(dest any, src driver.Value) error {
	rows, err := replayDB.Query("", oneValue{src})
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		return io.ErrUnexpectedEOF
	}
	if err := rows.Scan(dest); err != nil {
		// strip database/sql's own prefix: the caller adds the column's
		if se := unwrapScanError(err); se != nil {
			return se
		}
		return err
	}
	return nil
}

// oneValue is a one-column, one-row source.
type oneValue struct{ v driver.Value }

func (o oneValue) open() (driver.Rows, error) {
	return &entryRows{colTypes: colTypes{oneColumn}, e: &serializer.Entry{Columns: oneColumn, Values: []driver.Value{o.v}, Rows: 1}}, nil
}

var oneColumn = []serializer.Column{{Name: "v"}}

// unwrapScanError turns `sql: Scan error on column index 0, name "v": X` into X.
func unwrapScanError(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return nil
}
