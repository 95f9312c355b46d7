package plugin

import (
	"slices"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/core"
)

func TestChangeTags(t *testing.T) {
	t.Parallel()
	g := &depGraph{
		loaded:  true,
		keys:    map[string]string{"posts": "id", "users": "id"},
		columns: map[string][]string{"posts": {"user_id"}},
		write:   map[string][]string{"users": {"posts"}},
	}
	row := core.RowTag
	for _, c := range []struct {
		name    string
		g       *depGraph
		changes []Change
		want    []string
	}{
		{"insert names its values", g, []Change{{Table: "posts", Rows: []ChangedRow{{After: map[string]any{"id": "5", "user_id": "7", "title": "x"}}}}},
			[]string{"posts", row("posts", "id", "i5"), row("posts", "user_id", "i7")}},
		{"update with old and new values", g, []Change{{Table: "posts", Rows: []ChangedRow{{
			Before: map[string]any{"id": int64(5), "user_id": int64(7)}, After: map[string]any{"id": "5", "user_id": []byte("8")}}}}},
			[]string{"posts", row("posts", "id", "i5"), row("posts", "user_id", "i7"), row("posts", "user_id", "i8")}},
		{"an unknown old value bumps the column", g, []Change{{Table: "posts", Rows: []ChangedRow{{
			Before: map[string]any{"id": "5"}, After: map[string]any{"id": "5", "user_id": "8"}}}}},
			[]string{"posts", row("posts", "id", "i5"), core.Column("posts", "user_id")}},
		{"a NULL foreign key has its tag", g, []Change{{Table: "posts", Rows: []ChangedRow{{Before: map[string]any{"id": "5", "user_id": nil}}}}},
			[]string{"posts", row("posts", "id", "i5"), row("posts", "user_id", "n")}},
		{"text that is no integer bumps the column", g, []Change{{Table: "posts", Rows: []ChangedRow{{After: map[string]any{"id": "5x", "user_id": "1"}}}}},
			[]string{"posts", core.Column("posts", "id"), row("posts", "user_id", "i1")}},
		{"case of the column", g, []Change{{Table: "posts", Rows: []ChangedRow{{After: map[string]any{"ID": "5", "User_ID": "1"}}}}},
			[]string{"posts", row("posts", "id", "i5"), row("posts", "user_id", "i1")}},
		{"truncate", g, []Change{{Table: "posts", AllRows: true}}, []string{"posts", core.Rows("posts")}},
		{"dependents go wide", g, []Change{{Table: "users", Rows: []ChangedRow{{Before: map[string]any{"id": "1"}}}}},
			[]string{"posts", core.Rows("posts"), "users", row("users", "id", "i1")}},
		{"no catalog", &depGraph{}, []Change{{Table: `"Posts"`, Rows: []ChangedRow{{After: map[string]any{"id": "1"}}}}},
			[]string{"posts", core.Rows("posts")}},
		{"unknown trigger", &depGraph{loaded: true, writeAll: map[string]bool{"posts": true}}, []Change{{Table: "posts"}}, globalOnly},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := withoutRanges(changeTags(c.g, c.changes)) // (TestChangeRangeTags)
			if !slices.Equal(got, c.want) {
				t.Errorf("tags\n got %q\nwant %q", got, c.want)
			}
		})
	}

	// More values than an entry may depend on: the column's tag.
	var rows []ChangedRow
	for i := range core.MaxRowValues + 1 {
		rows = append(rows, ChangedRow{After: map[string]any{"id": i, "user_id": 1}})
	}
	got := withoutRanges(changeTags(g, []Change{{Table: "posts", Rows: rows}}))
	if !slices.Equal(got, []string{"posts", core.Column("posts", "id"), row("posts", "user_id", "i1")}) {
		t.Errorf("many rows: %q", got)
	}
}

// withoutRanges drops the range tags (ranges.go) and the member tags
// (core.MemberTag) from tags.
func withoutRanges(tags []string) []string {
	return slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return isRangeTag(t) || isMemberTag(t) })
}

func isMemberTag(t string) bool {
	i := strings.IndexByte(t, '=')
	return i >= 0 && strings.HasPrefix(t[i+1:], "m")
}

func isRangeTag(t string) bool {
	i := strings.IndexByte(t, '=')
	return i >= 0 && strings.HasPrefix(t[i+1:], "r")
}

// An outside change bumps the range tags of its rows' new values of each
// keyed column (inserts and updates; deleted rows are in entries by their
// keys), or the column's range column tag when one is not told.
func TestChangeRangeTags(t *testing.T) {
	t.Parallel()
	g := &depGraph{loaded: true, keys: map[string]string{"users": "id"}, columns: map[string][]string{"users": {"visits"}}}
	rng := func(c string, v int64) []string { return core.RangeTags(nil, "users", c, v) }
	ranges := func(changes ...Change) []string {
		return slices.DeleteFunc(changeTags(g, changes), func(t string) bool { return !isRangeTag(t) })
	}
	for _, c := range []struct {
		name string
		ch   Change
		want []string
	}{
		{"insert", Change{Table: "users", Rows: []ChangedRow{{After: map[string]any{"id": 3, "visits": 100}}}},
			slices.Concat(rng("id", 3), rng("visits", 100))},
		{"update", Change{Table: "users", Rows: []ChangedRow{{Before: map[string]any{"id": 3}, After: map[string]any{"id": 3, "visits": nil}}}},
			slices.Concat(rng("id", 3), []string{core.RangeNull("users", "visits")})},
		{"delete", Change{Table: "users", Rows: []ChangedRow{{Before: map[string]any{"id": 3, "visits": 100}}}}, nil},
		{"a value not told", Change{Table: "users", Rows: []ChangedRow{{After: map[string]any{"id": 3}}}},
			slices.Concat(rng("id", 3), []string{core.RangeColumn("users", "visits")})},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ranges(c.ch); !slices.Equal(got, c.want) {
				t.Errorf("range tags\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

// An outside change bumps the member tags of the values it names (which
// columns it changed is not told).
func TestChangeMemberTags(t *testing.T) {
	t.Parallel()
	g := &depGraph{loaded: true, keys: map[string]string{"posts": "id"}, columns: map[string][]string{"posts": {"user_id"}}}
	got := slices.DeleteFunc(changeTags(g, []Change{{Table: "posts", Rows: []ChangedRow{{
		Before: map[string]any{"id": 5, "user_id": 7}, After: map[string]any{"id": 5, "user_id": 8}}}}}), func(t string) bool { return !isMemberTag(t) })
	want := []string{core.MemberTag(core.RowTag("posts", "id", "i5")), core.MemberTag(core.RowTag("posts", "user_id", "i7")), core.MemberTag(core.RowTag("posts", "user_id", "i8"))}
	if !slices.Equal(got, want) {
		t.Errorf("member tags\n got %q\nwant %q", got, want)
	}
}
