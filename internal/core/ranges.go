package core

import (
	"math/bits"
	"strconv"
)

// Range tags (issue 15, the reads of a table's first rows in a column's
// order): a read "ORDER BY c LIMIT n" of a whole table depends on the rows
// it returned (their key's row tags) and on any row taking a value of c
// that would put it among them — one at or past the value of the last
// row returned (the boundary). Values of an integer column fall in 976
// buckets, in order (eight per power of two, each sign apart), grouped
// four times over by eight: a write of a row with value v in c bumps the
// four tags of v's bucket and of its groups (RangeTags); a read bounded at
// b depends on b's bucket and on the buckets and groups that lie wholly
// past it, at most 23 tags (RangeCover). A write of c whose new values are
// unknown bumps RangeColumn; a NULL, RangeNull (every such read depends on
// it: where NULLs sort is the dialect's).

const (
	rangeLevels  = 4
	rangeShift   = 3   // eight per group
	rangeBuckets = 976 // 488 per sign
)

// RangeBucket returns the bucket of v: buckets are in v's order.
func RangeBucket(v int64) uint32 {
	if v >= 0 {
		return rangeBuckets/2 + magnitude(uint64(v))
	}
	return rangeBuckets/2 - 1 - magnitude(uint64(-(v + 1)))
}

// magnitude maps u < 2^63 to 0…487, in u's order: 0…7 as they are, then eight
// buckets per power of two (u's three bits after its leading one).
func magnitude(u uint64) uint32 {
	e := bits.Len64(u)
	if e <= 3 {
		return uint32(u)
	}
	return 8 + uint32(e-4)*8 + uint32(u>>(e-4)&7)
}

func rangeTag(table, column string, level int, node uint32) string {
	var b [16]byte
	v := append(b[:0], 'r', byte('0'+level), '.')
	return Row(table, column, string(strconv.AppendUint(v, uint64(node), 10)))
}

// RangeTags appends the tags a write bumps for a row whose value in
// table's column becomes v.
func RangeTags(dst []string, table, column string, v int64) []string {
	b := RangeBucket(v)
	for l := 0; l < rangeLevels; l++ {
		dst = append(dst, rangeTag(table, column, l, b>>(rangeShift*l)))
	}
	return dst
}

// RangeCover appends the tags a read bounded at bucket b depends on:
// those of b itself and of the buckets and groups past it (desc: every
// greater value; else every smaller one).
func RangeCover(dst []string, table, column string, b uint32, desc bool) []string {
	dst = append(dst, rangeTag(table, column, 0, b))
	for l := 0; l < rangeLevels; l++ {
		node := b >> (rangeShift * l)
		last := uint32(rangeBuckets-1) >> (rangeShift * l)
		lo, hi := node&^7, node|7 // node's siblings
		if l == rangeLevels-1 {
			lo, hi = 0, last
		}
		hi = min(hi, last)
		if desc {
			for j := node + 1; j <= hi; j++ {
				dst = append(dst, rangeTag(table, column, l, j))
			}
		} else {
			for j := lo; j < node; j++ {
				dst = append(dst, rangeTag(table, column, l, j))
			}
		}
	}
	return dst
}

// RangeColumn is the tag a write bumps when the values it gives table's
// column are unknown (every read ordered by the column depends on it).
func RangeColumn(table, column string) string { return Row(table, column, "r*") }

// RangeNull is the tag a write bumps for a row whose value in table's
// column becomes NULL.
func RangeNull(table, column string) string { return Row(table, column, "rn") }
