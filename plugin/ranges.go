package plugin

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
)

// A table's first rows in a column's order (issue 15): a read
//
//	SELECT … FROM t ORDER BY c [DESC] [, pk] LIMIT n
//
// of a whole table (no WHERE, no function), where c is a keyed column
// (rows.go: the integer primary key, or an integer column of a one-column
// foreign key or index), depends on the rows it returned and on a row
// taking a value of c at or past the boundary, the last row's value: a
// leaderboard stays cached while the rows below it change. Its tags are
// the plan's, then
//
//   - the row tags of the primary key's values of the rows it returned
//     (writes that change one of them, or move it out, bump them), the
//     key's column tag and the table's rows tag;
//   - the range tags of c past the boundary (core.RangeCover), c's range
//     column tag and its NULL tag: writes of a new value of c (an INSERT,
//     an UPDATE that SETs c) bump the range tags of the values they give,
//     or learn them (RETURNING), or bump the range column tag.
//
// Which rows those are is known only once the query has run. So each plan
// keeps a hint: the rows and boundary bucket of the last result. A read
// depends on the hint's tags, under a key of its own (the hint is part of
// the canonical query), with the versions read before the query as
// always; its result is stored as such (its table's tag ignored) only when
// it returned exactly the hint's rows with a boundary inside the hint's
// cover, else as a table-level entry (depending on the table's tag too),
// and the hint becomes the result's. Instances with other hints keep
// other entries.

// rangeRead is a read plan's order and limit.
type rangeRead struct {
	table, column, pk string
	desc              bool
	limit             invalidation.Operand
	marker            uint64   // core.LooseVersion(table)
	base              []string // the key's column tag, the rows tag, c's range column and NULL tags
	hint              atomic.Pointer[rangeHint]
}

// rangeHint is what a ranged read depends on, from a result.
type rangeHint struct {
	members []string // the row tags of the rows' primary keys, sorted
	bucket  uint32   // the boundary's bucket
	tags    []string // base, members, the cover
	suffix  string   // what the canonical query gets
}

// rangeReadOf returns the order and limit of a read of shape sh
// (readShape) and statement st (nil when it is not such a read).
func rangeReadOf(sh *invalidation.Shape, st invalidation.Statement, g *depGraph) *rangeRead {
	t := sh.Table
	pk := g.keys[t]
	if pk == "" || len(st.Functions) != 0 || sh.Filtered || len(sh.Order) == 0 || !sh.Plain {
		return nil // (an alias could name c or the key: ORDER BY, and the result, would be its)
	}
	c := sh.Order[0].Column
	if c != pk && !slices.Contains(g.columns[t], c) {
		return nil
	}
	if len(sh.Order) > 2 || len(sh.Order) == 2 && sh.Order[1].Column != pk {
		return nil // (ties broken by another column: its writes would move rows in)
	}
	return &rangeRead{table: t, column: c, pk: pk, desc: sh.Order[0].Desc, limit: sh.Limit, marker: core.LooseVersion(t),
		base: []string{core.Column(t, pk), core.Rows(t), core.RangeColumn(t, c), core.RangeNull(t, c)}}
}

// withTags returns base (ending with the global tag) with h's tags before
// the global tag.
func (h *rangeHint) withTags(base []string) []string {
	last := len(base) - 1
	tags := make([]string, 0, len(base)+len(h.tags))
	tags = append(tags, base[:last]...)
	tags = append(tags, h.tags...)
	return append(tags, base[last])
}

// limitOf returns the read's limit with args (0: more than
// core.MaxRowValues, or not a certain integer).
func (r *rangeRead) limitOf(args []any) int {
	n, ok := rangeInteger(core.RowValue(r.limit, args))
	if !ok || n <= 0 || n > core.MaxRowValues {
		return 0
	}
	return int(n)
}

// result returns the members and boundary bucket of e, a result of the
// read with args; ok is false when it cannot depend on them (fewer rows
// than the limit, a column missing, a value that is not an integer).
func (r *rangeRead) result(e *serializer.Entry, args []any) (members []string, bucket uint32, ok bool) {
	if n := r.limitOf(args); n == 0 || e.Rows != n || len(e.Columns) == 0 {
		return nil, 0, false
	}
	kc, vc := -1, -1
	for i, c := range e.Columns {
		switch {
		case kc < 0 && strings.EqualFold(c.Name, r.pk):
			kc = i
		case vc < 0 && strings.EqualFold(c.Name, r.column):
			vc = i
		}
	}
	if r.column == r.pk {
		vc = kc
	}
	if kc < 0 || vc < 0 {
		return nil, 0, false
	}
	n := len(e.Columns)
	for i := 0; i < e.Rows; i++ {
		text, _ := integerText(e.Values[i*n+kc])
		if _, ok := rangeInteger(text); !ok {
			return nil, 0, false
		}
		members = append(members, core.RowTag(r.table, r.pk, text))
	}
	text, _ := integerText(e.Values[(e.Rows-1)*n+vc])
	last, ok := rangeInteger(text)
	if !ok {
		return nil, 0, false
	}
	slices.Sort(members)
	return members, core.RangeBucket(last), true
}

// rangeInteger returns the integer whose canonical text (core.RowValue's)
// is v: false for NULL, anything else, or one beyond int64 (MySQL's
// unsigned columns).
func rangeInteger(v string) (int64, bool) {
	if len(v) < 2 || v[0] != 'i' {
		return 0, false
	}
	n, err := strconv.ParseInt(v[1:], 10, 64)
	return n, err == nil
}

// fits reports whether a result of members and bucket may be stored as
// depending on h: the same rows, the boundary inside h's cover.
func (r *rangeRead) fits(h *rangeHint, members []string, bucket uint32) bool {
	if !slices.Equal(h.members, members) {
		return false
	}
	if r.desc {
		return bucket >= h.bucket
	}
	return bucket <= h.bucket
}

// learn makes a result of members and bucket the plan's hint.
func (r *rangeRead) learn(members []string, bucket uint32) {
	h := &rangeHint{members: members, bucket: bucket}
	h.tags = append(h.tags, r.base...)
	h.tags = append(h.tags, members...)
	h.tags = core.RangeCover(h.tags, r.table, r.column, bucket, r.desc)
	var b strings.Builder
	b.WriteString("\x00range ")
	b.WriteString(strconv.FormatUint(uint64(bucket), 10))
	for _, m := range members {
		b.WriteByte(' ')
		b.WriteString(m[len(core.RowPrefix(r.table, r.pk)):])
	}
	h.suffix = b.String()
	r.hint.Store(h)
}

// settle decides what a captured result e of a ranged read depends on: on
// the hint's tags alone (its table's at i marked ignored) when it fits the
// hint the read used (h, nil for none), else on its table too (args: the
// read's); and makes the result the hint when it does not fit. It returns
// why e may not be stored ("" when it may).
func (r *rangeRead) settle(h *rangeHint, e *serializer.Entry, i int, args []any) Reason {
	members, bucket, ok := r.result(e, args)
	switch {
	case !ok:
	case h != nil && r.fits(h, members, bucket):
		e.Versions[i] = r.marker
		return ""
	default:
		r.learn(members, bucket)
	}
	if h != nil && e.Versions[i] == 0 {
		return ReasonHeld // a write to the table was in flight
	}
	return ""
}

// ---- writes ----

// rangeWriteTags returns the range tags a write of shape sh bumps for its
// table's keyed column col: those of the values it gives col (an INSERT's,
// an UPDATE's SET), or col's range column tag when they are unknown;
// nothing for a DELETE, an UPDATE that does not SET col, or one that
// learns them as it runs (learn). key: col is the primary key, whose 0 or
// NULL in an INSERT may be the database's to choose (MySQL's
// AUTO_INCREMENT, SQLite's INTEGER PRIMARY KEY): unknown.
func rangeWriteTags(sh invalidation.Shape, col string, args []any, learn, key bool) []string {
	var ops []invalidation.Operand
	switch sh.Op {
	case invalidation.ShapeDelete:
		return nil
	case invalidation.ShapeUpdate:
		i := slices.Index(sh.Set, col)
		switch {
		case sh.SetAll:
		case i < 0, learn:
			return nil
		case i < len(sh.SetValues):
			ops = sh.SetValues[i : i+1]
		}
	case invalidation.ShapeInsert:
		if i := slices.Index(sh.Columns, col); i >= 0 && !sh.Upsert {
			for _, row := range sh.Values {
				if v := core.RowValue(row[i], args); key && (v == "n" || v == "i0") {
					return []string{core.RangeColumn(sh.Table, col)}
				}
				ops = append(ops, row[i])
			}
		}
	}
	if tags, ok := rangeValueTags(sh.Table, col, ops, args); ok {
		return tags
	}
	return []string{core.RangeColumn(sh.Table, col)}
}

// rangeValueTags returns the range tags of the values ops give table's
// column; ok is false when there are none, or one is not a certain integer
// or NULL, or there are more than core.MaxRowValues.
func rangeValueTags(table, col string, ops []invalidation.Operand, args []any) (tags []string, ok bool) {
	if len(ops) == 0 {
		return nil, false
	}
	var r rangeTagSet
	for _, op := range ops {
		if !r.add(table, col, core.RowValue(op, args)) {
			return nil, false
		}
	}
	return r.tags, true
}

// rangeTagSet gathers the range tags of values (as core.RowValue gives
// them) of one column, each bucket once.
type rangeTagSet struct {
	tags    []string
	buckets []uint32
	null    bool
}

// add adds the tags of v; false when v is no integer or NULL, or the
// values are too many.
func (s *rangeTagSet) add(table, col, v string) bool {
	if v == "n" {
		if !s.null {
			s.null = true
			s.tags = append(s.tags, core.RangeNull(table, col))
		}
		return true
	}
	n, ok := rangeInteger(v)
	if !ok {
		return false
	}
	b := core.RangeBucket(n)
	if slices.Contains(s.buckets, b) {
		return true
	}
	s.buckets = append(s.buckets, b)
	var buf [4]string
	for _, t := range core.RangeTags(buf[:0], table, col, n) {
		if !slices.Contains(s.tags, t) { // (groups are shared)
			s.tags = append(s.tags, t)
		}
	}
	return len(s.buckets) <= core.MaxRowValues
}
