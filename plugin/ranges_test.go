package plugin_test

import (
	"fmt"
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

// Score is ranked by Points, an indexed integer column: "the 3 best" is a
// read of the table's first rows in the column's order (ranges.go).
type Score struct {
	ID     uint
	Points int64  `gorm:"index"`
	Name   string `gorm:"size:32"`
}

// TestRangedReads: a read of a table's first rows in an indexed column's
// order (ORDER BY points DESC, id LIMIT 3; ascending; by primary key)
// stays cached while writes change rows it does not hold and that stay
// behind its last row, and goes as soon as a write changes a row it holds
// or puts one among them; every result is the database's.
func TestRangedReads(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
			must(t, db.AutoMigrate(&Score{}))
			for i := 1; i <= 20; i++ {
				must(t, db.Create(&Score{Points: int64(i * 10), Name: "s"}).Error) // (ids 1…20)
			}
			p := plugin.New(plugin.Config{Logger: quiet})
			must(t, db.Use(p))
			defer p.Close()
			type read struct {
				name string
				q    func(*gorm.DB) *gorm.DB
			}
			reads := []read{
				{"best 3", func(d *gorm.DB) *gorm.DB { return d.Order("points desc, id").Limit(3) }},
				{"worst 3", func(d *gorm.DB) *gorm.DB { return d.Order("points").Limit(3) }},
				{"latest 3", func(d *gorm.DB) *gorm.DB { return d.Order("id desc").Limit(3) }},
			}
			show := func(ss []Score) string {
				out := ""
				for _, s := range ss {
					out += fmt.Sprintf("%d:%d:%s ", s.ID, s.Points, s.Name)
				}
				return out
			}
			// check runs each read until it hits, at most three times
			// (after a write that changed which rows it returns, a read
			// misses twice: once with the rows it expected, once with the
			// new ones), and compares it with the database; hit[i]:
			// whether read i must hit at its first run.
			check := func(step string, hit ...bool) {
				t.Helper()
				for i, r := range reads {
					for run := 0; ; run++ {
						before := p.Stats().Hits
						var got, want []Score
						must(t, r.q(db).Find(&got).Error)
						must(t, r.q(db.Clauses(plugin.Skip())).Find(&want).Error)
						if show(got) != show(want) {
							t.Fatalf("%s: %s = %s, the database has %s", step, r.name, show(got), show(want))
						}
						wasHit := p.Stats().Hits > before
						if run == 0 && hit != nil && wasHit != hit[i] {
							t.Errorf("%s: %s hit = %v, want %v", step, r.name, wasHit, hit[i])
						}
						if wasHit {
							break
						}
						if run == 2 {
							t.Errorf("%s: %s missed three times", step, r.name)
							break
						}
					}
				}
			}
			for range 2 { // the hint, then the entry that depends on it
				for _, r := range reads {
					var ss []Score
					must(t, r.q(db).Find(&ss).Error)
				}
			}
			check("warm", true, true, true)
			learns := dialect != "mysql" // (RETURNING: a SET to points + 1 learns the new values)
			write := func(step string, fn func() error, hit ...bool) {
				t.Helper()
				must(t, fn())
				check(step, hit...)
			}
			write("a middle row's points, to a value behind both ends", func() error {
				return db.Model(&Score{ID: 10}).Update("points", 101).Error
			}, true, true, true)
			write("a middle row's points + 1", func() error {
				return db.Model(&Score{ID: 11}).UpdateColumn("points", gorm.Expr("points + 1")).Error
			}, learns, learns, true)
			write("a middle row's name", func() error {
				return db.Model(&Score{ID: 12}).Update("name", "renamed").Error
			}, true, true, true)
			write("a best row's name", func() error {
				return db.Model(&Score{ID: 20}).Update("name", "top").Error
			}, false, true, false)
			write("a middle row to the top", func() error {
				return db.Model(&Score{ID: 9}).Update("points", 1000).Error
			}, false, true, true)
			write("a best row down to the middle", func() error {
				return db.Model(&Score{ID: 9}).Update("points", 95).Error
			}, false, true, true)
			write("a new row in the middle", func() error {
				return db.Create(&Score{Points: 55, Name: "new"}).Error
			}, true, true, false)
			write("a new row at the top", func() error {
				return db.Create(&Score{Points: 5000, Name: "new top"}).Error
			}, false, true, false)
			write("a new row at the bottom", func() error {
				return db.Create(&Score{Points: -5, Name: "new bottom"}).Error
			}, true, false, false)
			write("a middle row deleted", func() error {
				return db.Delete(&Score{ID: 13}).Error
			}, true, true, true)
			write("a best row deleted", func() error {
				return db.Delete(&Score{ID: 20}).Error
			}, false, true, true)
			write("a NULL", func() error {
				return db.Exec("UPDATE scores SET points = NULL WHERE id = ?", 14).Error
			}, false, false, true)
			write("a range of rows", func() error {
				return db.Exec("UPDATE scores SET name = 'r' WHERE id BETWEEN 5 AND 6").Error
			}, false, false, false)
			write("a raw SET to an expression", func() error {
				return db.Exec("UPDATE scores SET points = points * 2 WHERE id = 7").Error
			}, false, false, true)
			ex, err := p.Explain(reads[0].q(db.Session(&gorm.Session{DryRun: true})).Find(&[]Score{}))
			must(t, err)
			if !slices.ContainsFunc(ex.Rows, func(s string) bool { return s == "scores\x1fpoints=r*" }) {
				t.Errorf("Explain(best 3).Rows = %q: no range tags", ex.Rows)
			}
		})
	}
}

// TestNoStaleRangedReads is the staleness checker for ranged reads:
// writers change points (to values, by expressions, to NULL), names,
// insert and delete rows, and update ranges, while readers read the best,
// the worst and the latest rows through the cache. A read during which no
// write ran must return exactly the rows the database held before it.
func TestNoStaleRangedReads(t *testing.T) {
	t.Parallel()
	checkEveryDialect(t, runRangeChecker)
}

func runRangeChecker(t *testing.T, db *gorm.DB, mode string, d time.Duration, hits func() uint64) RowCheckResult {
	t.Helper()
	const rows = 12
	must(t, db.AutoMigrate(&Score{}))
	for i := 1; i <= rows; i++ {
		must(t, db.Create(&Score{Points: int64(i % 5), Name: "s"}).Error) // (ids 1…rows)
	}
	var (
		res     RowCheckResult
		mu      sync.Mutex // one write at a time
		writing atomic.Bool
		epoch   atomic.Int64
		next    atomic.Int64
	)
	plain := func() *gorm.DB { return db.Clauses(plugin.Skip()) }
	reads := []func(*gorm.DB) *gorm.DB{
		func(d *gorm.DB) *gorm.DB { return d.Where("1 = 1").Order("points desc, id").Limit(4) }, // (table-level: a WHERE)
		func(d *gorm.DB) *gorm.DB { return d.Order("points desc, id").Limit(4) },
		func(d *gorm.DB) *gorm.DB { return d.Order("points, id").Limit(4) },
		func(d *gorm.DB) *gorm.DB { return d.Order("id desc").Limit(4) },
	}
	stale := staleReporter(&res.Stale, &res.FirstStale)
	write := func(r *rand.Rand) error {
		defer time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond) // (after the flags: quiet for the readers to check)
		mu.Lock()
		defer mu.Unlock()
		writing.Store(true)
		defer func() { epoch.Add(1); writing.Store(false) }()
		i, v := 1+r.IntN(rows), int64(r.IntN(12))-2 // (ids above rows: the sequence's, case 7)
		run := func(fn func(tx *gorm.DB) error) error {
			if mode == "transaction" {
				return db.Transaction(fn)
			}
			return fn(db)
		}
		var err error
		switch k := r.IntN(9); k {
		case 0:
			err = run(func(tx *gorm.DB) error { return tx.Model(&Score{ID: uint(i)}).Update("points", v).Error })
		case 1:
			err = run(func(tx *gorm.DB) error {
				return tx.Model(&Score{ID: uint(i)}).UpdateColumn("points", gorm.Expr("points + ?", v)).Error
			})
		case 2:
			err = run(func(tx *gorm.DB) error {
				return tx.Model(&Score{ID: uint(i)}).Update("name", fmt.Sprint("n", next.Add(1))).Error
			})
		case 3:
			err = run(func(tx *gorm.DB) error { return tx.Exec("UPDATE scores SET points = NULL WHERE id = ?", i).Error })
		case 4:
			err = run(func(tx *gorm.DB) error { return tx.Delete(&Score{ID: uint(i)}).Error })
		case 5:
			err = run(func(tx *gorm.DB) error {
				var n int64
				if err := tx.Clauses(plugin.Skip()).Model(&Score{}).Where("id = ?", i).Count(&n).Error; err != nil || n > 0 {
					return err
				}
				return tx.Create(&Score{ID: uint(i), Points: v, Name: "back"}).Error
			})
		case 6:
			err = run(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE scores SET points = points + 1 WHERE id >= ? AND id <= ?", i, i+2).Error
			})
		case 7:
			err = run(func(tx *gorm.DB) error { return tx.Create(&Score{Points: v, Name: "new"}).Error })
		default:
			err = run(func(tx *gorm.DB) error {
				return tx.Where("id > ?", rows).Delete(&Score{}).Error
			})
		}
		if err != nil {
			return err
		}
		atomic.AddInt64(&res.Writes, 1)
		return nil
	}
	read := func(r *rand.Rand) error {
		k := r.IntN(len(reads))
		busy0, e0 := writing.Load(), epoch.Load()
		var got, want []Score
		if err := reads[k](db).Find(&got).Error; err != nil {
			return err
		}
		atomic.AddInt64(&res.Reads, 1)
		if busy0 || writing.Load() || epoch.Load() != e0 {
			return nil // a write ran during the read: any of its states may be seen
		}
		if err := reads[k](plain()).Find(&want).Error; err != nil {
			return err
		}
		if writing.Load() || epoch.Load() != e0 {
			return nil // (want was read after a write)
		}
		atomic.AddInt64(&res.Checked, 1)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			stale("read %d: got %v, the database held %v", k, got, want)
		}
		return nil
	}
	for _, err := range runCheckerLoad(time.Now().Add(d), write, read, hits) {
		t.Errorf("query failed: %v", err)
	}
	return res
}
