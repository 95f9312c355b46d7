package lowlevel_test

import (
	"context"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/storetest"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Order is the model of the GORM tests and examples.
type Order struct {
	ID     uint
	Amount int64
}

// TestGORMWritesInvalidate is the point of the package: a value computed
// from orders goes stale when orders is written through a *gorm.DB with
// the plugin installed, whatever the kind of write.
func TestGORMWritesInvalidate(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
			must(t, db.AutoMigrate(&Order{}))
			p := plugin.New(plugin.Config{Logger: quiet})
			c, err := lowlevel.New(p, lowlevel.Config{}) // before db.Use: allowed
			must(t, err)
			must(t, db.Use(p))
			t.Cleanup(func() { p.Close() })

			runs := 0
			total := func() int64 {
				t.Helper()
				v, err := lowlevel.Remember(bg, c, "orders:total", time.Hour, []string{"orders"}, func(ctx context.Context) (int64, error) {
					runs++
					var n int64
					err := db.WithContext(ctx).Model(&Order{}).Select("COALESCE(SUM(amount), 0)").Scan(&n).Error
					return n, err
				})
				must(t, err)
				return v
			}
			check := func(step string, want int64, wantRuns int) {
				t.Helper()
				if got := total(); got != want || runs != wantRuns {
					t.Fatalf("%s: total %d after %d runs; want %d after %d", step, got, runs, want, wantRuns)
				}
			}
			check("first", 0, 1)
			check("cached", 0, 1)

			for _, w := range []struct {
				name  string
				write func() error
				want  int64
			}{
				{"Create", func() error { return db.Create(&Order{ID: 1, Amount: 5}).Error }, 5},
				{"Update", func() error { return db.Model(&Order{ID: 1}).Update("amount", 7).Error }, 7},
				{"Save", func() error { return db.Save(&Order{ID: 1, Amount: 8}).Error }, 8},
				{"Exec", func() error { return db.Exec("UPDATE orders SET amount = amount + 1").Error }, 9},
				{"Transaction", func() error {
					return db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Order{ID: 2, Amount: 10}).Error })
				}, 19},
				{"Delete", func() error { return db.Delete(&Order{ID: 2}).Error }, 9},
				{"Raw with a schema", func() error { return db.Exec(`DELETE FROM "orders" WHERE id = 1`).Error }, 0},
			} {
				must(t, w.write())
				if _, ok, err := lowlevel.Get[int64](bg, c, "orders:total", "orders"); ok || err != nil {
					t.Fatalf("%s: Get after the write: hit %v, %v", w.name, ok, err)
				}
				check(w.name, w.want, runs+1)
				check(w.name+", cached", w.want, runs)
			}

			// While a transaction that wrote orders is open, the value of
			// the committed rows stays cached (the plugin's transactions
			// on SQLite and PostgreSQL hold what they wrote when they
			// commit); once it commits, the new total is computed and
			// stored.
			tx := db.Begin()
			must(t, tx.Create(&Order{ID: 3, Amount: 100}).Error)
			check("during the transaction", 0, runs)
			must(t, tx.Commit().Error)
			check("after the commit", 100, runs+1)
			check("after the commit, cached", 100, runs)

			// A rolled-back write changed nothing: the value stays cached.
			tx = db.Begin()
			must(t, tx.Create(&Order{ID: 4, Amount: 1}).Error)
			must(t, tx.Rollback().Error)
			check("after a rollback", 100, runs)

			// Other tables' writes leave the value alone.
			must(t, db.Exec("CREATE TABLE unrelated (id integer)").Error)
			must(t, db.Exec("INSERT INTO unrelated (id) VALUES (1)").Error)
			check("after a write elsewhere", 100, runs+1) // the CREATE TABLE (DDL) invalidates everything
			must(t, db.Exec("INSERT INTO unrelated (id) VALUES (2)").Error)
			check("after a second write elsewhere", 100, runs)

			if s := c.Stats(); s.StoreErrors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestBrokenTablesNotServed: a write whose invalidation did not reach the
// store (Config.BumpFailure ProceedWrite) stops the plugin serving its
// table, and the low-level cache too; a failed Invalidate of the
// low-level cache stops the plugin serving it. One rule for the caches.
func TestBrokenTablesNotServed(t *testing.T) {
	t.Parallel()
	st := &storetest.CutBumps{Store: testsupport.BytesStore{Store: newMem(t)}}
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	must(t, db.AutoMigrate(&Order{}))
	must(t, db.Create(&Order{Amount: 5}).Error)
	p := plugin.New(plugin.Config{Store: st, BumpFailure: plugin.ProceedWrite, Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	c, err := lowlevel.New(p, lowlevel.Config{Logger: quiet})
	must(t, err)
	must(t, lowlevel.Set(bg, c, "total", int64(5), time.Hour, "orders"))
	mustGet[int64](t, c, "total", "orders")

	st.Cut.Store(true)
	must(t, db.Model(&Order{}).Where("id = 1").Update("amount", 7).Error)
	mustMiss[int64](t, c, "total", "orders")

	// And the other way: the low-level cache's own invalidation fails.
	var o Order
	st.Cut.Store(false)
	testsupport.Eventually(t, "orders served again", func() bool { return core.Of(p).Serving(core.Tables([]string{"orders"})) })
	must(t, db.First(&o, 1).Error)
	must(t, db.First(&o, 1).Error)
	hits := p.Stats().Hits
	st.Cut.Store(true)
	if err := c.Invalidate(bg, "orders"); err == nil {
		t.Fatal("Invalidate with its bump cut succeeded")
	}
	must(t, db.First(&o, 1).Error)
	if p.Stats().Hits != hits {
		t.Fatal("the plugin served a table whose low-level invalidation failed")
	}
	st.Cut.Store(false)
}

// A cache on a store of its own has its own invalidator: a failed
// Invalidate stops serving the table (until the retry lands), and Close
// stops the retry.
func TestOwnStoreInvalidateFailure(t *testing.T) {
	st := &storetest.CutBumps{Store: newMem(t)}
	c, err := lowlevel.NewWithStore(st, lowlevel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must(t, lowlevel.Set(ctx, c, "total", int64(5), 0, "orders"))
	if v, ok, err := lowlevel.Get[int64](ctx, c, "total", "orders"); err != nil || !ok || v != 5 {
		t.Fatalf("Get: %v %v %v", v, ok, err)
	}
	st.Cut.Store(true)
	if err := c.Invalidate(ctx, "orders"); err == nil {
		t.Fatal("Invalidate with bumps cut succeeded")
	}
	// The bump did not land: the entry must not be served.
	if _, ok, _ := lowlevel.Get[int64](ctx, c, "total", "orders"); ok {
		t.Fatal("served an entry whose table's invalidation failed")
	}
	st.Cut.Store(false)
	// Once the retry lands, values are stored and served again.
	testsupport.Eventually(t, "stored and served again", func() bool {
		must(t, lowlevel.Set(ctx, c, "total", int64(6), 0, "orders"))
		v, ok, _ := lowlevel.Get[int64](ctx, c, "total", "orders")
		return ok && v == 6
	})
	must(t, c.Close())
}
