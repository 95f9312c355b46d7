package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/keys"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Per-query options. Give them to a statement as GORM clauses, in the
// manner of dbresolver.Write:
//
//	db.Clauses(plugin.TTL(10 * time.Minute)).Find(&products)
//	db.Clauses(plugin.Skip()).First(&account, id)
//
// or to every statement made with a context:
//
//	db.WithContext(plugin.WithOptions(ctx, plugin.TTL(time.Minute))).Find(&x)
//
// Precedence: Skip, from either place, wins over everything; a clause's
// TTL overrides the context's; Refresh and Cache from either place apply;
// Tags from both places add up. Options reach the Preload queries of the
// statement (GORM copies a statement's settings to them). A bad option (a
// negative TTL other than Forever, an empty table name) is reported as the
// statement's error, wrapping ErrInvalidOption.

// ErrInvalidOption is wrapped by the error of a statement given a bad option.
var ErrInvalidOption = errors.New("gormcache: invalid option")

// Option is a per-query option. It is a GORM clause expression (a
// gorm.StatementModifier), so db.Clauses accepts it.
type Option struct {
	o   queryOptions
	err error
}

type queryOptions struct {
	skip    bool
	refresh bool
	cache   bool          // asked for explicitly (Config.OptIn)
	ttl     time.Duration // 0: not set
	tags    []string      // normalised
}

// TTL stores the statement's result for d (Forever: until invalidated).
// It also asks for caching under Config.OptIn.
func TTL(d time.Duration) Option {
	if d <= 0 && d != Forever {
		return Option{err: fmt.Errorf("%w: TTL(%v): must be positive or Forever", ErrInvalidOption, d)}
	}
	return Option{o: queryOptions{ttl: d, cache: true}}
}

// Skip makes the statement neither read nor fill the cache (Django's
// TIMEOUT=0 for one query). Its writes, if any, still invalidate.
func Skip() Option { return Option{o: queryOptions{skip: true}} }

// Refresh runs the statement on the database even when a fresh entry
// exists, and replaces the entry with the result.
func Refresh() Option { return Option{o: queryOptions{refresh: true}} }

// Cache asks for caching under Config.OptIn (elsewhere it changes nothing).
func Cache() Option { return Option{o: queryOptions{cache: true}} }

// Tags makes the statement's entry depend on these tables too (as GORM or
// SQL names them): a write to any of them invalidates it, as a write to
// the tables it reads does.
func Tags(tables ...string) Option {
	o := Option{o: queryOptions{tags: make([]string, 0, len(tables))}}
	for _, t := range tables {
		n := invalidation.TableName(t)
		if n == "" {
			return Option{err: fmt.Errorf("%w: Tags(%q): empty table name", ErrInvalidOption, t)}
		}
		o.o.tags = append(o.o.tags, n)
	}
	return o
}

const optionsKey = "gormcache:options"

// ModifyStatement implements gorm.StatementModifier: it records the option
// in the statement's settings.
func (o Option) ModifyStatement(stmt *gorm.Statement) {
	if o.err != nil {
		_ = stmt.AddError(o.err)
		return
	}
	var cur queryOptions
	if v, ok := stmt.Settings.Load(optionsKey); ok {
		cur = *v.(*queryOptions)
	}
	merged := cur.merge(o.o)
	stmt.Settings.Store(optionsKey, &merged)
}

// Build implements clause.Expression: an option writes no SQL.
func (o Option) Build(clause.Builder) {}

// merge applies o over q (o wins for TTL).
func (q queryOptions) merge(o queryOptions) queryOptions {
	q.skip = q.skip || o.skip
	q.refresh = q.refresh || o.refresh
	q.cache = q.cache || o.cache
	if o.ttl != 0 {
		q.ttl = o.ttl
	}
	if len(o.tags) > 0 {
		q.tags = append(append([]string(nil), q.tags...), o.tags...)
	}
	return q
}

type ctxKey struct{}

// WithOptions returns a context whose statements use opts (see Option for
// precedence). A bad option makes every statement using the context fail
// with it.
func WithOptions(ctx context.Context, opts ...Option) context.Context {
	var cur ctxOptions
	if v, ok := ctx.Value(ctxKey{}).(*ctxOptions); ok {
		cur = *v
	}
	for _, o := range opts {
		if o.err != nil && cur.err == nil {
			cur.err = o.err
		}
		cur.o = cur.o.merge(o.o)
	}
	return context.WithValue(ctx, ctxKey{}, &cur)
}

type ctxOptions struct {
	o   queryOptions
	err error
}

// optionsOf returns the statement's options (nil when it has none), or
// the error of a bad option given through the context.
func optionsOf(db *gorm.DB) (*queryOptions, error) {
	if db == nil {
		return nil, nil
	}
	var fromStmt *queryOptions
	if v, ok := db.Statement.Settings.Load(optionsKey); ok {
		fromStmt = v.(*queryOptions)
	}
	var fromCtx *ctxOptions
	if ctx := db.Statement.Context; ctx != nil {
		fromCtx, _ = ctx.Value(ctxKey{}).(*ctxOptions)
	}
	switch {
	case fromCtx == nil:
		return fromStmt, nil
	case fromCtx.err != nil:
		return nil, fromCtx.err
	case fromStmt == nil:
		return &fromCtx.o, nil
	}
	merged := fromCtx.o.merge(*fromStmt)
	return &merged, nil
}

// Explanation says what the cache does with a statement.
type Explanation struct {
	SQL       string   // the statement's SQL
	Cacheable bool     // its result may be served from and stored in the cache
	Reason    Reason   // why not (a Stats().Bypasses reason), when not cacheable
	Tables    []string // the tables its cached result depends on (reads), or that it invalidates (writes; "*" = everything)
	Write     bool     // it changes data: running it invalidates Tables
	// Rows are the row tags a cacheable read depends on instead of its
	// table (row-level invalidation; keyed on the primary key, once it has
	// found every row it names): "table\x1fcolumn=i<value>" per value, then
	// "table\x1fcolumn=*", which writes that cannot tell their rows' values
	// in that column bump, and "table\x1f*", which writes that cannot tell
	// their rows at all bump. A read of a table's first rows in a column's
	// order (ORDER BY c LIMIT n, no WHERE) depends, once one result has
	// been read, on the row tags of that result's primary keys and on range
	// tags of c past its last row's value ("table\x1fc=r<level>.<bucket>",
	// "table\x1fc=r*" and "table\x1fc=rn"). For a write, the row tags it
	// bumps beside its tables. Empty for a table-level statement.
	Rows []string
	Key  string        // the store key of its result (cacheable reads)
	TTL  time.Duration // how long its result is kept (0: until invalidated)
}

// Explain says what the cache would do with a statement built, not run,
// by GORM's DryRun:
//
//	ex, err := p.Explain(db.Session(&gorm.Session{DryRun: true}).Where("id = ?", 1).Find(&users))
//
// Options given as clauses or through the statement's context count.
func (p *Plugin) Explain(tx *gorm.DB) (Explanation, error) {
	if err := p.setup(); err != nil {
		return Explanation{}, err
	}
	if tx == nil || tx.Statement == nil || tx.Statement.SQL.Len() == 0 {
		return Explanation{}, errors.New("gormcache: Explain needs a statement built with DryRun (db.Session(&gorm.Session{DryRun: true})…)")
	}
	query := strings.TrimPrefix(tx.Statement.SQL.String(), hitMarker)
	pl := p.planFor(query)
	ex := Explanation{SQL: query, Reason: pl.reason, Write: pl.write}
	if pl.write {
		g := p.currentDeps()
		tags := g.writeTags(withTables(pl.writeTags, tx.Statement.Table))
		for _, t := range p.rowWriteTags(pl, tx.Statement.Vars, tags, g, false, nil) {
			if core.IsRowTag(t) {
				ex.Rows = append(ex.Rows, t)
			} else {
				ex.Tables = append(ex.Tables, t)
			}
		}
		return ex, nil
	}
	if !pl.cacheable {
		return ex, nil
	}
	opts, err := optionsOf(tx)
	if err != nil {
		return ex, err
	}
	if reason := p.optionsReason(opts); reason != "" {
		ex.Reason = reason
		return ex, nil
	}
	tags := pl.tags
	var optTTL time.Duration
	if opts != nil {
		optTTL = opts.ttl
		if len(opts.tags) > 0 {
			tags = withTags(tags, opts.tags)
		}
	}
	canonical, err := keys.AppendQuery(nil, p.dialName, p.identity, query, tx.Statement.Vars)
	if err != nil {
		ex.Reason = ReasonUnsupportedArg
		return ex, nil
	}
	ex.Cacheable, ex.Reason = true, ""
	ex.Tables = tags[:len(tags)-1] // without the global tag
	if pl.rows != nil {
		if rt, _, ok := pl.rows.tags(tx.Statement.Vars); ok {
			ex.Rows = rt
		}
	}
	if pl.ranged != nil {
		if h := pl.ranged.hint.Load(); h != nil {
			ex.Rows = slices.Clone(h.tags)
			canonical = append(canonical, h.suffix...)
		}
	}
	ex.Key = p.keys.Key(canonical)
	ex.TTL = p.policy.freshTTL(optTTL, pl.ttl)
	return ex, nil
}
