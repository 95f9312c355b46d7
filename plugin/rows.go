package plugin

import (
	"slices"

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

// rowRead is a read plan's row condition.
type rowRead struct {
	table   string                 // the table's tag
	column  string                 // its key column
	values  []invalidation.Operand // what the key is bound to
	prefix  string                 // its row tags' (core.RowPrefix)
	rowsTag string                 // core.Rows(table)
	marker  uint64                 // core.LooseVersion(table): computed once, not per hit
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
		if c.Column == col && len(c.Values) <= core.MaxRowValues && c.Values[0].Kind != invalidation.OperandNull {
			return &rowRead{table: sh.Table, column: col, values: c.Values,
				prefix: core.RowPrefix(sh.Table, col), rowsTag: core.Rows(sh.Table), marker: core.LooseVersion(sh.Table)}
		}
	}
	return nil
}

// tags returns the row tags of the read for args, with the table's rows
// tag, and the number of distinct values; ok is false when a value is not
// a certain integer (the read is then table-level).
func (r *rowRead) tags(args []any) (tags []string, n int, ok bool) {
	return core.RowTags(r.table, r.column, r.values, args)
}

// withTags returns base (ending with the global tag) with the row tags of
// the read for args and its rows tag before the global tag, in one
// allocation beside the tags themselves; ok as for tags.
func (r *rowRead) withTags(base []string, args []any) (tags []string, n int, ok bool) {
	last := len(base) - 1
	tags = make([]string, last, len(base)+len(r.values)+1)
	copy(tags, base[:last])
	tags, ok = core.AppendRowTags(tags, r.prefix, r.values, args)
	if !ok {
		return nil, 0, false
	}
	n = len(tags) - last
	return append(tags, r.rowsTag, base[last]), n, true
}

// sameVersions reports whether an entry stamped with stamp is fresh for
// versions read now; at loose-1 (a row-level read's table tag) the stamp
// may hold marker (the tag's core.LooseVersion) instead.
func sameVersions(stamp, versions []uint64, loose int, marker uint64) bool {
	if len(stamp) != len(versions) {
		return false
	}
	for i, v := range stamp {
		if v != versions[i] && !(i == loose-1 && v == marker) {
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
	var named string     // the one table whose rows the write names, if any
	var rowTags []string // their tags
	if sh := pl.shape; sh != nil {
		if col := g.keys[sh.Table]; sh.OK && col != "" && !g.selfWrite[sh.Table] {
			if rt, ok := namedRows(*sh, col, args); ok {
				named, rowTags = sh.Table, rt
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
		if t == named {
			out = append(out, rowTags...)
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
