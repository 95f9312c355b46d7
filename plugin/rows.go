package plugin

import (
	"database/sql/driver"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
)

// Row-level invalidation (issue 15, first slice): a read of one table whose
// WHERE binds the table's primary key (one integer column, from the
// catalog) to values, at the top level (id = v, id IN (…)), depends on
// those rows rather than on the table:
//
//   - its tags are the plan's (the table's tag among them) and, for each
//     value, the row tag t␟id=v, and the table's rows tag t␟*;
//   - when the result has one row per value (every row was found), the
//     entry ignores the table's tag: a write to other rows does not reach
//     it. Otherwise (a row missing: an insert may create it) it depends on
//     the table's tag too, as before. The SELECT must call no function
//     (an aggregate makes a row out of none) and read no other table.
//
// Every write to a table bumps (and holds) the table's tag, as before, and
// either the row tags of the rows it names (an UPDATE or DELETE whose WHERE
// binds the key and whose SET does not assign it; an INSERT that gives the
// key) or the table's rows tag. An INSERT that leaves the key to the
// database (a serial) creates a row no found-every-row entry can hold:
// the table's tag suffices. Anything else a write reaches (cascades,
// triggers, partitions, Invalidate, outside writers) bumps the rows tag of
// each table.

// maxRowValues bounds the rows an entry depends on: a read of more values
// (a long IN list) depends on its table.
const maxRowValues = 64

// rowRead is a read plan's row condition.
type rowRead struct {
	table  string                 // the table's tag
	column string                 // its key column
	values []invalidation.Operand // what the key is bound to
}

// rowReadOf returns the row condition of a cacheable read of tables (nil
// when it has none).
func (p *Plugin) rowReadOf(sql string, st invalidation.Statement, g *depGraph) *rowRead {
	if p.cfg.TableLevel || len(st.Tables) != 1 || len(st.Functions) > 0 {
		return nil
	}
	col := g.keys[st.Tables[0]]
	if col == "" {
		return nil
	}
	sh := invalidation.RowShape(p.dialect, sql)
	if !sh.OK || sh.Op != invalidation.ShapeSelect || sh.Table != st.Tables[0] {
		return nil
	}
	for _, c := range sh.Where {
		if c.Column == col && len(c.Values) <= maxRowValues && c.Values[0].Kind != invalidation.OperandNull {
			return &rowRead{table: sh.Table, column: col, values: c.Values}
		}
	}
	return nil
}

// rowValue returns the canonical text of an integer key value ("" when the
// value is not certainly an integer the database compares as such).
func rowValue(op invalidation.Operand, args []any) string {
	switch op.Kind {
	case invalidation.OperandNumber:
		n, err := strconv.ParseInt(op.Text, 10, 64)
		if err != nil {
			return ""
		}
		return strconv.FormatInt(n, 10)
	case invalidation.OperandArg:
		if op.Arg >= len(args) {
			return ""
		}
		return intArg(args[op.Arg])
	}
	return ""
}

// intArg returns the decimal text of an integer argument ("" for anything
// else: a string the database would convert is left alone).
func intArg(a any) string {
	switch v := a.(type) {
	case int:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case uint:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case driver.Valuer:
		return "" // its value is the driver's business
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10)
	}
	return ""
}

// rowTag is the tag of the rows of table whose key column holds v.
func rowTag(table, column, v string) string { return core.Row(table, column, "i"+v) }

// tags returns the row tags of the read for args, with the table's rows
// tag, and the number of distinct values; ok is false when a value is not
// a certain integer (the read is then table-level).
func (r *rowRead) tags(args []any) (tags []string, n int, ok bool) {
	tags = make([]string, 0, len(r.values)+1)
	for _, op := range r.values {
		v := rowValue(op, args)
		if v == "" {
			return nil, 0, false
		}
		t := rowTag(r.table, r.column, v)
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return append(tags, core.Rows(r.table)), len(tags), true
}

// looseVersion is what a row-level entry stores in place of its table's
// version, which it does not depend on: a value derived from the tag, so
// that only a read with that very tag at that place ignores it. (A real
// version equals it with probability 2^-64.)
func looseVersion(tag string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("gormcache/rows:"))
	h.Write([]byte(tag))
	return h.Sum64() | 1<<63
}

// sameVersions reports whether an entry stamped with stamp is fresh for
// versions read now under tags.
func sameVersions(stamp, versions []uint64, tags []string, loose int) bool {
	if len(stamp) != len(versions) {
		return false
	}
	for i, v := range stamp {
		if v != versions[i] && !(i == loose-1 && v == looseVersion(tags[i])) {
			return false
		}
	}
	return true
}

// ---- writes ----

// rowWriteTags returns the tags a write bumps beyond its tables' own:
// the row tags of the rows it names, for its own table, and the rows tag
// of every other table among tags (or of its own, when its rows cannot be
// named).
func (p *Plugin) rowWriteTags(pl *plan, args []any, tags []string, g *depGraph, count bool) []string {
	if len(tags) == 1 && tags[0] == core.Global {
		return tags
	}
	var named map[string][]string // table → row tags
	if sh := pl.shape; sh != nil {
		if col := g.keys[sh.Table]; sh.OK && col != "" {
			if rt, ok := namedRows(*sh, col, args); ok {
				named = map[string][]string{sh.Table: rt}
				if count {
					p.stats.rowWrites.Add(1)
				}
			} else if count {
				p.stats.tableWrites.Add(1)
			}
		}
	}
	out := slices.Clone(tags)
	for _, t := range tags {
		if core.TableOf(t) != t || t == "" {
			continue // the global, namespace and row tags
		}
		if rt, ok := named[t]; ok {
			out = append(out, rt...)
		} else {
			out = append(out, core.Rows(t))
		}
	}
	return out
}

// namedRows returns the row tags of the rows a write of shape sh changes,
// keyed on col; ok is false when they cannot be named.
func namedRows(sh invalidation.Shape, col string, args []any) (tags []string, ok bool) {
	add := func(op invalidation.Operand) bool {
		v := rowValue(op, args)
		if v == "" {
			return false
		}
		t := rowTag(sh.Table, col, v)
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
		return len(tags) <= maxRowValues
	}
	switch sh.Op {
	case invalidation.ShapeUpdate, invalidation.ShapeDelete:
		if sh.SetAll || slices.Contains(sh.Set, col) {
			return nil, false // the key moves: rows before and after unknown
		}
		for _, c := range sh.Where {
			if c.Column != col || c.Values[0].Kind == invalidation.OperandNull {
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
			return []string{}, true // the database gives the key: a new row
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
