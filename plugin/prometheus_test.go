package plugin_test

// The plugin beside gorm.io/plugin/prometheus: its metrics keep being
// collected, and its collectors' queries keep the cache.

import (
	"fmt"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	dto "github.com/prometheus/client_model/go"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	gormprom "gorm.io/plugin/prometheus"
)

// gaugeValue reads a Prometheus gauge.
func gaugeValue(t *testing.T, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// gorm.io/plugin/prometheus exports only sql.DBStats (gorm_dbstats_*
// gauges), refreshed every RefreshInterval through db.DB(): that must keep
// working through the wrapped pool, in both orders, and follow changes.
// (Its optional MetricsCollector for PostgreSQL is tested below.)
//
// Installed first, the prometheus plugin starts its refresh goroutine in
// Initialize, and that goroutine reads db.ConnPool without synchronization,
// which the plugin's Initialize then writes (wrapping the pool): a data
// race under -race, harmless in practice (the first read comes a
// RefreshInterval later) but unavoidable by any plugin that wraps the
// pool. So in that order the refresh is done here, as its goroutine does it
// (prom.DB.DB(), then DBStats.Set), with the goroutine kept idle.
func TestPrometheusDBStatsKeepCollecting(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, cacheFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/cacheFirst=%v", dialect, cacheFirst), func(t *testing.T) {
				t.Parallel()
				db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
				seedAccounts(t, db)
				p := plugin.New(plugin.Config{Logger: quiet})
				prom := gormprom.New(gormprom.Config{DBName: "gormcache_test", RefreshInterval: 1})
				plugins := []gorm.Plugin{p, prom}
				refresh := func() {}
				if !cacheFirst {
					prom = gormprom.New(gormprom.Config{DBName: "gormcache_test", RefreshInterval: 3600})
					plugins = []gorm.Plugin{prom, p}
					refresh = func() {
						sqlDB, err := prom.DB.DB()
						if err != nil {
							t.Fatalf("the prometheus plugin's db.DB(): %v", err)
						}
						prom.DBStats.Set(sqlDB.Stats())
					}
				}
				for _, pl := range plugins {
					if err := db.Use(pl); err != nil {
						t.Fatal(err)
					}
				}
				defer p.Close()
				sqlDB, err := db.DB()
				if err != nil {
					t.Fatalf("db.DB(): %v", err)
				}
				for _, maxOpen := range []int{7, 9} {
					sqlDB.SetMaxOpenConns(maxOpen)
					hits := p.Stats().Hits
					for i := 0; i < 3; i++ {
						account(t, db, 1)
					}
					if p.Stats().Hits < hits+2 {
						t.Fatalf("no hits beside the prometheus plugin: %+v", p.Stats())
					}
					deadline := time.Now().Add(5 * time.Second)
					refresh()
					for gaugeValue(t, prom.DBStats.MaxOpenConnections) != float64(maxOpen) {
						if time.Now().After(deadline) {
							t.Fatalf("gorm_dbstats_max_open_connections = %v, want %d: the plugin stopped collecting", gaugeValue(t, prom.DBStats.MaxOpenConnections), maxOpen)
						}
						time.Sleep(50 * time.Millisecond)
					}
					if open := gaugeValue(t, prom.DBStats.OpenConnections); open < 1 {
						t.Fatalf("gorm_dbstats_open_connections = %v after queries", open)
					}
				}
			})
		}
	}
}

// Regression (fixed): gorm.io/plugin/prometheus's PostgreSQL
// MetricsCollector runs, at Initialize and then every RefreshInterval,
// read-only monitoring queries that call pg_last_xact_replay_timestamp(),
// pg_database_size() and query_to_xml()/xpath(). The plugin classifies those
// functions as unknown and so treats each query as a write to everything: a
// global bump, so every cached entry is dropped on each collection.
func TestPrometheusPostgresCollectorKeepsCache(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	account(t, db, 1)
	account(t, db, 1)
	if p.Stats().Hits != 1 {
		t.Fatalf("no hit before the collector: %+v", p.Stats())
	}
	// A long interval: only the collection Initialize runs happens.
	prom := gormprom.New(gormprom.Config{
		DBName:           "gormcache_bug",
		RefreshInterval:  3600,
		MetricsCollector: []gormprom.MetricsCollector{&gormprom.Postgres{}},
	})
	inv := p.Stats().Invalidations
	if err := db.Use(prom); err != nil {
		t.Fatal(err)
	}
	hits := p.Stats().Hits
	account(t, db, 1)
	if st := p.Stats(); st.Hits != hits+1 {
		t.Errorf("after one collection of the prometheus PostgreSQL collector the cached entry is gone "+
			"(%d invalidations by its read-only queries; bypasses %v)", st.Invalidations-inv, st.Bypasses)
	}
}
