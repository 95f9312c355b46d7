package plugin_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/pgrepl"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pglogrepl"
	"gorm.io/gorm"
)

// TestNoStaleReadsReplication is the staleness checker with every write
// made outside GORM, on a raw connection, and a pgrepl listener as the
// only source of invalidation. A write counts as committed for the
// readers once the listener's position has passed it (the guarantee for
// outside writers is bounded by the replication delay); a write that the
// listener never bumps is a lost invalidation. It runs steadily, with the
// listener's backend terminated half-way, and on a server of its own that
// is restarted (a clean shutdown, then a crash) under the load.
func TestNoStaleReadsReplication(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"steady", "terminated", "restarted"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			var dsn, admin string
			var cluster *testdb.Cluster
			if fault == "restarted" {
				cluster = testdb.PrivatePostgres(t)
				dsn, admin = cluster.DSN, cluster.DSN
			} else {
				dsn, admin = testdb.FreshPostgres(t), testdb.PostgresAdmin
			}
			db := openPostgres(t, dsn)
			p := plugin.New(plugin.Config{Logger: quiet})
			must(t, db.Use(p))
			t.Cleanup(func() { p.Close() })
			must(t, db.AutoMigrate(&Counter{}))
			raw, err := sql.Open("pgx", dsn)
			must(t, err)
			t.Cleanup(func() { raw.Close() })

			name := testdb.RandomName("gctest_repl_" + fmt.Sprint(time.Now().Unix()) + "_")
			l, err := pgrepl.Listen(context.Background(), dsn, p, pgrepl.Config{
				Tables: []string{"counters"}, Slot: name, Publication: name, Logger: quiet,
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
				StatusInterval: 20 * time.Millisecond, // (keepalives, which move the position when idle, answer status updates)
			})
			must(t, err)
			t.Cleanup(func() {
				l.Close()
				if cluster == nil {
					dropReplSlot(t, admin, name)
				}
			})

			var faults func()
			switch fault {
			case "terminated":
				faults = func() {
					pid := l.Stats().BackendPID
					if _, err := raw.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
						t.Errorf("terminate the listener's backend: %v", err)
					}
				}
			case "restarted":
				faults = func() {
					cluster.Restart(t, "fast")
					time.Sleep(500 * time.Millisecond) // some load between the two
					cluster.Restart(t, "immediate")
				}
			}
			res := runOutsideChecker(t, db, raw, l, 3*time.Second, func() uint64 { return p.Stats().Hits }, faults)
			s := l.Stats()
			t.Logf("%s: %d writes, %d reads, %d failed during the fault; hits=%d; listener %+v", fault, res.Writes, res.Reads, res.Failed, p.Stats().Hits, s)
			if res.Stale != 0 {
				t.Fatalf("%d stale reads; first: %s", res.Stale, res.FirstStale)
			}
			if res.Lost != 0 {
				t.Fatalf("%d writes never bumped (lost invalidations); first: %s", res.Lost, res.FirstLost)
			}
			if p.Stats().Hits == 0 || res.Writes == 0 {
				t.Fatal("no hits or no writes: the checker did not exercise the cache")
			}
			if fault != "steady" && s.Reconnects == 0 {
				t.Fatal("the listener did not reconnect")
			}
		})
	}
}

// OutsideResult sums up a run of runOutsideChecker.
type OutsideResult struct {
	Writes, Reads, Stale, Lost, Failed int64
	FirstStale, FirstLost              string
}

// runOutsideChecker runs RunStaleChecker's readers on db and writers on
// raw for d; fault, if any, runs once a third of the way in, and queries
// failing from then until the end are counted (the server may be down),
// not fatal.
func runOutsideChecker(t *testing.T, db *gorm.DB, raw *sql.DB, l *pgrepl.Listener, d time.Duration, hits func() uint64, fault func()) OutsideResult {
	t.Helper()
	for i := 1; i <= staleRows; i++ {
		_, err := raw.Exec(`INSERT INTO counters (id, v) VALUES ($1, 0)`, i)
		must(t, err)
	}
	var (
		floors  [staleRows + 1]atomic.Int64
		next    atomic.Int64
		res     OutsideResult
		stop    = time.Now().Add(d)
		faulted atomic.Bool
	)
	stale := staleReporter(&res.Stale, &res.FirstStale)
	lost := staleReporter(&res.Lost, &res.FirstLost)
	tolerate := func(err error) error {
		if err != nil && faulted.Load() {
			atomic.AddInt64(&res.Failed, 1)
			time.Sleep(10 * time.Millisecond)
			return nil
		}
		return err
	}
	write := func(r *rand.Rand) error {
		i, j := 1+r.IntN(staleRows), 1+r.IntN(staleRows)
		v := next.Add(1)
		var err error
		switch v % 4 {
		case 0:
			_, err = raw.Exec(`UPDATE counters SET v = GREATEST(v, $1) WHERE id = $2`, v, i)
		case 1: // rows not named by key
			_, err = raw.Exec(`UPDATE counters SET v = GREATEST(v, $1) WHERE id BETWEEN $2 AND $2`, v, i)
		case 2: // two rows in one transaction
			var tx *sql.Tx
			if tx, err = raw.Begin(); err == nil {
				_, err = tx.Exec(`UPDATE counters SET v = GREATEST(v, $1) WHERE id = $2`, v, i)
				if err == nil && j != i {
					_, err = tx.Exec(`UPDATE counters SET v = GREATEST(v, $1) WHERE id = $2`, v, j)
				}
				if err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
			}
		default: // assigns the key
			_, err = raw.Exec(`UPDATE counters SET v = GREATEST(v, $1), id = id WHERE id = $2`, v, i)
		}
		if err != nil {
			return tolerate(err)
		}
		var s string
		if err := raw.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
			return tolerate(err) // (the write stays unchecked: its floor is not raised)
		}
		lsn, err := pglogrepl.ParseLSN(s)
		if err != nil {
			return err
		}
		// Committed for the readers once bumped; never bumped: lost.
		deadline := time.Now().Add(60 * time.Second)
		for l.Stats().Position < lsn {
			if time.Now().After(deadline) {
				lost("the write of %d to row %d (WAL %s) not bumped within 60s: %+v", v, i, lsn, l.Stats())
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		for _, k := range []int{i, j} {
			if k != i && v%4 != 2 {
				continue
			}
			for cur := floors[k].Load(); v > cur && !floors[k].CompareAndSwap(cur, v); cur = floors[k].Load() {
			}
		}
		atomic.AddInt64(&res.Writes, 1)
		return nil
	}
	readCounters := counterReader(db, &floors, &res.Reads, stale)
	read := func(r *rand.Rand) error { return tolerate(readCounters(r)) }
	if fault != nil {
		go func() {
			time.Sleep(d / 3)
			faulted.Store(true)
			fault()
		}()
	}
	for _, err := range runCheckerLoad(stop, write, read, hits) {
		t.Errorf("query failed: %v", err)
	}
	// What every row holds now is read fresh once bumped.
	var s string
	must(t, raw.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&s))
	lsn, err := pglogrepl.ParseLSN(s)
	must(t, err)
	deadline := time.Now().Add(60 * time.Second)
	for l.Stats().Position < lsn && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 1; i <= staleRows; i++ {
		var want, got int64
		must(t, raw.QueryRow(`SELECT v FROM counters WHERE id = $1`, i).Scan(&want))
		var c Counter
		must(t, db.First(&c, i).Error)
		if got = c.V; got != want {
			stale("at the end, row %d read %d through the cache, the database holds %d", i, got, want)
		}
	}
	return res
}

// dropReplSlot drops a test's slot on the shared server, waiting for a
// closed listener's walsender to let it go.
func dropReplSlot(t *testing.T, dsn, name string) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err = db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Logf("drop slot %s: %v", name, err)
	}
}

// TestNoStaleRowReadsReplication is the row checker (reads keyed on a
// foreign key, writes that move items between bins, soft-delete, delete
// and insert them, upsert them) with every write made by a *gorm.DB
// without the plugin, and a pgrepl listener as the only invalidation:
// under the default REPLICA IDENTITY (an UPDATE's old bin is unknown: the
// column tag) and FULL (the old bin is told: its row tag).
func TestNoStaleRowReadsReplication(t *testing.T) {
	t.Parallel()
	for _, identity := range []string{"default", "full"} {
		t.Run(identity, func(t *testing.T) {
			t.Parallel()
			dsn := testdb.FreshPostgres(t)
			open := func() *gorm.DB { return openPostgres(t, dsn) }
			writer := open()
			must(t, writer.AutoMigrate(&Bin{}, &BinItem{}))
			if identity == "full" {
				must(t, writer.Exec("ALTER TABLE bin_items REPLICA IDENTITY FULL").Error)
			}
			db := open()
			p := plugin.New(plugin.Config{Logger: quiet})
			must(t, db.Use(p))
			t.Cleanup(func() { p.Close() })

			name := testdb.RandomName("gctest_repl_" + fmt.Sprint(time.Now().Unix()) + "_")
			l, err := pgrepl.Listen(context.Background(), dsn, p, pgrepl.Config{
				Tables: []string{"bins", "bin_items"}, Slot: name, Publication: name, Logger: quiet,
				StatusInterval: 20 * time.Millisecond, // (keepalives, which move the position when idle, answer status updates)
			})
			must(t, err)
			t.Cleanup(func() { l.Close(); dropReplSlot(t, testdb.PostgresAdmin, name) })
			settle := func() error {
				var s string
				if err := writer.Raw(`SELECT pg_current_wal_lsn()::text`).Scan(&s).Error; err != nil {
					return err
				}
				lsn, err := pglogrepl.ParseLSN(s)
				if err != nil {
					return err
				}
				for deadline := time.Now().Add(60 * time.Second); l.Stats().Position < lsn; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						return fmt.Errorf("a write at WAL %s not bumped within 60s (lost invalidation): %+v", lsn, l.Stats())
					}
				}
				return nil
			}
			res := runRowChecker(t, db, writer, settle, "autocommit", 2*time.Second, func() uint64 { return p.Stats().Hits })
			st := p.Stats()
			t.Logf("%d writes, %d reads (%d checked), hits=%d misses=%d; listener %+v", res.Writes, res.Reads, res.Checked, st.Hits, st.Misses, l.Stats())
			if res.Stale != 0 {
				t.Fatalf("%d stale reads; first: %s", res.Stale, res.FirstStale)
			}
			if st.Hits == 0 || res.Checked == 0 {
				t.Fatal("no hits or no checked reads: the checker did not exercise the cache")
			}
		})
	}
}
