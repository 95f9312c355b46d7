package core

import (
	"slices"
	"strings"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
)

// Tags are strings, as the store keeps them. There are three kinds:
//
//   - Global ("*"): every value depends on it; bumping it invalidates
//     everything (a write whose tables are unknown, DDL, a flush, the
//     epoch after an outage).
//   - a table's tag: its normalised name (invalidation.TableName: lower
//     case, schema-qualified where the SQL qualified it). Never begins
//     with "*".
//   - a namespace tag: "*" and a capitalised kind, then a prefix
//     ("*Lowlevel:ll"): one cache's flush. Upper case never survives
//     TableName, so no table has such a tag.
//
// Finer tags for a table's rows (a column's value, issue 15) are a fourth
// kind, built by Row. A value that depends on rows of a table also depends
// on the table's own tag, which writes that cannot say which rows they
// change bump: so every rule below is stated per tag and needs no
// hierarchy (a broken or held table tag already covers its rows' values).
const Global = store.GlobalTag

// Table returns the tag of a table as GORM or SQL names it ("" for none).
func Table(name string) string { return invalidation.TableName(name) }

// Namespace returns the tag of one cache's entries: kind is capitalised
// ("Lowlevel", "Viewcache").
func Namespace(kind, prefix string) string { return "*" + kind + ":" + prefix }

// Row returns the tag of the rows of table whose column holds value (in a
// canonical encoding the caller chooses, the same for reads and writes).
// The separators cannot occur in a normalised table or column name.
func Row(table, column, value string) string {
	return table + "\x1f" + column + "=" + value
}

// TableOf returns the table a table or row tag belongs to ("" for the
// global and namespace tags).
func TableOf(tag string) string {
	if strings.HasPrefix(tag, "*") {
		return ""
	}
	if i := strings.IndexByte(tag, '\x1f'); i >= 0 {
		return tag[:i]
	}
	return tag
}

// Tables returns the tags of tables (as GORM or SQL names them); names
// beginning with "*" are taken as tags as they are.
func Tables(names []string) []string {
	tags := make([]string, 0, len(names))
	for _, t := range names {
		if !strings.HasPrefix(t, "*") {
			t = Table(t)
		}
		tags = append(tags, t)
	}
	return tags
}

// Rows returns the tag that every value depending on rows of table (by
// Row tags) also depends on: a write to the table that cannot name the
// rows it changes bumps it, with the table's own tag.
func Rows(table string) string { return table + "\x1f*" }

// IsRowTag reports whether tag is a Row, Column or Rows tag.
func IsRowTag(tag string) bool { return strings.IndexByte(tag, '\x1f') >= 0 }

// Wide returns tags with the Rows tag of each table tag among them: what a
// write whose rows are unknown bumps (Invalidate, an outside writer, a
// cascade), so that values depending on some of a table's rows see it.
func Wide(tags []string) []string {
	out := tags
	for _, t := range tags {
		if TableOf(t) == t && t != "" && !slices.Contains(out, Rows(t)) {
			if len(out) == len(tags) {
				out = slices.Clone(tags)
			}
			out = append(out, Rows(t))
		}
	}
	return out
}

// tableTags counts the tags that are not row tags (Counters.Invalidations
// counts tables, as Stats documents; row-level writes are counted by the
// front).
func tableTags(tags []string) uint64 {
	n := uint64(0)
	for _, t := range tags {
		if !IsRowTag(t) {
			n++
		}
	}
	return n
}
