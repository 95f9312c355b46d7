package plugin_test

// The plugin beside gorm.io/plugin/dbresolver: initialized again on its
// sources and replicas, and its transactions.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// replicaWindow is the Config.ReplicaWindow of the tests with dbresolver:
// its replica is the source itself, never behind. A result read through a
// replica is still not stored by the first read after its tables' versions
// changed (that read records when the version was first seen), only from
// the next one.
const replicaWindow = time.Nanosecond

// warmRead reads account id until the cache answers it (at most four
// reads) and returns its balance; every read must agree.
func warmRead(t *testing.T, db *gorm.DB, p *plugin.Plugin, id uint) int64 {
	t.Helper()
	want := int64(-1)
	for i := 0; i < 4; i++ {
		hits := p.Stats().Hits
		b := balanceOf(t, db, id)
		if want >= 0 && b != want {
			t.Fatalf("account %d: balance %d, then %d", id, want, b)
		}
		want = b
		if p.Stats().Hits == hits+1 {
			return b
		}
	}
	t.Fatalf("account %d: four reads, no hit (%+v)", id, p.Stats())
	return 0
}

// initSpy records every *gorm.DB the plugin is initialized on.
type initSpy struct {
	*plugin.Plugin
	mu  sync.Mutex
	dbs []*gorm.DB
}

func (s *initSpy) Initialize(db *gorm.DB) error {
	s.mu.Lock()
	s.dbs = append(s.dbs, db)
	s.mu.Unlock()
	return s.Plugin.Initialize(db)
}

// wrappedPool reports whether db's pool is the plugin's (under PrepareStmt's
// wrapper, if any).
func wrappedPool(db *gorm.DB) bool {
	pool := db.ConnPool
	if ps, ok := pool.(*gorm.PreparedStmtDB); ok {
		pool = ps.ConnPool
	}
	return fmt.Sprintf("%T", pool) == "*plugin.rootPool"
}

// dbresolver opens its sources and replicas with a copy of the Config,
// Plugins included: installed first, the plugin is initialized again on
// each, safely; reads go to the replica and are cached, writes go to the
// source and invalidate what was read through the replica; transactions
// begun on a replica's *gorm.DB are the plugin's.
func TestDBResolverReinitializes(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, prepare := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/PrepareStmt=%v", dialect, prepare), func(t *testing.T) {
				t.Parallel()
				driverName, dsn := freshDSN(t, dialect)
				db, err := gorm.Open(dialectorFor(dialect, dsn), &gorm.Config{Logger: logger.Discard, PrepareStmt: prepare})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if sqlDB, err := db.DB(); err == nil {
						sqlDB.Close()
					}
				})
				seedAccounts(t, db)
				spy := &initSpy{Plugin: plugin.New(plugin.Config{Logger: quiet, ReplicaWindow: replicaWindow})}
				if err := db.Use(spy); err != nil {
					t.Fatal(err)
				}
				defer spy.Close()
				source := &userPool{db: openSQL(t, driverName, dsn)}
				replica := &userPool{db: openSQL(t, driverName, dsn)}
				resolver := dbresolver.Register(dbresolver.Config{
					Sources:  []gorm.Dialector{connDialector(dialect, source)},
					Replicas: []gorm.Dialector{connDialector(dialect, replica)},
				})
				if err := db.Use(resolver); err != nil {
					t.Fatal(err)
				}
				spy.mu.Lock()
				dbs := append([]*gorm.DB(nil), spy.dbs...)
				spy.mu.Unlock()
				if len(dbs) != 3 {
					t.Fatalf("Initialize ran on %d *gorm.DB, want 3 (main, source, replica)", len(dbs))
				}
				for i, d := range dbs {
					if !wrappedPool(d) {
						t.Errorf("db %d: pool %T not wrapped", i, d.ConnPool)
					}
					if d.Callback().Query().Get("gormcache:installed") == nil {
						t.Errorf("db %d: callbacks not installed", i)
					}
					if err := spy.Plugin.Initialize(d); err != nil { // once more
						t.Errorf("db %d: Initialize again: %v", i, err)
					}
				}
				p := spy.Plugin

				// Reads through the replica: misses reach it, a hit does not.
				r0 := replica.reads.Load()
				if b := warmRead(t, db, p, 1); b != 10 {
					t.Fatalf("balance %d, want 10", b)
				}
				if !prepare && replica.reads.Load() == r0 {
					t.Fatalf("no read reached the replica")
				}
				r1, hits := replica.reads.Load()+replica.prepares.Load(), p.Stats().Hits
				balanceOf(t, db, 1)
				if p.Stats().Hits != hits+1 || replica.reads.Load()+replica.prepares.Load() != r1 {
					t.Fatalf("read of a cached row: hits %d→%d, replica calls %d→%d; want a hit off the replica",
						hits, p.Stats().Hits, r1, replica.reads.Load()+replica.prepares.Load())
				}

				// A write goes to the source, and invalidates.
				w0 := source.execs.Load() + source.reads.Load() + source.prepares.Load()
				if err := db.Model(&Account{ID: 1}).Update("balance", 101).Error; err != nil {
					t.Fatal(err)
				}
				if source.execs.Load()+source.reads.Load()+source.prepares.Load() == w0 {
					t.Fatalf("the write did not reach the source")
				}
				if replica.execs.Load() != 0 {
					t.Fatalf("a write reached the replica")
				}
				if b := warmRead(t, db, p, 1); b != 101 {
					t.Fatalf("read through the replica after a write to the source: %d, want 101", b)
				}

				// Straight on the replica's *gorm.DB: re-initialized once only
				// (one miss, one hit), and its transactions are the plugin's.
				rdb := dbs[2]
				st := p.Stats()
				warmRead(t, rdb, p, 2)
				if s := p.Stats(); s.Hits != st.Hits+1 {
					t.Fatalf("on the replica's DB: hits %d→%d; want +1", st.Hits, s.Hits)
				}
				err = rdb.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Account{ID: 2}).Update("balance", 202).Error; err != nil {
						return err
					}
					if b := balanceOf(t, db, 2); b != 20 {
						t.Errorf("outside the replica DB's open transaction: %d, want 20", b)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if b := warmRead(t, db, p, 2); b != 202 {
					t.Fatalf("after the replica DB's transaction: %d, want 202", b)
				}
			})
		}
	}
}

// writeClauseTransaction: with the plugin and dbresolver installed in the
// given order, account 3 is updated in a transaction begun through
// dbresolver (db.Clauses(dbresolver.Write)); reads outside see the old
// balance until commit and the new one right after. It reports whether the
// account is cached again within a few reads after the commit.
func writeClauseTransaction(t *testing.T, dialect string, cacheFirst bool) (cachedAgain bool, p *plugin.Plugin) {
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
	p = plugin.New(plugin.Config{Logger: quiet, ReplicaWindow: replicaWindow})
	t.Cleanup(func() { p.Close() })
	resolver := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{connDialector(dialect, &userPool{db: openSQL(t, driverName, dsn)})}})
	plugins := []gorm.Plugin{p, resolver}
	if !cacheFirst {
		plugins = []gorm.Plugin{resolver, p}
	}
	for _, pl := range plugins {
		if err := db.Use(pl); err != nil {
			t.Fatal(err)
		}
	}
	warmRead(t, db, p, 3)
	err = db.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Account{ID: 3}).Update("balance", 303).Error; err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if b := balanceOf(t, db, 3); b != 30 {
				t.Errorf("outside the open transaction: %d, want 30", b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hits := p.Stats().Hits
	for i := 0; i < 4 && p.Stats().Hits == hits; i++ {
		if b := balanceOf(t, db, 3); b != 303 {
			t.Fatalf("after commit: %d, want 303", b)
		}
	}
	return p.Stats().Hits > hits, p
}

// A transaction begun through dbresolver is correct in both orders; with
// the plugin installed first (its pool is what dbresolver captures), the
// transaction is the plugin's and the row is cached again after commit.
func TestDBResolverWriteTransactionOrders(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, cacheFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/cacheFirst=%v", dialect, cacheFirst), func(t *testing.T) {
				t.Parallel()
				cachedAgain, p := writeClauseTransaction(t, dialect, cacheFirst)
				if cacheFirst && !cachedAgain {
					t.Errorf("installed first: not cached again after the commit (%+v)", p.Stats().Bypasses)
				}
			})
		}
	}
}

// Regression (fixed): installed after dbresolver, the plugin
// does not see the end of a transaction begun through dbresolver
// (db.Clauses(dbresolver.Write).Begin/Transaction): dbresolver begins it on
// the bare pool it captured at its own Initialize, not on the plugin's
// root pool. Results stay right (the writes are bumped and held for
// WriteLease, as for any transaction the plugin did not begin), but the
// tables it wrote are not cached for WriteLease (a minute by default) after
// the commit: registration order changes what is cached.
func TestDBResolverFirstTransactionIsThePlugins(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			if cachedAgain, p := writeClauseTransaction(t, dialect, false); !cachedAgain {
				t.Errorf("installed after dbresolver: not cached again after the commit of a transaction begun through dbresolver (bypasses %v)", p.Stats().Bypasses)
			}
		})
	}
}
