package core

import (
	"database/sql/driver"
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"

	"github.com/gormcache/gormcache/invalidation"
)

// MaxRowValues bounds the rows an entry depends on: a read of more values
// (a long IN list) depends on its table.
const MaxRowValues = 64

// RowValue returns the canonical text of a key value: "i" and the decimal
// digits of an integer, "n" for NULL ("" when the value is not certainly
// an integer the database compares as such, nor NULL).
func RowValue(op invalidation.Operand, args []any) string {
	b, ok := appendRowValue(nil, op, args)
	if !ok {
		return ""
	}
	return string(b)
}

// appendRowValue appends RowValue's text to b.
func appendRowValue(b []byte, op invalidation.Operand, args []any) ([]byte, bool) {
	switch op.Kind {
	case invalidation.OperandNull:
		return append(b, 'n'), true
	case invalidation.OperandNumber:
		n, err := strconv.ParseInt(op.Text, 10, 64)
		if err != nil {
			return b, false
		}
		return strconv.AppendInt(append(b, 'i'), n, 10), true
	case invalidation.OperandArg:
		if op.Arg < len(args) {
			if args[op.Arg] == nil {
				return append(b, 'n'), true // (database/sql sends nil as NULL)
			}
			return appendIntArg(append(b, 'i'), args[op.Arg])
		}
	}
	return b, false
}

// appendIntArg appends the decimal text of an integer argument (false for
// anything else: a string the database would convert is left alone).
func appendIntArg(b []byte, a any) ([]byte, bool) {
	switch v := a.(type) {
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case int32:
		return strconv.AppendInt(b, int64(v), 10), true
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), true
	case uint64:
		return strconv.AppendUint(b, v, 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), true
	case driver.Valuer:
		return b, false // its value is the driver's business
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, rv.Uint(), 10), true
	}
	return b, false
}

// RowTag is the tag of the rows of table whose key column holds the value
// whose RowValue is v.
func RowTag(table, column, v string) string { return Row(table, column, v) }

// RowTags returns the tags a row-level read of table depends on beyond
// its tables' own, when its key column is bound to values (with args): the
// distinct values' row tags, then the column's Column tag and the table's
// Rows tag; n is the number of distinct values, and ok is false when a
// value is not a certain integer (the read is then table-level).
func RowTags(table, column string, values []invalidation.Operand, args []any) (tags []string, n int, ok bool) {
	tags, ok = AppendRowTags(nil, RowPrefix(table, column), values, args)
	if !ok {
		return nil, 0, false
	}
	n = len(tags)
	return append(tags, Column(table, column), Rows(table)), n, true
}

// Column returns the tag that every value depending on rows of table by
// their column's values (Row tags) also depends on: a write that cannot
// tell the values its rows have in that column, before or after, bumps it.
func Column(table, column string) string { return Row(table, column, "*") }

// RowPrefix is what the row tags of table's column begin with.
func RowPrefix(table, column string) string { return Row(table, column, "") }

// AppendRowTags appends to dst the distinct row tags (prefix from
// RowPrefix) of values with args, with one allocation per tag; ok is false
// when a value is neither a certain integer nor NULL.
func AppendRowTags(dst []string, prefix string, values []invalidation.Operand, args []any) ([]string, bool) {
	start := len(dst)
	var buf [96]byte
	for _, op := range values {
		b, ok := appendRowValue(append(buf[:0], prefix...), op, args)
		if !ok {
			return dst[:start], false
		}
		dup := false
		for _, t := range dst[start:] {
			if t == string(b) {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, string(b))
		}
	}
	return dst, true
}

// LooseVersion is what a row-level entry stores in place of its table's
// version, which it does not depend on: a value derived from the tag, so
// that only a read with that very tag at that place ignores it. (A real
// version equals it with probability 2^-64.)
func LooseVersion(tag string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("gormcache/rows:"))
	h.Write([]byte(tag))
	return h.Sum64() | 1<<63
}

// Membership tags: a count of a table's rows by a keyed column's values
// (SELECT count(*) … WHERE user_id = 7 AND deleted_at IS NULL) depends on
// which rows have those values and pass its other conditions, not on what
// else they hold. Beside the row tag of a value (bumped by every write of a
// row that has it), a write bumps the value's member tag when it may change
// which rows have it (an INSERT, a DELETE, an UPDATE that SETs the column;
// an outside change), and the value's member tag by column x when it SETs
// x in rows that have it. Such a count depends on the member tags of its
// values and their member tags by the columns of its other conditions.

// MemberTag returns the member tag of the value of rowTag, a Row tag of a
// value ("" when rowTag is none: a Column or Rows tag, a range tag).
func MemberTag(rowTag string) string {
	i := memberAt(rowTag)
	if i < 0 {
		return ""
	}
	return rowTag[:i] + "m" + rowTag[i:]
}

// MemberByTag returns the member tag by column x of the value whose
// member tag is member.
func MemberByTag(member, x string) string { return member + "\x1e" + x }

// MemberByTagOf returns MemberByTag(MemberTag(rowTag), x), in one
// allocation ("" as MemberTag).
func MemberByTagOf(rowTag, x string) string {
	i := memberAt(rowTag)
	if i < 0 {
		return ""
	}
	return rowTag[:i] + "m" + rowTag[i:] + "\x1e" + x
}

// memberAt returns where the value of a Row tag of a value begins (-1
// for another tag).
func memberAt(rowTag string) int {
	i := strings.IndexByte(rowTag, '\x1f')
	if i < 0 {
		return -1
	}
	// (the last '=': a quoted column name may hold one, a value never)
	j := strings.LastIndexByte(rowTag, '=')
	if j < i || j+1 >= len(rowTag) {
		return -1
	}
	switch rowTag[j+1] {
	case 'i', 'n':
		return j + 1
	}
	return -1
}
