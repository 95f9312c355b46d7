package gcprometheus

import (
	"cmp"
	"slices"

	"github.com/gormcache/gormcache/plugin"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace prefixes every metric's name unless [Namespace] says otherwise.
const DefaultNamespace = "gormcache"

// DefaultMaxTables is the number of tables exported per table unless
// [MaxTables] says otherwise.
const DefaultMaxTables = 500

// An Option configures [NewCollector].
type Option func(*options)

type options struct {
	namespace   string
	constLabels prometheus.Labels
	perTable    bool
	maxTables   int
}

// Namespace prefixes the metrics' names with ns instead of [DefaultNamespace]
// ("app_cache" gives app_cache_hits_total). An empty ns means the default. A
// namespace that does not make valid metric names is reported when the
// collector is registered.
func Namespace(ns string) Option {
	return func(o *options) { o.namespace = ns }
}

// ConstLabels adds labels with fixed values to every series, to tell apart
// several plugins exported to one registry. Labels are added to those of
// earlier ConstLabels options. Invalid labels (a name beginning "__", a
// value that is not UTF-8), and the names "reason" and "table", are reported
// when the collector is registered.
func ConstLabels(labels prometheus.Labels) Option {
	return func(o *options) {
		if o.constLabels == nil {
			o.constLabels = prometheus.Labels{}
		}
		for k, v := range labels {
			o.constLabels[k] = v
		}
	}
}

// PerTable turns the per-table series (gormcache_table_hits_total and
// gormcache_table_misses_total, and the gauge gormcache_tables_omitted) on
// or off. They are on by default.
func PerTable(on bool) Option {
	return func(o *options) { o.perTable = on }
}

// MaxTables caps the tables exported per table at n, to bound the number of
// series: past n tables, the n with the most hits plus misses are exported
// and gormcache_tables_omitted counts the others. n ≤ 0 means
// [DefaultMaxTables].
func MaxTables(n int) Option {
	return func(o *options) { o.maxTables = n }
}

// collector is a checked collector: every metric it may send has a fixed
// descriptor (label values vary, label names do not), so Describe lists them
// all and the registry can verify, at registration, that two collectors do
// not export the same series, that names and labels are valid, and, at each
// scrape, that what Collect sends matches.
type collector struct {
	p        *plugin.Plugin
	perTable bool
	max      int

	hits, misses, stores, bypasses, invalidations, storeErrors, corrupt,
	collisions, catalogErrors, coalesced, tableHits, tableMisses, tablesOmitted *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// NewCollector returns a collector of p's [plugin.Stats], read at each
// scrape. p must not be nil; it may be installed before or after the
// collector is registered.
func NewCollector(p *plugin.Plugin, opts ...Option) prometheus.Collector {
	o := options{namespace: DefaultNamespace, perTable: true, maxTables: DefaultMaxTables}
	for _, opt := range opts {
		opt(&o)
	}
	if o.namespace == "" {
		o.namespace = DefaultNamespace
	}
	if o.maxTables <= 0 {
		o.maxTables = DefaultMaxTables
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "", name), help, labels, o.constLabels)
	}
	return &collector{
		p:        p,
		perTable: o.perTable,
		max:      o.maxTables,

		hits:          desc("hits_total", "Queries answered from the cache."),
		misses:        desc("misses_total", "Cacheable queries answered by the database."),
		stores:        desc("stores_total", "Query results stored in the cache."),
		bypasses:      desc("bypasses_total", "Statements that neither read nor filled the cache, by reason.", "reason"),
		invalidations: desc("invalidations_total", "Table invalidations (version bumps) sent to the store."),
		storeErrors:   desc("store_errors_total", "Failed store calls (each one served from the database)."),
		corrupt:       desc("corrupt_entries_total", "Cache entries that would not decode (treated as misses)."),
		collisions:    desc("collisions_total", "Cache entries found under a query's key that belonged to another query (treated as misses)."),
		catalogErrors: desc("catalog_errors_total", "Failed reads of the database's foreign keys, views and triggers."),
		coalesced:     desc("coalesced_total", "Misses answered by an identical query already running."),
		tableHits:     desc("table_hits_total", "Cache hits by table read (a query reading two tables counts for both).", "table"),
		tableMisses:   desc("table_misses_total", "Cache misses by table read (a query reading two tables counts for both).", "table"),
		tablesOmitted: desc("tables_omitted", "Tables not exported per table because of the collector's table cap."),
	}
}

// Describe implements [prometheus.Collector].
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.hits, c.misses, c.stores, c.bypasses, c.invalidations, c.storeErrors,
		c.corrupt, c.collisions, c.catalogErrors, c.coalesced,
	} {
		ch <- d
	}
	if c.perTable {
		ch <- c.tableHits
		ch <- c.tableMisses
		ch <- c.tablesOmitted
	}
}

// Collect implements [prometheus.Collector]. It takes one snapshot of the
// plugin's statistics per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	send := func(d *prometheus.Desc, t prometheus.ValueType, v uint64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, float64(v), labels...)
		if err != nil { // an invalid option: the registry reports it
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		send(d, prometheus.CounterValue, v, labels...)
	}
	counter(c.hits, st.Hits)
	counter(c.misses, st.Misses)
	counter(c.stores, st.Stores)
	for reason, n := range st.Bypasses {
		counter(c.bypasses, n, string(reason))
	}
	counter(c.invalidations, st.Invalidations)
	counter(c.storeErrors, st.StoreErrors)
	counter(c.corrupt, st.CorruptEntries)
	counter(c.collisions, st.Collisions)
	counter(c.catalogErrors, st.CatalogErrors)
	counter(c.coalesced, st.Coalesced)
	if !c.perTable {
		return
	}
	tables := c.busiest(st.Tables)
	for _, t := range tables {
		ts := st.Tables[t]
		counter(c.tableHits, ts.Hits, t)
		counter(c.tableMisses, ts.Misses, t)
	}
	send(c.tablesOmitted, prometheus.GaugeValue, uint64(len(st.Tables)-len(tables)))
}

// busiest returns the names of the tables to export: all of them, or past
// the cap the c.max with the most hits plus misses (ties by name, so that
// the choice is stable between scrapes).
func (c *collector) busiest(tables map[string]plugin.TableStats) []string {
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	if len(names) <= c.max {
		return names
	}
	slices.SortFunc(names, func(a, b string) int {
		ta, tb := tables[a], tables[b]
		if r := cmp.Compare(tb.Hits+tb.Misses, ta.Hits+ta.Misses); r != 0 {
			return r
		}
		return cmp.Compare(a, b)
	})
	return names[:c.max]
}
