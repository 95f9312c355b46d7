package gcprometheus_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	gcprometheus "github.com/gormcache/gormcache/metrics/prometheus"
	"github.com/gormcache/gormcache/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type Widget struct {
	ID   uint
	Name string
}

type Gadget struct {
	ID   uint
	Name string
}

type Gizmo struct {
	ID   uint
	Name string
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cachedDB opens a fresh SQLite database with a few rows in three tables
// and installs a new plugin on it.
func cachedDB(t *testing.T) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	if err := db.AutoMigrate(&Widget{}, &Gadget{}, &Gizmo{}); err != nil {
		t.Fatal(err)
	}
	for _, rows := range []any{
		&[]Widget{{Name: "w1"}, {Name: "w2"}},
		&[]Gadget{{Name: "g1"}},
		&[]Gizmo{{Name: "z1"}},
	} {
		if err := db.Create(rows).Error; err != nil {
			t.Fatal(err)
		}
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return db, p
}

// find runs the same cacheable query n times on the table of model.
func find[T any](t *testing.T, db *gorm.DB, n int) {
	t.Helper()
	for range n {
		var rows []T
		if err := db.Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// register registers c in a fresh registry.
func register(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return reg
}

// workload: widgets 1 miss + 2 hits, gadgets 1 miss + 1 hit, gizmos 1 miss;
// 2 skipped reads; 1 read in a transaction; 1 update of widgets (which the
// plugin counts as 2 invalidations: it bumps the table before the write and
// again when it ends).
func workload(t *testing.T, db *gorm.DB) {
	t.Helper()
	find[Widget](t, db, 3)
	find[Gadget](t, db, 2)
	find[Gizmo](t, db, 1)
	var ws []Widget
	db.Clauses(plugin.Skip()).Find(&ws)
	db.Clauses(plugin.Skip()).Find(&ws)
	err := db.Transaction(func(tx *gorm.DB) error {
		var gs []Gadget
		return tx.Find(&gs).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&Widget{}).Where("id = ?", 1).Update("name", "w1'").Error; err != nil {
		t.Fatal(err)
	}
}

func TestCollectorExportsStats(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t)
	reg := register(t, gcprometheus.NewCollector(p))
	workload(t, db)

	want := `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total 3
# HELP gormcache_misses_total Cacheable queries answered by the database.
# TYPE gormcache_misses_total counter
gormcache_misses_total 3
# HELP gormcache_stores_total Query results stored in the cache.
# TYPE gormcache_stores_total counter
gormcache_stores_total 3
# HELP gormcache_bypasses_total Statements that neither read nor filled the cache, by reason.
# TYPE gormcache_bypasses_total counter
gormcache_bypasses_total{reason="skip"} 2
gormcache_bypasses_total{reason="transaction"} 1
# HELP gormcache_invalidations_total Table invalidations (version bumps) sent to the store.
# TYPE gormcache_invalidations_total counter
gormcache_invalidations_total 2
# HELP gormcache_store_errors_total Failed store calls (each one served from the database).
# TYPE gormcache_store_errors_total counter
gormcache_store_errors_total 0
# HELP gormcache_corrupt_entries_total Cache entries that would not decode (treated as misses).
# TYPE gormcache_corrupt_entries_total counter
gormcache_corrupt_entries_total 0
# HELP gormcache_collisions_total Cache entries found under a query's key that belonged to another query (treated as misses).
# TYPE gormcache_collisions_total counter
gormcache_collisions_total 0
# HELP gormcache_catalog_errors_total Failed reads of the database's foreign keys, views and triggers.
# TYPE gormcache_catalog_errors_total counter
gormcache_catalog_errors_total 0
# HELP gormcache_coalesced_total Misses answered by an identical query already running.
# TYPE gormcache_coalesced_total counter
gormcache_coalesced_total 0
# HELP gormcache_table_hits_total Cache hits by table read (a query reading two tables counts for both).
# TYPE gormcache_table_hits_total counter
gormcache_table_hits_total{table="gadgets"} 1
gormcache_table_hits_total{table="gizmos"} 0
gormcache_table_hits_total{table="widgets"} 2
# HELP gormcache_table_misses_total Cache misses by table read (a query reading two tables counts for both).
# TYPE gormcache_table_misses_total counter
gormcache_table_misses_total{table="gadgets"} 1
gormcache_table_misses_total{table="gizmos"} 1
gormcache_table_misses_total{table="widgets"} 1
# HELP gormcache_tables_omitted Tables not exported per table because of the collector's table cap.
# TYPE gormcache_tables_omitted gauge
gormcache_tables_omitted 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// Read at scrape time: one more hit shows in the next scrape.
	find[Gizmo](t, db, 1)
	const again = `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(again), "gormcache_hits_total"); err != nil {
		t.Fatal(err)
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
}

// The exported values are those of Plugin.Stats, whatever the workload.
func TestCollectorMatchesStats(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t)
	c := gcprometheus.NewCollector(p, gcprometheus.PerTable(false))
	register(t, c)
	workload(t, db)
	st := p.Stats()
	for name, want := range map[string]uint64{
		"gormcache_hits_total":            st.Hits,
		"gormcache_misses_total":          st.Misses,
		"gormcache_stores_total":          st.Stores,
		"gormcache_invalidations_total":   st.Invalidations,
		"gormcache_store_errors_total":    st.StoreErrors,
		"gormcache_corrupt_entries_total": st.CorruptEntries,
		"gormcache_collisions_total":      st.Collisions,
		"gormcache_catalog_errors_total":  st.CatalogErrors,
		"gormcache_coalesced_total":       st.Coalesced,
	} {
		if got := testutil.ToFloat64(only(c, name)); got != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}
}

// only narrows c to the metrics named name, for testutil.ToFloat64.
func only(c prometheus.Collector, name string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		all := make(chan prometheus.Metric)
		go func() { c.Collect(all); close(all) }()
		for m := range all {
			if strings.Contains(m.Desc().String(), `fqName: "`+name+`"`) {
				ch <- m
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestCollectorOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts []gcprometheus.Option
		want string // exposition of the metrics named in it
	}{
		{
			name: "namespace",
			opts: []gcprometheus.Option{gcprometheus.Namespace("app_cache")},
			want: `
# HELP app_cache_hits_total Queries answered from the cache.
# TYPE app_cache_hits_total counter
app_cache_hits_total 2
# HELP app_cache_table_hits_total Cache hits by table read (a query reading two tables counts for both).
# TYPE app_cache_table_hits_total counter
app_cache_table_hits_total{table="gadgets"} 1
app_cache_table_hits_total{table="gizmos"} 0
app_cache_table_hits_total{table="widgets"} 1
`,
		},
		{
			name: "empty namespace is the default",
			opts: []gcprometheus.Option{gcprometheus.Namespace("")},
			want: `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total 2
`,
		},
		{
			name: "const labels",
			opts: []gcprometheus.Option{
				gcprometheus.ConstLabels(prometheus.Labels{"db": "primary"}),
				gcprometheus.ConstLabels(prometheus.Labels{"region": "eu"}),
			},
			want: `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total{db="primary",region="eu"} 2
# HELP gormcache_table_misses_total Cache misses by table read (a query reading two tables counts for both).
# TYPE gormcache_table_misses_total counter
gormcache_table_misses_total{db="primary",region="eu",table="gadgets"} 1
gormcache_table_misses_total{db="primary",region="eu",table="gizmos"} 1
gormcache_table_misses_total{db="primary",region="eu",table="widgets"} 1
`,
		},
		{
			name: "per table off",
			opts: []gcprometheus.Option{gcprometheus.PerTable(false)},
			want: `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total 2
`,
		},
		{
			name: "max tables keeps the busiest",
			opts: []gcprometheus.Option{gcprometheus.MaxTables(2)},
			want: `
# HELP gormcache_table_hits_total Cache hits by table read (a query reading two tables counts for both).
# TYPE gormcache_table_hits_total counter
gormcache_table_hits_total{table="gadgets"} 1
gormcache_table_hits_total{table="widgets"} 1
# HELP gormcache_table_misses_total Cache misses by table read (a query reading two tables counts for both).
# TYPE gormcache_table_misses_total counter
gormcache_table_misses_total{table="gadgets"} 1
gormcache_table_misses_total{table="widgets"} 1
# HELP gormcache_tables_omitted Tables not exported per table because of the collector's table cap.
# TYPE gormcache_tables_omitted gauge
gormcache_tables_omitted 1
`,
		},
		{
			name: "max tables 0 is the default",
			opts: []gcprometheus.Option{gcprometheus.MaxTables(0)},
			want: `
# HELP gormcache_tables_omitted Tables not exported per table because of the collector's table cap.
# TYPE gormcache_tables_omitted gauge
gormcache_tables_omitted 0
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t)
			reg := register(t, gcprometheus.NewCollector(p, tc.opts...))
			find[Widget](t, db, 2)
			find[Gadget](t, db, 2)
			find[Gizmo](t, db, 1)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want), names(tc.want)...); err != nil {
				t.Fatal(err)
			}
			problems, err := testutil.GatherAndLint(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range problems {
				t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
			}
		})
	}
}

// names lists the metric families named in an exposition's TYPE lines.
func names(exposition string) []string {
	var out []string
	for _, line := range strings.Split(exposition, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out
}

func TestPerTableOffExportsNoTableSeries(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t)
	reg := register(t, gcprometheus.NewCollector(p, gcprometheus.PerTable(false)))
	workload(t, db)
	n, err := testutil.GatherAndCount(reg, "gormcache_table_hits_total", "gormcache_table_misses_total", "gormcache_tables_omitted")
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d per-table series with PerTable(false), want 0", n)
	}
}

// Two plugins go in one registry when their const labels differ, and not
// when they do not.
func TestConstLabelsTellPluginsApart(t *testing.T) {
	t.Parallel()
	_, p1 := cachedDB(t)
	_, p2 := cachedDB(t)
	reg := prometheus.NewPedanticRegistry()
	label := func(v string) gcprometheus.Option {
		return gcprometheus.ConstLabels(prometheus.Labels{"db": v})
	}
	if err := reg.Register(gcprometheus.NewCollector(p1, label("primary"))); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(gcprometheus.NewCollector(p2, label("reports"))); err != nil {
		t.Fatalf("second plugin with other labels: %v", err)
	}
	err := reg.Register(gcprometheus.NewCollector(p2, label("reports")))
	if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
		t.Fatalf("same labels again: err = %v, want AlreadyRegisteredError", err)
	}
	if n, err := testutil.GatherAndCount(reg, "gormcache_hits_total"); err != nil || n != 2 {
		t.Fatalf("gormcache_hits_total: %d series, %v; want 2", n, err)
	}
}

// Invalid options are errors from Register, never panics.
func TestInvalidOptionsFailRegister(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opt  gcprometheus.Option
	}{
		{"namespace", gcprometheus.Namespace("cache\xff")},
		{"reserved label name", gcprometheus.ConstLabels(prometheus.Labels{"__db": "x"})},
		{"label value", gcprometheus.ConstLabels(prometheus.Labels{"db": "\xff"})},
		{"label table", gcprometheus.ConstLabels(prometheus.Labels{"table": "x"})},
		{"label reason", gcprometheus.ConstLabels(prometheus.Labels{"reason": "x"})},
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(gcprometheus.NewCollector(p, tc.opt)); err == nil {
				t.Fatal("Register succeeded")
			}
		})
	}
}

// A plugin not yet installed exports zeros.
func TestCollectorBeforeInitialize(t *testing.T) {
	t.Parallel()
	p := plugin.New(plugin.Config{Logger: quiet})
	reg := register(t, gcprometheus.NewCollector(p))
	const want = `
# HELP gormcache_hits_total Queries answered from the cache.
# TYPE gormcache_hits_total counter
gormcache_hits_total 0
# HELP gormcache_tables_omitted Tables not exported per table because of the collector's table cap.
# TYPE gormcache_tables_omitted gauge
gormcache_tables_omitted 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names(want)...); err != nil {
		t.Fatal(err)
	}
}
