package plugin

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
)

// Change is a write to one table made outside the application, as a
// replication stream tells it (package pgrepl reads PostgreSQL's):
// what [Plugin.InvalidateRows] needs to choose the tags to bump.
type Change struct {
	// Table names the table written, as SQL names it (articles,
	// "Shop"."Orders").
	Table string
	// AllRows says that any row of the table may have changed (a
	// TRUNCATE, or a change the stream could not tell): every cached
	// result that read the table goes. Rows is then ignored.
	AllRows bool
	// Rows are the rows written.
	Rows []ChangedRow
}

// ChangedRow is one row of a [Change]: its columns' values before and
// after the write. Before is nil for an inserted row, After for a deleted
// one. A column missing from a map that is not nil is a value the stream
// did not tell (under PostgreSQL's default REPLICA IDENTITY, an UPDATE or
// DELETE tells only the primary key's old values): cached results keyed
// on that column then go, whatever their values.
//
// A value is nil for NULL, a Go integer, or the column's text as
// PostgreSQL prints it (a string or a []byte). Only the values of keyed
// columns are read (integer columns: see "Row-level invalidation" in
// the package documentation); a value that is not an integer is taken as
// unknown.
type ChangedRow struct {
	Before, After map[string]any
}

// InvalidateRows makes the cached results that may have read the rows of
// changes stale, in one bump: for each table, its own tag (results that
// read the whole table), the tags of the tables depending on it (views,
// foreign keys, partitions: as [Plugin.Invalidate] does), and, per keyed
// column of the catalog (the integer primary key, the integer columns of
// one-column foreign keys and indexes), the row tags of the values its
// rows had and have there, or the column's tag where a value is unknown.
// Results keyed on other values stay cached. A change whose rows are not
// told (AllRows), or a plugin that could not read the catalog, makes every
// result that read the table go.
//
// It is meant for writes the plugin did not see (a replication stream:
// package pgrepl); the application's own writes bump already, and bumping
// them again is harmless. The error wraps store.ErrUnavailable when the
// store could not be told: the tags are then not served until a later
// bump lands, and the caller should retry.
func (p *Plugin) InvalidateRows(ctx context.Context, changes ...Change) error {
	if err := p.setup(); err != nil {
		return err
	}
	tags := changeTags(p.depsGraph(), changes)
	if len(tags) == 0 {
		return nil
	}
	return p.inv.Bump(ctx, tags)
}

// changeTags returns the tags the changes bump (see InvalidateRows).
func changeTags(g *depGraph, changes []Change) []string {
	var out []string
	add := func(tag string) {
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	for _, c := range changes {
		t := invalidation.TableName(c.Table)
		if t == "" {
			continue
		}
		reach := g.writeTags([]string{t})
		if len(reach) == 1 && reach[0] == core.Global {
			return globalOnly
		}
		for _, r := range reach {
			add(r)
			if r != t {
				add(core.Rows(r)) // a dependent's rows are not told
			}
		}
		pk, cols := g.keys[t], g.columns[t]
		switch {
		case c.AllRows || !g.loaded:
			add(core.Rows(t))
		case pk == "" && len(cols) == 0:
			// no entry is keyed on its rows: the table's tag is enough
		default:
			for _, tag := range changedRowTags(t, pk, cols, c.Rows) {
				add(tag)
			}
		}
	}
	return out
}

// changedRowTags returns, per keyed column of table (pk, "" for none, and
// cols), the row tags of the values rows had and have in it, or the
// column's tag when one is unknown or there are more than
// core.MaxRowValues.
func changedRowTags(table, pk string, cols []string, rows []ChangedRow) []string {
	var tags []string
	for i := -1; i < len(cols); i++ {
		c := pk
		if i >= 0 {
			c = cols[i]
		}
		if c == "" {
			continue
		}
		start := len(tags)
		known := true
		for _, r := range rows {
			for _, image := range [2]map[string]any{r.Before, r.After} {
				if image == nil {
					continue
				}
				v, ok := columnValue(image, c)
				if !ok {
					known = false
					break
				}
				if c == pk && v == "n" {
					continue // (no entry is keyed on a NULL key)
				}
				if tag := core.RowTag(table, c, v); !slices.Contains(tags[start:], tag) {
					tags = append(tags, tag)
				}
			}
			if !known || len(tags)-start > core.MaxRowValues {
				known = false
				break
			}
		}
		if !known {
			tags = append(tags[:start], core.Column(table, c))
		}
		for _, t := range tags[start:] {
			if m := core.MemberTag(t); m != "" {
				tags = append(tags, m) // (which columns changed is not told)
			}
		}
		tags = append(tags, changedRangeTags(table, c, rows)...)
	}
	return tags
}

// changedRangeTags returns the range tags (ranges.go) of the values rows
// have in table's column c after the change (an insert's, an update's:
// whether it changed c or not), or c's range column tag when one is not
// told or is no integer, or there are too many.
func changedRangeTags(table, c string, rows []ChangedRow) []string {
	var set rangeTagSet
	for _, r := range rows {
		if r.After == nil {
			continue // (a deleted row: entries holding it depend on its key)
		}
		v, ok := columnValue(r.After, c)
		if !ok || !set.add(table, c, v) {
			return []string{core.RangeColumn(table, c)}
		}
	}
	return set.tags
}

// columnValue returns the canonical text (core.RowValue's) of column c in
// a row image: false when the image lacks it or it is not an integer or
// NULL. The name is looked up as the catalog spells it, then without
// regard to case.
func columnValue(image map[string]any, c string) (string, bool) {
	v, ok := image[c]
	if !ok {
		for k, kv := range image {
			if strings.EqualFold(k, c) {
				v, ok = kv, true
				break
			}
		}
		if !ok {
			return "", false
		}
	}
	return integerText(v)
}

// integerText returns the canonical text (core.RowValue's) of a value a
// driver or a stream gave: nil for NULL, a Go integer, or an integer's
// decimal text (false for anything else).
func integerText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "n", true
	case string:
		return textInteger(x)
	case []byte:
		return textInteger(string(x))
	}
	s := core.RowValue(invalidation.Operand{Kind: invalidation.OperandArg}, []any{v})
	return s, s != ""
}

// textInteger returns the canonical text of an integer printed in
// decimal (false for anything else).
func textInteger(s string) (string, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "", false
	}
	return "i" + strconv.FormatInt(n, 10), true
}
