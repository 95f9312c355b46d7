package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type Counter struct {
	ID int `gorm:"primaryKey;autoIncrement:false"`
	V  int64
}

// TestNoStaleReads is the staleness checker: writers raise counters (values
// only grow), readers read them through the cache, and every read must return
// at least the value whose write had returned before the read began.
func TestNoStaleReads(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ dialect, mode string }{
		{"postgres", "autocommit"}, {"postgres", "transaction"}, {"postgres", "skipDefaultTx"},
		{"mysql", "autocommit"}, {"sqlite", "autocommit"},
	} {
		mode := c.mode
		name := mode
		if c.dialect != "postgres" {
			name = c.dialect + "/" + mode
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: mode == "skipDefaultTx"}
			db := testdb.Open(t, c.dialect, cfg)
			p := plugin.New(plugin.Config{})
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			res := RunStaleChecker(t, db, mode, 2*time.Second, func() uint64 { return p.Stats().Hits })
			st := p.Stats()
			t.Logf("%s: %d writes, %d reads, hits=%d misses=%d stores=%d bypasses=%v", mode, res.Writes, res.Reads, st.Hits, st.Misses, st.Stores, st.Bypasses)
			if res.Stale != 0 {
				t.Fatalf("%d stale reads; first: %s", res.Stale, res.FirstStale)
			}
			if st.Hits == 0 {
				t.Fatal("no hits: the checker did not exercise the cache")
			}
		})
	}
}

// greatest is the name of the two-argument maximum in db's dialect.
func greatest(db *gorm.DB) string {
	if db.Dialector.Name() == "sqlite" {
		return "MAX"
	}
	return "GREATEST"
}

// StaleResult sums up a run of the checker.
type StaleResult struct {
	Writes, Reads, Stale int64
	Refused              int64 // writes refused because the store was down
	FirstStale           string
}

const (
	staleRows  = 4
	quietEvery = 150 * time.Millisecond
	quietMax   = time.Second
)

// RunStaleChecker runs writers and readers on db for d.
//
// With hits set (the cache's hit count), the writers stop every
// quietEvery, until the readers have had a hit or quietMax has passed:
// while any write to a table is in flight its reads go to the database, and
// on two loaded cores two writers can keep the table held for the whole
// run, so without quiet windows the cache may never be exercised. Reads go
// on throughout, so reads overlapping writes, reads just after them and
// hits in the windows are all checked.
func RunStaleChecker(t *testing.T, db *gorm.DB, mode string, d time.Duration, hits func() uint64) StaleResult {
	t.Helper()
	if err := db.AutoMigrate(&Counter{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= staleRows; i++ {
		if err := db.Create(&Counter{ID: i, V: 0}).Error; err != nil {
			t.Fatal(err)
		}
	}
	var (
		floors [staleRows + 1]atomic.Int64 // value committed (write returned) per row
		next   atomic.Int64
		res    StaleResult
		stop   = time.Now().Add(d)
	)
	raise := func(i int, v int64) {
		for {
			cur := floors[i].Load()
			if v <= cur || floors[i].CompareAndSwap(cur, v) {
				return
			}
		}
	}
	stale := staleReporter(&res.Stale, &res.FirstStale)
	write := func(r *rand.Rand) error {
		i := 1 + r.IntN(staleRows)
		v := next.Add(1)
		var err error
		switch {
		case mode == "transaction" && v%3 == 0:
			err = db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Counter{}).Where("id = ?", i).Update("v", gorm.Expr(greatest(db)+"(v, ?)", v)).Error; err != nil {
					return err
				}
				// a rolled-back savepoint must not matter
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					tx2.Model(&Counter{}).Where("id = ?", i).Update("v", -1)
					return fmt.Errorf("rollback")
				})
				time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				return nil
			})
		case mode == "transaction":
			err = db.Transaction(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE counters SET v = "+greatest(db)+"(v, ?) WHERE id = ?", v, i).Error
			})
		case v%5 == 0:
			// rows the statement does not name by key (row-level
			// invalidation: the table's rows tag)
			err = db.Exec("UPDATE counters SET v = "+greatest(db)+"(v, ?) WHERE id BETWEEN ? AND ?", v, i, i).Error
		case v%7 == 0:
			// a statement that assigns the key
			err = db.Exec("UPDATE counters SET v = "+greatest(db)+"(v, ?), id = id WHERE id = ?", v, i).Error
		case v%2 == 0:
			err = db.Exec("UPDATE counters SET v = "+greatest(db)+"(v, ?) WHERE id = ?", v, i).Error
		default:
			err = db.Model(&Counter{}).Where("id = ?", i).Update("v", gorm.Expr(greatest(db)+"(v, ?)", v)).Error
		}
		if errors.Is(err, store.ErrUnavailable) {
			// Refused before it ran (Config.BumpFailure FailWrite): the
			// store could not be told first, nothing was written.
			atomic.AddInt64(&res.Refused, 1)
			return nil
		}
		if err == nil {
			raise(i, v)
			atomic.AddInt64(&res.Writes, 1)
		}
		return err
	}
	read := counterReader(db, &floors, &res.Reads, stale)
	for _, err := range runCheckerLoad(stop, write, read, hits) {
		t.Errorf("query failed: %v", err)
	}
	return res
}

// counterReader returns a checker's read of the counters through db: it
// reports through stale a value below the floor its row had when the read
// began.
func counterReader(db *gorm.DB, floors *[staleRows + 1]atomic.Int64, reads *int64, stale func(string, ...any)) func(*rand.Rand) error {
	return func(r *rand.Rand) error {
		i := 1 + r.IntN(staleRows)
		var before [staleRows + 1]int64
		for j := 1; j <= staleRows; j++ {
			before[j] = floors[j].Load()
		}
		atomic.AddInt64(reads, 1)
		ctx := context.Background()
		switch r.IntN(5) {
		case 0:
			var c Counter
			if err := db.WithContext(ctx).First(&c, i).Error; err != nil {
				return err
			}
			if c.V < before[i] {
				stale("First(%d) = %d, committed before the read: %d", i, c.V, before[i])
			}
		case 1:
			var v int64
			if err := db.Raw("SELECT v FROM counters WHERE id = ?", i).Scan(&v).Error; err != nil {
				return err
			}
			if v < before[i] {
				stale("Raw(%d) = %d, committed before the read: %d", i, v, before[i])
			}
		case 2:
			var all []Counter
			if err := db.Order("id").Find(&all).Error; err != nil {
				return err
			}
			for _, c := range all {
				if c.V < before[c.ID] {
					stale("Find: row %d = %d, committed before the read: %d", c.ID, c.V, before[c.ID])
				}
			}
		case 3:
			var vs []int64
			if err := db.Model(&Counter{}).Where("id = ?", i).Pluck("v", &vs).Error; err != nil {
				return err
			}
			if len(vs) != 1 || vs[0] < before[i] {
				stale("Pluck(%d) = %v, committed before the read: %d", i, vs, before[i])
			}
		case 4:
			j := 1 + r.IntN(staleRows)
			var some []Counter
			if err := db.Find(&some, []int{i, j}).Error; err != nil {
				return err
			}
			for _, c := range some {
				if c.V < before[c.ID] {
					stale("Find(%d, %d): row %d = %d, committed before the read: %d", i, j, c.ID, c.V, before[c.ID])
				}
			}
		}
		return nil
	}
}

// runCheckerLoad runs two writers (pausing up to 6 ms between writes) and
// six readers until stop, and returns the errors that stopped them. With
// hits set (the cache's hit count), the writers stop every quietEvery,
// until the readers have had a hit or quietMax has passed (see
// RunStaleChecker).
func runCheckerLoad(stop time.Time, write, read func(*rand.Rand) error, hits func() uint64) []error {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	worker := func(seed uint64, fn func(*rand.Rand) error, pause time.Duration) {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, seed*7+1))
		for time.Now().Before(stop) {
			if err := fn(r); err != nil {
				errs <- err
				return
			}
			if pause > 0 {
				time.Sleep(time.Duration(r.Int64N(int64(pause))))
			}
		}
	}
	var gate sync.RWMutex // writers hold it shared; a quiet window holds it exclusively
	gatedWrite := func(r *rand.Rand) error {
		gate.RLock()
		defer gate.RUnlock()
		return write(r)
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go worker(uint64(w+1), gatedWrite, 6*time.Millisecond)
	}
	if hits != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				time.Sleep(quietEvery)
				gate.Lock() // waits for the writes in flight
				h, until := hits(), time.Now().Add(quietMax)
				for hits() == h && time.Now().Before(until) {
					time.Sleep(time.Millisecond)
				}
				gate.Unlock()
			}
		}()
	}
	for rd := 0; rd < 6; rd++ {
		wg.Add(1)
		go worker(uint64(100+rd), read, 0)
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// staleReporter returns what a checker reports a stale read with: it
// counts the read in *n and keeps the first one's description in *first.
func staleReporter(n *int64, first *string) func(format string, args ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		atomic.AddInt64(n, 1)
		mu.Lock()
		if *first == "" {
			*first = fmt.Sprintf(format, args...)
		}
		mu.Unlock()
	}
}
