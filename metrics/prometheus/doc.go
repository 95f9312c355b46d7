// Package gcprometheus exports a [plugin.Plugin]'s [plugin.Stats] to
// Prometheus. It lives in its own package so that the core of gormcache does
// not import Prometheus.
//
// [NewCollector] returns a [prometheus.Collector] that reads
// [plugin.Plugin.Stats] at each scrape; nothing runs between scrapes:
//
//	reg.MustRegister(gcprometheus.NewCollector(cache))
//
// # Metrics
//
// The metrics are counters (and one gauge, below), prefixed with the
// namespace ("gormcache" unless [Namespace] says otherwise) and carrying the
// [ConstLabels], if any:
//
//	gormcache_hits_total                     queries answered from the cache
//	gormcache_misses_total                   cacheable queries answered by the database
//	gormcache_stores_total                   results stored
//	gormcache_bypasses_total{reason}         statements that neither read nor filled the cache
//	gormcache_invalidations_total            table invalidations (version bumps) sent to the store
//	gormcache_store_errors_total             failed store calls
//	gormcache_corrupt_entries_total          entries that would not decode
//	gormcache_collisions_total               entries that belonged to another query
//	gormcache_catalog_errors_total           failed reads of the database's catalog
//	gormcache_coalesced_total                misses answered by an identical query in flight
//	gormcache_table_hits_total{table}        hits, by table read
//	gormcache_table_misses_total{table}      misses, by table read
//
// The reason label takes the values of [plugin.Stats].Bypasses
// ("transaction", "write", "too_large", …); a reason appears once it has
// been counted.
//
// A query that reads two tables counts for both in the per-table series, so
// they do not add up to the totals. Per-table series are on by default and
// bounded: at most [DefaultMaxTables] tables are exported (see [MaxTables]),
// the busiest ones (hits plus misses), and the gauge
//
//	gormcache_tables_omitted                 tables left out by that cap
//
// says how many were left out. As traffic shifts, a table near the cap may
// enter or leave the exported set. [PerTable](false) turns them all off.
//
// # Ratios
//
// There is no hit-ratio gauge: a ratio of counters is computed in PromQL,
// over the window you choose, and it aggregates correctly across instances.
// The cache's hit ratio over five minutes:
//
//	sum(rate(gormcache_hits_total[5m]))
//	  /
//	(sum(rate(gormcache_hits_total[5m])) + sum(rate(gormcache_misses_total[5m])))
//
// and by table:
//
//	sum by (table) (rate(gormcache_table_hits_total[5m]))
//	  /
//	(sum by (table) (rate(gormcache_table_hits_total[5m])) + sum by (table) (rate(gormcache_table_misses_total[5m])))
//
// # Several plugins
//
// Two plugins exported to one registry need different [ConstLabels] (or
// namespaces); the registry refuses a second collector whose series would
// collide:
//
//	reg.MustRegister(
//		gcprometheus.NewCollector(primary, gcprometheus.ConstLabels(prometheus.Labels{"db": "primary"})),
//		gcprometheus.NewCollector(reports, gcprometheus.ConstLabels(prometheus.Labels{"db": "reports"})),
//	)
package gcprometheus
