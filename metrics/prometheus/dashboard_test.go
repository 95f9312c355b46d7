package gcprometheus_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	gcprometheus "github.com/gormcache/gormcache/metrics/prometheus"
	"github.com/gormcache/gormcache/plugin"
)

// TestDashboard checks dashboard.json against a real collector: every
// PromQL expression in it (panel queries and template variables) names
// metrics, and only metrics that the collector, registered on a registry
// and gathered after some traffic, exports; and every label it matches or
// groups by is one those metrics carry (or job and instance, which the
// scrape adds).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	exprs := promQL(dash)
	if len(exprs) < 10 {
		t.Fatalf("dashboard.json: %d expressions found", len(exprs))
	}

	db, p := cachedDB(t)
	find[Widget](t, db, 2) // a miss, a hit: per-table metrics too
	var w []Widget
	db.Clauses(plugin.Skip()).Find(&w) // a bypass: the reason label
	reg := register(t, gcprometheus.NewCollector(p))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string][]string{} // metric → its labels
	for _, f := range families {
		labels := []string{"job", "instance"}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		exported[f.GetName()] = labels
	}

	for _, e := range exprs {
		names, labels := parsePromQL(e)
		if len(names) == 0 {
			t.Errorf("%q names no metric", e)
		}
		var allowed []string
		for _, n := range names {
			l, ok := exported[n]
			if !ok {
				t.Errorf("%q: the collector exports no metric %s", e, n)
			}
			allowed = append(allowed, l...)
		}
		for _, l := range labels {
			if !slices.Contains(allowed, l) {
				t.Errorf("%q: label %q is on none of its metrics %v", e, l, names)
			}
		}
	}
}

// promQL returns the expressions of a dashboard: each target's expr, and
// each query variable's query.
func promQL(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["expr"].(string); ok {
			out = append(out, e)
		}
		if x["type"] == "query" {
			if q, ok := x["query"].(string); ok {
				out = append(out, q)
			}
		}
		for _, c := range x {
			out = append(out, promQL(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, promQL(c)...)
		}
	}
	return out
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValues  = regexp.MustCompile(`^label_values\(\s*([^,]+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
)

// promKeywords are the PromQL words that are not metric names.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true,
}

// parsePromQL returns the metric names an expression selects and the
// label names it matches or groups by. It knows the PromQL the dashboard
// uses: selectors with matchers, ranges, functions and aggregations with
// by (…), arithmetic, and Grafana's label_values(selector, label).
func parsePromQL(e string) (names, labels []string) {
	if m := labelValues.FindStringSubmatch(strings.TrimSpace(e)); m != nil {
		n, l := parsePromQL(m[1])
		return n, append(l, m[2])
	}
	e = promString.ReplaceAllString(e, `""`)
	for _, m := range promMatchers.FindAllString(e, -1) {
		for _, mm := range promMatcher.FindAllStringSubmatch(m, -1) {
			labels = append(labels, mm[1])
		}
	}
	e = promMatchers.ReplaceAllString(e, " ")
	for _, g := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	e = promGrouping.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " ")
		if promKeywords[id] || strings.HasPrefix(rest, "(") || loc[0] > 0 && e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' {
			continue // a keyword, a function or aggregation, or part of a number
		}
		if !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names, labels
}

// TestParsePromQL checks the parser the dashboard test relies on, on
// expressions it must reject too.
func TestParsePromQL(t *testing.T) {
	names, labels := parsePromQL(`sum by (table) (rate(gormcache_table_hits_total{job=~"$job", x!="a}b"}[$__rate_interval])) / topk(10, gormcache_nope) + 2e3`)
	if !slices.Equal(names, []string{"gormcache_table_hits_total", "gormcache_nope"}) || !slices.Equal(labels, []string{"job", "x", "table"}) {
		t.Errorf("names %v, labels %v", names, labels)
	}
	names, labels = parsePromQL(`label_values(gormcache_hits_total{job=~"$job"}, instance)`)
	if !slices.Equal(names, []string{"gormcache_hits_total"}) || !slices.Equal(labels, []string{"job", "instance"}) {
		t.Errorf("label_values: names %v, labels %v", names, labels)
	}
}
