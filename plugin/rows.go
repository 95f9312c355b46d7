package plugin

import (
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
)

// Row-level invalidation (issue 15): a read of one table whose WHERE binds
// a keyed column of the table to values, at the top level (col = v,
// col IN (…)), depends on the rows of those values rather than on the
// table. The keyed columns (from the catalog) are the table's primary key,
// where that is one integer column, and the integer columns of its
// one-column foreign keys and indexes (posts.user_id: a user's posts, a
// preload; a tenant column).
//
//   - Its tags are the plan's (the table's tag among them) and, for each
//     value, the row tag t␟c=v, then the column tag t␟c=* and the table's
//     rows tag t␟*.
//   - Keyed on another column (a foreign key, an index), the entry
//     ignores the table's tag: every write says which values of the column
//     its rows had and have (an INSERT its rows' values) or bumps the
//     column tag.
//   - Keyed on the primary key, it ignores the table's tag when the result
//     has one row per value (every row was found). Otherwise (a row
//     missing: an insert that leaves the key to the database may create
//     it) it depends on the table's tag too, as a table-level entry. The
//     SELECT must then call no function (an aggregate makes a row out of
//     none).
//
// Every write to a table bumps (and holds) the table's tag, as before, and
// for each keyed column either the row tags of the values its rows had
// and have (an UPDATE or DELETE whose WHERE binds the column and whose SET
// does not assign it; an INSERT that gives the column's values; for the
// primary key, an INSERT that leaves it to the database names no row an
// entry holds) or the column tag. A write whose rows cannot be told at all
// (its shape is not understood, or it writes other rows of its table:
// cascades, triggers) bumps the rows tag; so does anything else a write
// reaches (cascades and triggers into other tables, partitions,
// Invalidate, outside writers).

// rowRead is a read plan's row condition.
type rowRead struct {
	table   string                 // the table's tag
	column  string                 // the keyed column
	values  []invalidation.Operand // what it is bound to
	prefix  string                 // its row tags' (core.RowPrefix)
	wide    [2]string              // core.Column(table, column), core.Rows(table)
	marker  uint64                 // core.LooseVersion(table): computed once, not per hit
	foreign bool                   // keyed on a column other than the primary key: never depends on the table's tag
	// others: a count(*) whose every condition binds a column (member
	// tags, see core.MemberTag), the columns of its other conditions;
	// prefix is then the member tags'
	others []string
	member bool
}

// readShape returns the row shape of a cacheable read of sql (statement
// st) when it is a SELECT of one table with keyed columns, the reads
// whose rows (rowReadOf) or order (rangeReadOf) may be told; nil for any
// other.
func (p *Plugin) readShape(sql string, st invalidation.Statement, g *depGraph) *invalidation.Shape {
	if p.cfg.TableLevel || len(st.Tables) != 1 {
		return nil
	}
	t := st.Tables[0]
	if g.keys[t] == "" && len(g.columns[t]) == 0 {
		return nil
	}
	sh := invalidation.RowShape(p.dialect, sql)
	if !sh.OK || sh.Op != invalidation.ShapeSelect || sh.Table != t {
		return nil
	}
	return &sh
}

// rowReadOf returns the row condition of a read of shape sh (readShape)
// and statement st (nil when it has none).
func rowReadOf(sh *invalidation.Shape, st invalidation.Statement, g *depGraph) *rowRead {
	t := sh.Table
	pk, cols := g.keys[t], g.columns[t]
	bound := func(c invalidation.Conjunct, key bool) bool {
		// (a key is never NULL: key IS NULL finds nothing an insert of a
		// key the database chooses could not change)
		return len(c.Values) <= core.MaxRowValues && !(key && c.Values[0].Kind == invalidation.OperandNull)
	}
	read := func(c invalidation.Conjunct, foreign bool) *rowRead {
		return &rowRead{table: t, column: c.Column, values: c.Values, prefix: core.RowPrefix(t, c.Column),
			wide: [2]string{core.Column(t, c.Column), core.Rows(t)}, marker: core.LooseVersion(t), foreign: foreign}
	}
	if pk != "" && len(st.Functions) == 0 {
		for _, c := range sh.Where {
			if c.Column == pk && bound(c, true) {
				return read(c, false)
			}
		}
	}
	for _, c := range sh.Where {
		if slices.Contains(cols, c.Column) && bound(c, false) {
			r := read(c, true)
			if sh.CountAll && sh.WhereAll && slices.Equal(st.Functions, []string{"count"}) {
				// (which rows: their member tags) The other conditions'
				// columns must be ones writes name when they change them:
				// not a generated column, nor MySQL's ON UPDATE
				// CURRENT_TIMESTAMP, which the database sets itself (a
				// keyed column is never such a one).
				member := true
				for _, o := range sh.Where {
					if o.Column == c.Column || slices.Contains(r.others, o.Column) {
						continue
					}
					keyed := o.Column == pk || slices.Contains(cols, o.Column)
					member = member && (keyed || !g.setsItself(t, o.Column))
					r.others = append(r.others, o.Column)
				}
				if member && len(c.Values)*(1+len(r.others)) <= core.MaxRowValues {
					r.member, r.prefix = true, r.prefix+"m"
				} else {
					r.others = nil
				}
			}
			return r
		}
	}
	return nil
}

// tags returns the row tags of the read for args, with its column and
// rows tags, and the number of distinct values; ok is false when a value
// is not a certain integer (the read is then table-level).
func (r *rowRead) tags(args []any) (tags []string, n int, ok bool) {
	tags, n, ok = r.withTags([]string{core.Global}, args)
	if !ok {
		return nil, 0, false
	}
	return tags[:len(tags)-1], n, true
}

// withTags returns base (ending with the global tag) with the row tags of
// the read for args and its column and rows tags before the global tag,
// in one allocation beside the tags themselves; ok as for tags.
func (r *rowRead) withTags(base []string, args []any) (tags []string, n int, ok bool) {
	last := len(base) - 1
	tags = make([]string, last, len(base)+len(r.values)+len(r.wide))
	copy(tags, base[:last])
	tags, ok = core.AppendRowTags(tags, r.prefix, r.values, args)
	if !ok {
		return nil, 0, false
	}
	n = len(tags) - last
	for _, x := range r.others {
		for i := last; i < last+n; i++ {
			tags = append(tags, core.MemberByTag(tags[i], x))
		}
	}
	return append(tags, r.wide[0], r.wide[1], base[last]), n, true
}

// ---- writes ----

// rowWriteTags returns the tags a write bumps beyond its tables' own: for
// its own table, per keyed column, the row tags of the values it names or
// the column tag; the rows tag of every other table among tags (and of
// its own, when its rows cannot be told at all).
//
// learn are keyed columns whose values the write learns as it runs
// (learnable): it bumps their row tags then (learned), not their column
// tags now.
func (p *Plugin) rowWriteTags(pl *plan, args []any, tags []string, g *depGraph, count bool, learn *learning) []string {
	if len(tags) == 1 && tags[0] == core.Global {
		return tags
	}
	var own string       // the one table whose rows the write tells, if any
	var rowTags []string // their tags
	if sh := pl.shape; sh != nil && sh.OK {
		if pk, cols := g.keys[sh.Table], g.columns[sh.Table]; (pk != "" || len(cols) > 0) && !g.selfWrite[sh.Table] {
			var named bool
			own = sh.Table
			shape := *sh
			if g.facts != nil && g.facts.lenient {
				// (MySQL without a strict sql_mode may store other values
				// than the statement's, as with IGNORE)
				shape = shape.Unvalued()
			}
			rowTags, named = keyedRows(shape, pk, cols, args, learn)
			switch {
			case !count:
			case named:
				p.stats.rowWrites.Add(1)
			default:
				p.stats.tableWrites.Add(1)
			}
		}
	}
	out := slices.Clone(tags)
	for _, t := range tags {
		if core.TableOf(t) != t || t == "" {
			continue // the global, namespace and row tags
		}
		if t == own {
			out = append(out, rowTags...)
		} else {
			out = append(out, core.Rows(t))
		}
	}
	return out
}

// keyedRows returns the row and column tags a write of shape sh bumps for
// its table's primary key pk ("" for none) and its other keyed columns:
// per column, the row tags of the values its rows had and have there, or
// the column's tag (but nothing for the columns learn learns), and the
// range tags of the values it gives the column (ranges.go). named reports
// whether some column's values were named (entries of other values stay
// cached).
func keyedRows(sh invalidation.Shape, pk string, cols []string, args []any, learn *learning) (tags []string, named bool) {
	// An UPDATE that SETs the primary key moves rows among those a ranged
	// read returns (ties broken by the key) whatever the column.
	rekeyed := sh.Op == invalidation.ShapeUpdate && pk != "" && (sh.SetAll || slices.Contains(sh.Set, pk))
	for i := -1; i < len(cols); i++ {
		c, key := pk, true
		if i >= 0 {
			c, key = cols[i], false
		}
		if c == "" {
			continue
		}
		if rt, ok := namedRows(sh, c, args, key); ok {
			tags, named = append(tags, rt...), true
			tags = append(tags, memberTags(sh, c, rt)...)
		} else if !learn.rows(c) {
			tags = append(tags, core.Column(sh.Table, c))
		}
		if rekeyed {
			tags = append(tags, core.RangeColumn(sh.Table, c))
		} else {
			tags = append(tags, rangeWriteTags(sh, c, args, learn.ranges(c), key)...)
		}
	}
	return tags, named
}

// memberTags returns the member tags (core.MemberTag) a write of shape sh
// bumps for the row tags rt of its rows' values of col: their member tags
// when it may change which rows have them (an INSERT, a DELETE, an UPDATE
// that SETs col), else their member tags by each column it SETs.
func memberTags(sh invalidation.Shape, col string, rt []string) []string {
	var out []string
	moves := sh.Op != invalidation.ShapeUpdate || sh.SetAll || slices.Contains(sh.Set, col)
	for _, t := range rt {
		if moves {
			if m := core.MemberTag(t); m != "" {
				out = append(out, m)
			}
			continue
		}
		for _, x := range sh.Set {
			if m := core.MemberByTagOf(t, x); m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

// namedRows returns the row tags of the values in col of the rows a write
// of shape sh changes, before (an UPDATE or DELETE whose WHERE binds col)
// and after (the values an UPDATE's SET assigns col, or an INSERT's); ok
// is false when they cannot be named. key: col is the primary key, which
// an INSERT that does not give it leaves to the database (a new row, in no
// entry that found every row: no tag); another column's default is a
// value it cannot name.
func namedRows(sh invalidation.Shape, col string, args []any, key bool) (tags []string, ok bool) {
	add := func(op invalidation.Operand) bool {
		if key && op.Kind == invalidation.OperandNull {
			return true // (no entry is keyed on a NULL key)
		}
		v := core.RowValue(op, args)
		if v == "" {
			return false
		}
		t := core.RowTag(sh.Table, col, v)
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
		return len(tags) <= core.MaxRowValues
	}
	switch sh.Op {
	case invalidation.ShapeUpdate, invalidation.ShapeDelete:
		if sh.SetAll {
			return nil, false
		}
		// A SET of the column moves the rows: the values it assigns
		// (after), beside the WHERE's (before).
		for i, c := range sh.Set {
			if c == col && (i >= len(sh.SetValues) || !add(sh.SetValues[i])) {
				return nil, false
			}
		}
		for _, c := range sh.Where {
			if c.Column != col || key && c.Values[0].Kind == invalidation.OperandNull {
				continue
			}
			for _, op := range c.Values {
				if !add(op) {
					return nil, false
				}
			}
			return tags, true
		}
		return nil, false
	case invalidation.ShapeInsert:
		if sh.Upsert || sh.Columns == nil {
			return nil, false
		}
		i := slices.Index(sh.Columns, col)
		if i < 0 {
			if key {
				return []string{}, true // the database gives the key: a new row
			}
			return nil, false // the column's default
		}
		for _, row := range sh.Values {
			if !add(row[i]) {
				return nil, false
			}
		}
		return tags, true
	}
	return nil, false
}

// learning is what a write learns as it runs (learnable): the keyed
// columns it returns, cols[:ranged] for the row tags of their values,
// cols[ranged:] (columns it SETs to a value it does not name) for the
// range tags of their new values.
type learning struct {
	cols   []string
	ranged int
}

// rows reports whether l learns the row tags of column c (l may be nil).
func (l *learning) rows(c string) bool { return l != nil && slices.Contains(l.cols[:l.ranged], c) }

// ranges reports whether l learns the range tags of column c.
func (l *learning) ranges(c string) bool { return l != nil && slices.Contains(l.cols[l.ranged:], c) }

// learnable returns what a write of plan pl in a transaction of ours
// learns as it runs, by a RETURNING clause the plugin adds to it
// (PostgreSQL, SQLite), or nil: for an UPDATE or DELETE that names its
// rows by primary key (at most core.MaxRowValues rows come back) and ends
// with its WHERE clause, on a table without triggers or rules (a rule may
// not return rows), the keyed columns that the catalog's user may read
// (RETURNING needs the SELECT privilege; a SET ROLE to a user who may not
// is not seen) and that the statement does not name (their row tags), and
// those an UPDATE SETs to a value it does not name, such as visits + 1
// (their range tags, ranges.go). Their tags are bumped and held once the
// statement has run, before the transaction commits (learned), instead of
// the column tags before it runs: `Update("title", …)` of a post then
// leaves the other users' post lists cached.
func (p *Plugin) learnable(pl *plan, g *depGraph, args []any) *learning {
	sh := pl.shape
	if p.cfg.TableLevel || sh == nil || !sh.OK || sh.Tail == 0 || sh.SetAll ||
		sh.Op != invalidation.ShapeUpdate && sh.Op != invalidation.ShapeDelete ||
		p.dialect != invalidation.Postgres && p.dialect != invalidation.SQLite {
		return nil
	}
	t := sh.Table
	pk, cols := g.keys[t], g.columns[t]
	if pk == "" || g.selfWrite[t] || g.writeAll[t] || len(g.write[t]) > 0 {
		return nil
	}
	if _, ok := namedRows(*sh, pk, args, true); !ok {
		return nil
	}
	var unreadable []string
	if g.facts != nil {
		unreadable = g.facts.unreadable[t]
	}
	var eq, ranged []string
	for i := -1; i < len(cols); i++ {
		c := pk
		if i >= 0 {
			c = cols[i]
		}
		if slices.Contains(unreadable, c) {
			continue // (RETURNING it would fail: the column tag instead)
		}
		if j := slices.Index(sh.Set, c); j >= 0 {
			if _, ok := rangeValueTags(t, c, sh.SetValues[j:j+1], args); !ok {
				ranged = append(ranged, c) // (RETURNING gives its values after: their range tags)
			}
			continue
		}
		if i < 0 {
			continue // (the key: named)
		}
		if _, ok := namedRows(*sh, c, args, false); !ok {
			eq = append(eq, c)
		}
	}
	if len(eq)+len(ranged) == 0 {
		return nil
	}
	return &learning{cols: append(eq, ranged...), ranged: len(eq)}
}

// returning is query with a RETURNING clause of cols inserted at tail.
func returning(query string, tail int, cols []string) string {
	var b strings.Builder
	b.Grow(len(query) + 16*len(cols))
	b.WriteString(query[:tail])
	b.WriteString(" RETURNING ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + strings.ReplaceAll(c, `"`, `""`) + `"`)
	}
	b.WriteString(query[tail:])
	return b.String()
}

// learned returns the tags of the values of table's columns that rows
// (from returning, l's columns) hold, and how many rows there were: per
// column learned for its row tags, the row tags of its values, or its
// column tag when a value is no certain integer or there are too many;
// per column learned for its range tags, theirs, or its range column tag.
func learned(table string, l *learning, rows *sql.Rows) (tags []string, n int64, err error) {
	cols := l.cols
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	per := make([][]string, len(cols))
	ranges := make([]rangeTagSet, len(cols))
	wide := make([]bool, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, n, err
		}
		n++
		for i, v := range vals {
			if wide[i] {
				continue
			}
			text := core.RowValue(invalidation.Operand{Kind: invalidation.OperandArg}, []any{v})
			if i >= l.ranged {
				wide[i] = !ranges[i].add(table, cols[i], text)
				continue
			}
			if text == "" {
				wide[i] = true
				continue
			}
			if t := core.RowTag(table, cols[i], text); !slices.Contains(per[i], t) {
				per[i] = append(per[i], t)
				wide[i] = len(per[i]) > core.MaxRowValues
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, n, err
	}
	for i, c := range cols {
		switch {
		case i >= l.ranged && wide[i]:
			tags = append(tags, core.RangeColumn(table, c))
		case i >= l.ranged:
			tags = append(tags, ranges[i].tags...)
		case wide[i]:
			tags = append(tags, core.Column(table, c))
		default:
			tags = append(tags, per[i]...)
		}
	}
	return tags, n, nil
}

// wideTags returns the tags a write that learns l bumps when what it
// returned cannot be read: each column's column tag, or range column tag.
func wideTags(table string, l *learning) []string {
	var tags []string
	for i, c := range l.cols {
		if i >= l.ranged {
			tags = append(tags, core.RangeColumn(table, c))
		} else {
			tags = append(tags, core.Column(table, c))
		}
	}
	return tags
}

// learnedResult is the sql.Result of a write run with a RETURNING clause
// the plugin added.
type learnedResult struct{ rows int64 }

var _ sql.Result = learnedResult{}

func (r learnedResult) RowsAffected() (int64, error) { return r.rows, nil }

func (learnedResult) LastInsertId() (int64, error) {
	return 0, errors.New("gormcache: LastInsertId is not available for an UPDATE or DELETE")
}
