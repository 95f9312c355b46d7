package core

import (
	"database/sql/driver"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"

	"github.com/gormcache/gormcache/invalidation"
)

// MaxRowValues bounds the rows an entry depends on: a read of more values
// (a long IN list) depends on its table.
const MaxRowValues = 64

// RowValue returns the canonical text of an integer key value ("" when the
// value is not certainly an integer the database compares as such).
func RowValue(op invalidation.Operand, args []any) string {
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

// RowTag is the tag of the rows of table whose key column holds v.
func RowTag(table, column, v string) string { return Row(table, column, "i"+v) }

// RowTags returns the row tags of a read of table whose key column is
// bound to values (with args), then the table's Rows tag, and the number
// of distinct values; ok is false when a value is not a certain integer
// (the read is then table-level).
func RowTags(table, column string, values []invalidation.Operand, args []any) (tags []string, n int, ok bool) {
	tags = make([]string, 0, len(values)+1)
	for _, op := range values {
		v := RowValue(op, args)
		if v == "" {
			return nil, 0, false
		}
		t := RowTag(table, column, v)
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return append(tags, Rows(table)), len(tags), true
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
