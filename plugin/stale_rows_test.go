package plugin_test

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Bin has many Items through items.bin_id, a foreign key: the row checker's
// reads are keyed on it.
type Bin struct {
	ID    int `gorm:"primaryKey;autoIncrement:false"`
	Items []BinItem
}

type BinItem struct {
	ID        int `gorm:"primaryKey;autoIncrement:false"`
	BinID     int
	V         int64
	DeletedAt gorm.DeletedAt
}

const (
	checkerBins  = 3
	checkerItems = 6
)

// TestNoStaleRowReads is the staleness checker for reads keyed on a
// foreign key (row-level invalidation): writers move items between bins,
// change them, soft-delete and restore them, delete and insert them again,
// upsert them through an association, and readers read bins through the
// cache. An item no write touched while a read ran must be seen exactly as
// the database held it when the read began: in its bin, with its value,
// or absent.
func TestNoStaleRowReads(t *testing.T) {
	t.Parallel()
	checkEveryDialect(t, RunRowChecker)
}

// checkEveryDialect runs a checker for 2 s on PostgreSQL (autocommit and
// transactions), MariaDB and SQLite, each with a plugin of its own, and
// fails on a stale read, or when the run did not exercise the cache.
func checkEveryDialect(t *testing.T, check func(t *testing.T, db *gorm.DB, mode string, d time.Duration, hits func() uint64) RowCheckResult) {
	t.Helper()
	for _, c := range []struct{ dialect, mode string }{
		{"postgres", "autocommit"}, {"postgres", "transaction"}, {"mysql", "autocommit"}, {"sqlite", "autocommit"},
	} {
		t.Run(c.dialect+"/"+c.mode, func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, c.dialect, &gorm.Config{Logger: logger.Discard})
			p := plugin.New(plugin.Config{Logger: quiet})
			must(t, db.Use(p))
			defer p.Close()
			res := check(t, db, c.mode, 2*time.Second, func() uint64 { return p.Stats().Hits })
			st := p.Stats()
			t.Logf("%d writes, %d reads (%d checked), hits=%d misses=%d row writes=%d bypasses=%v", res.Writes, res.Reads, res.Checked, st.Hits, st.Misses, st.RowWrites, st.Bypasses)
			if res.Stale != 0 {
				t.Fatalf("%d stale reads; first: %s", res.Stale, res.FirstStale)
			}
			if st.Hits == 0 || res.Checked == 0 {
				t.Fatal("no hits or no checked reads: the checker did not exercise the cache")
			}
		})
	}
}

// itemState is what the database holds for an item after a write.
type itemState struct {
	exists, deleted bool
	bin             int
	v               int64
}

// RowCheckResult sums up a run of RunRowChecker.
type RowCheckResult struct {
	Writes, Reads, Checked, Stale int64
	FirstStale                    string
}

// RunRowChecker runs writers and readers of bins and items on db for d;
// hits as for RunStaleChecker (quiet windows).
func RunRowChecker(t *testing.T, db *gorm.DB, mode string, d time.Duration, hits func() uint64) RowCheckResult {
	t.Helper()
	return runRowChecker(t, db, db, nil, mode, d, hits)
}

// runRowChecker is RunRowChecker with the writes made through writer;
// settle, if not nil, runs after each write, before the readers count it
// as committed (it waits for an outside writer's invalidation).
func runRowChecker(t *testing.T, db, writer *gorm.DB, settle func() error, mode string, d time.Duration, hits func() uint64) RowCheckResult {
	t.Helper()
	must(t, db.AutoMigrate(&Bin{}, &BinItem{}))
	for b := 1; b <= checkerBins; b++ {
		must(t, db.Create(&Bin{ID: b}).Error)
	}
	var (
		res   RowCheckResult
		stop  = time.Now().Add(d)
		next  atomic.Int64
		locks [checkerItems + 1]sync.Mutex
		// gen[i] is odd while a write of item i runs; state[i] is what the
		// database holds once it is even
		gen   [checkerItems + 1]atomic.Int64
		state [checkerItems + 1]atomic.Pointer[itemState]
	)
	plain := func() *gorm.DB { return db.Clauses(plugin.Skip()) }
	truth := func(i int) (*itemState, error) {
		var its []BinItem
		if err := plain().Unscoped().Where("id = ?", i).Find(&its).Error; err != nil {
			return nil, err
		}
		if len(its) == 0 {
			return &itemState{}, nil
		}
		return &itemState{exists: true, deleted: its[0].DeletedAt.Valid, bin: its[0].BinID, v: its[0].V}, nil
	}
	for i := 1; i <= checkerItems; i++ {
		must(t, db.Create(&BinItem{ID: i, BinID: 1 + i%checkerBins}).Error)
		s, err := truth(i)
		must(t, err)
		state[i].Store(s)
	}
	stale := staleReporter(&res.Stale, &res.FirstStale)
	write := func(r *rand.Rand) error {
		i, b := 1+r.IntN(checkerItems), 1+r.IntN(checkerBins)
		locks[i].Lock()
		defer locks[i].Unlock()
		gen[i].Add(1)
		defer gen[i].Add(1)
		cur := state[i].Load()
		v := next.Add(1)
		wdb := writer
		run := func(fn func(tx *gorm.DB) error) error {
			if mode == "transaction" {
				return wdb.Transaction(fn)
			}
			return fn(wdb)
		}
		var err error
		switch k := r.IntN(8); {
		case !cur.exists:
			err = run(func(tx *gorm.DB) error { return tx.Create(&BinItem{ID: i, BinID: b, V: v}).Error })
		case k == 0: // its value, by key: its bin is not in the statement
			err = run(func(tx *gorm.DB) error { return tx.Model(&BinItem{ID: i}).Update("v", v).Error })
		case k == 1: // a move by key: the new bin is in the statement, the old one not
			err = run(func(tx *gorm.DB) error {
				return tx.Model(&BinItem{ID: i}).Updates(map[string]any{"bin_id": b, "v": v}).Error
			})
		case k == 2: // a move naming both bins
			err = run(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE bin_items SET bin_id = ?, v = ? WHERE id = ? AND bin_id = ?", b, v, i, cur.bin).Error
			})
		case k == 3 && !cur.deleted: // a soft delete
			err = run(func(tx *gorm.DB) error { return tx.Delete(&BinItem{ID: i}).Error })
		case k == 3: // and back
			err = run(func(tx *gorm.DB) error {
				return tx.Unscoped().Model(&BinItem{ID: i}).Updates(map[string]any{"deleted_at": nil, "v": v}).Error
			})
		case k == 4: // gone, then back in another bin
			err = run(func(tx *gorm.DB) error { return tx.Exec("DELETE FROM bin_items WHERE id = ?", i).Error })
			if err == nil {
				err = run(func(tx *gorm.DB) error { return tx.Create(&BinItem{ID: i, BinID: b, V: v}).Error })
			}
		case k == 5: // an association append: an upsert of its foreign key
			err = run(func(tx *gorm.DB) error {
				return tx.Model(&Bin{ID: b}).Association("Items").Append(&BinItem{ID: i, BinID: b, V: cur.v})
			})
		case k == 6: // a range
			err = run(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE bin_items SET v = ? WHERE id >= ? AND id <= ?", v, i, i).Error
			})
		default: // a bin's rows by the foreign key
			err = run(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE bin_items SET v = ? WHERE bin_id = ? AND id = ?", v, cur.bin, i).Error
			})
		}
		if err != nil {
			return err
		}
		if settle != nil {
			if err := settle(); err != nil {
				return err
			}
		}
		s, err := truth(i)
		if err != nil {
			return err
		}
		state[i].Store(s)
		atomic.AddInt64(&res.Writes, 1)
		return nil
	}
	read := func(r *rand.Rand) error {
		b, b2 := 1+r.IntN(checkerBins), 1+r.IntN(checkerBins)
		var g0 [checkerItems + 1]int64
		var s0 [checkerItems + 1]*itemState
		for i := 1; i <= checkerItems; i++ {
			g0[i] = gen[i].Load()
			s0[i] = state[i].Load()
		}
		bins := []int{b}
		var got []BinItem
		count := int64(-1)
		withDeleted := false // (the count counts soft-deleted items too)
		var err error
		switch k := r.IntN(6); k {
		case 5: // a count by member tags (no condition on deleted_at)
			withDeleted = true
			err = db.Raw("SELECT count(*) FROM bin_items WHERE bin_id = ?", b).Scan(&count).Error
		case 0:
			err = db.Where("bin_id = ?", b).Order("id").Find(&got).Error
		case 1:
			bins = []int{b, b2}
			err = db.Where("bin_id IN ?", bins).Find(&got).Error
		case 2:
			err = db.Model(&BinItem{}).Where("bin_id = ?", b).Count(&count).Error
		case 3:
			var bin Bin
			err = db.Preload("Items").First(&bin, b).Error
			got = bin.Items
		case 4:
			err = db.Raw("SELECT id, bin_id, v FROM bin_items WHERE bin_id = ? AND deleted_at IS NULL", b).Scan(&got).Error
		}
		if err != nil {
			return err
		}
		atomic.AddInt64(&res.Reads, 1)
		stable := true
		expected := 0
		for i := 1; i <= checkerItems; i++ {
			g1 := gen[i].Load()
			s := s0[i]
			if g0[i] != g1 || g1%2 != 0 {
				stable = false
				continue // a write ran during the read: either state may be seen
			}
			want := s.exists && (!s.deleted || withDeleted) && slices.Contains(bins, s.bin)
			if want {
				expected++
			}
			if count >= 0 {
				continue
			}
			k := slices.IndexFunc(got, func(it BinItem) bool { return it.ID == i })
			switch {
			case want && k < 0:
				stale("bins %v: item %d missing (it was in bin %d, v %d, before the read)", bins, i, s.bin, s.v)
			case !want && k >= 0:
				stale("bins %v: item %d seen (bin %d, v %d), but before the read it was %+v", bins, i, got[k].BinID, got[k].V, *s)
			case k >= 0 && (got[k].V != s.v || got[k].BinID != s.bin):
				stale("bins %v: item %d seen as bin %d, v %d; before the read: bin %d, v %d", bins, i, got[k].BinID, got[k].V, s.bin, s.v)
			}
		}
		if count >= 0 && stable && count != int64(expected) {
			stale("count of bin %d = %d, before the read: %d", b, count, expected)
		}
		if stable || count < 0 {
			atomic.AddInt64(&res.Checked, 1)
		}
		return nil
	}
	for _, err := range runCheckerLoad(stop, write, read, hits) {
		t.Errorf("query failed: %v", err)
	}
	return res
}
