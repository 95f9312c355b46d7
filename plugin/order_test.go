package plugin_test

// Registration order does not matter: the plugin installed before or after
// dbresolver, OpenTelemetry tracing or Prometheus.

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/tracing/gcotel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	gormprom "gorm.io/plugin/prometheus"
)

// orderScenario runs the same statements on db and returns what they read.
func orderScenario(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var out []string
	note := func(what string, err error, v any) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		out = append(out, fmt.Sprintf("%s: %+v", what, v))
	}
	first := func(what string, id uint) {
		t.Helper()
		var a Account
		err := db.First(&a, id).Error
		note(what, err, a)
	}
	find := func(what string) {
		t.Helper()
		var all []Account
		err := db.Order("id").Find(&all).Error
		note(what, err, all)
	}

	created := Account{Owner: "owner6", Balance: 60}
	note("create", db.Create(&created).Error, created)
	first("first 1", 1)
	first("first 1 again", 1)
	first("first created", created.ID)
	find("find")
	find("find again")
	note("update 1", db.Model(&Account{ID: 1}).Update("balance", 111).Error, nil)
	first("first 1 after update", 1)
	first("first 1 after update, again", 1)
	find("find after update")

	first("first 2", 2)
	first("first 2 again", 2)
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Account{ID: 2}).Update("balance", 222).Error; err != nil {
			return err
		}
		var in Account
		err := tx.First(&in, 2).Error
		note("inside transaction", err, in)
		first("outside open transaction", 2)
		first("outside open transaction, again", 2)
		return nil
	})
	note("transaction", err, nil)
	first("first 2 after commit", 2)
	first("first 2 after commit, again", 2)

	var n int64
	err = db.Model(&Account{}).Count(&n).Error
	note("count", err, n)
	for _, what := range []string{"raw sum", "raw sum again"} {
		var sum int64
		err := db.Raw("SELECT SUM(balance) FROM accounts").Scan(&sum).Error
		note(what, err, sum)
	}
	note("delete created", db.Delete(&Account{}, created.ID).Error, nil)
	find("find after delete")
	return out
}

type orderRun struct {
	transcript []string
	stats      plugin.Stats // zero without the cache
	extra      []string     // what the other plugin saw
}

// TestPluginOrder: db.Use of the plugin before or after dbresolver,
// OpenTelemetry tracing or Prometheus gives the results the other plugin
// alone gives, with the same hits in both orders.
func TestPluginOrder(t *testing.T) {
	t.Parallel()
	others := []string{"dbresolver", "opentelemetry", "prometheus"}
	for _, dialect := range testdb.Dialects {
		for _, other := range others {
			t.Run(dialect+"/"+other, func(t *testing.T) {
				t.Parallel()
				setups := []string{"alone", "cache first", "cache after"}
				runs := make([]orderRun, len(setups))
				t.Run("runs", func(t *testing.T) {
					for i, setup := range setups {
						t.Run(setup, func(t *testing.T) {
							t.Parallel()
							runs[i] = runOrder(t, dialect, other, setup)
						})
					}
				})
				if t.Failed() {
					return
				}
				base := runs[0]
				for i, r := range runs[1:] {
					setup := setups[i+1]
					if !reflect.DeepEqual(r.transcript, base.transcript) {
						t.Errorf("%s: results differ from %s alone:\n got %q\nwant %q", setup, other, r.transcript, base.transcript)
					}
					if !reflect.DeepEqual(r.extra, base.extra) {
						t.Errorf("%s: %s saw %q, alone %q", setup, other, r.extra, base.extra)
					}
					if r.stats.Hits == 0 {
						t.Errorf("%s: no hits: %+v", setup, r.stats)
					}
				}
				a, b := runs[1].stats, runs[2].stats
				if a.Hits != b.Hits || a.Misses != b.Misses || a.Stores != b.Stores {
					t.Errorf("hits/misses/stores depend on the order: cache first %d/%d/%d, cache after %d/%d/%d",
						a.Hits, a.Misses, a.Stores, b.Hits, b.Misses, b.Stores)
				}
			})
		}
	}
}

func runOrder(t *testing.T, dialect, other, setup string) orderRun {
	t.Helper()
	driverName, dsn := freshDSN(t, dialect)
	db, err := gorm.Open(dialectorFor(dialect, dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	seedAccounts(t, db)

	var (
		otherPlugin gorm.Plugin
		replica     *userPool
		spans       spanWatch
		prom        *gormprom.Prometheus
	)
	switch other {
	case "dbresolver":
		// A replica that is the same database, through a counting pool.
		replica = &userPool{db: openSQL(t, driverName, dsn)}
		otherPlugin = dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{connDialector(dialect, replica)}})
	case "opentelemetry":
		otherPlugin, spans = newTracing(t)
	case "prometheus":
		prom = gormprom.New(gormprom.Config{DBName: "gormcache_order", RefreshInterval: 3600})
		otherPlugin = prom
	}
	p := plugin.New(plugin.Config{Logger: quiet, OnHit: gcotel.OnHit, ReplicaWindow: replicaWindow})
	t.Cleanup(func() { p.Close() })
	var plugins []gorm.Plugin
	switch setup {
	case "alone":
		plugins = []gorm.Plugin{otherPlugin}
	case "cache first":
		plugins = []gorm.Plugin{p, otherPlugin}
	case "cache after":
		plugins = []gorm.Plugin{otherPlugin, p}
	}
	for _, pl := range plugins {
		if err := db.Use(pl); err != nil {
			t.Fatalf("Use(%s): %v", pl.Name(), err)
		}
	}

	var replicaReads int64
	if replica != nil {
		replicaReads = replica.reads.Load()
	}
	var run orderRun
	var scenarioSpans []sdktrace.ReadOnlySpan
	if spans.rec != nil {
		scenarioSpans = spans.during(func() { run.transcript = orderScenario(t, db) })
	} else {
		run.transcript = orderScenario(t, db)
	}
	if setup != "alone" {
		run.stats = p.Stats()
	}

	switch other {
	case "dbresolver":
		if replica.reads.Load() == replicaReads {
			t.Errorf("no read reached the replica")
		}
		if replica.execs.Load() != 0 {
			t.Errorf("%d writes reached the replica", replica.execs.Load())
		}
	case "opentelemetry":
		hits := 0
		for _, s := range scenarioSpans {
			run.extra = append(run.extra, s.Name())
			if spanHit(s) {
				hits++
			}
		}
		if uint64(hits) != run.stats.Hits {
			t.Errorf("%d spans marked as hits, %d hits", hits, run.stats.Hits)
		}
	case "prometheus":
		if prom.DB == nil || prom.DBStats == nil {
			t.Fatal("prometheus plugin not initialized")
		}
		sqlDB, err := prom.DB.DB()
		if err != nil || sqlDB.PingContext(context.Background()) != nil {
			t.Errorf("the prometheus plugin's db.DB(): %v", err)
		}
	}
	return run
}
