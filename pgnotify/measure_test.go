package pgnotify

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/jackc/pgx/v5"
)

// These measurements give README its figures:
//
//	go test -run '^$' -bench . -benchtime 2s ./pgnotify/
//
// or, as logs, with TestCommitToBumpDelay and TestWriteThroughput
// (go test -v -run 'Delay|Throughput' ./pgnotify/ -args -pgnotify.load=5s).

var loadDuration = flag.Duration("pgnotify.load", 2*time.Second, "duration of each load of TestWriteThroughput")

const loadWorkers = 4

// delays measures, for n single-row autocommit UPDATEs of a watched table
// made one after another, the time from the writer's COMMIT acknowledged to
// the listener's Invalidate call, and from the statement sent to that call.
func delays(t testing.TB, n int) (fromCommit, fromStart []time.Duration) {
	dsn := watchedDB(t)
	rec := newRecorder()
	listen(t, dsn, rec, Config{}, true)
	conn := connect(t, dsn, nil)
	mustExec(t, conn, `UPDATE plain SET n = n + 1 WHERE id = 1`) // prepare
	rec.next(t, 5*time.Second)
	if b, ok := t.(*testing.B); ok {
		b.ResetTimer()
	}
	for range n {
		start := time.Now()
		if _, err := conn.Exec(context.Background(), `UPDATE plain SET n = n + 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		c := rec.next(t, 5*time.Second)
		// The notification may overtake the writer's acknowledgement.
		fromCommit = append(fromCommit, max(c.at.Sub(committed), 0))
		fromStart = append(fromStart, c.at.Sub(start))
	}
	return fromCommit, fromStart
}

// TestCommitToBumpDelay logs the delay from commit to bump over 500 writes;
// it asserts only a generous bound (the target, p99 < 50ms on loopback, is
// for README, measured without -race).
func TestCommitToBumpDelay(t *testing.T) {
	fromCommit, fromStart := delays(t, 500)
	p50, p99, worst := testsupport.Percentile(fromCommit, 50), testsupport.Percentile(fromCommit, 99), testsupport.Percentile(fromCommit, 100)
	t.Logf("commit → bump over %d writes: p50 %s, p99 %s, max %s (statement sent → bump: p50 %s, p99 %s)",
		len(fromCommit), p50, p99, worst, testsupport.Percentile(fromStart, 50), testsupport.Percentile(fromStart, 99))
	if p99 > time.Second {
		t.Fatalf("commit → bump p99 %s, want well under 1s", p99)
	}
}

// BenchmarkCommitToBump: one op is a single-row autocommit UPDATE of a
// watched table and the wait for the listener's bump. Reported in µs: p50
// and p99 of the delay from the writer's COMMIT acknowledged to the bump (0
// when the bump came first: PostgreSQL signals listeners before it answers
// the writer), and from the statement sent to the bump (an upper bound that
// includes the write itself).
func BenchmarkCommitToBump(b *testing.B) {
	fromCommit, fromStart := delays(b, b.N)
	b.StopTimer()
	testsupport.ReportDelays(b, fromCommit, fromStart)
}

// loadMode is one of the write loads compared.
type loadMode struct {
	name     string
	triggers bool              // the table carries the trigger
	params   map[string]string // the writers' session settings
}

var loadModes = []loadMode{
	{"no-trigger", false, nil},
	{"trigger-notifying", true, nil},
	{"trigger-skipped", true, AppRuntimeParams()},
}

// loadDB is a database with a 1,000-row table, load, and a listener
// counting what it receives.
type loadDB struct {
	dsn string
	l   *Listener
}

func newLoadDB(t testing.TB) *loadDB {
	dsn, _ := fresh(t,
		`CREATE TABLE load (id int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO load SELECT i, 0 FROM generate_series(1, 1000) i`,
	)
	var bumps atomic.Int64
	inv := InvalidatorFunc(func(context.Context, ...string) error { bumps.Add(1); return nil })
	return &loadDB{dsn: dsn, l: listen(t, dsn, inv, Config{}, false)}
}

func (d *loadDB) setMode(t testing.TB, m loadMode) {
	sqlDB := openSQL(t, d.dsn)
	var err error
	if m.triggers {
		err = InstallTriggers(context.Background(), sqlDB, "load")
	} else {
		err = RemoveTriggers(context.Background(), sqlDB, "load")
	}
	if err != nil {
		t.Fatal(err)
	}
}

const updateLoad = `UPDATE load SET n = n + 1 WHERE id = $1`

// run makes loadWorkers connections UPDATE one row each per autocommit
// transaction (each its own rows: no lock waits between them), until total
// writes are done (total > 0) or for dur; it returns the writes made and the
// time taken.
func (d *loadDB) run(t testing.TB, m loadMode, total int, dur time.Duration) (int, time.Duration) {
	conns := make([]*pgx.Conn, loadWorkers)
	for i := range conns {
		conns[i] = connect(t, d.dsn, m.params)
		if _, err := conns[i].Prepare(context.Background(), updateLoad, updateLoad); err != nil {
			t.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, loadWorkers)
	start := time.Now()
	deadline := start.Add(dur)
	for w, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if total > 0 {
					if done.Add(1) > int64(total) {
						done.Add(-1)
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				id := w + 1 + (i*loadWorkers)%1000
				if _, err := conn.Exec(context.Background(), updateLoad, id); err != nil {
					errs <- err
					return
				}
				if total <= 0 {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(done.Load()), elapsed
}

// TestWriteThroughput logs the write throughput of a table without the
// trigger, with it notifying, and with it skipped by the application's
// setting. The modes take turns in short slices, so that a machine's
// background load weighs on all three alike. It asserts nothing about speed.
func TestWriteThroughput(t *testing.T) {
	const slices = 4
	d := newLoadDB(t)
	d.run(t, loadModes[0], 0, *loadDuration/4) // warm up
	writes := make([]int, len(loadModes))
	took := make([]time.Duration, len(loadModes))
	heard := make([]uint64, len(loadModes))
	for range slices {
		for i, m := range loadModes {
			d.setMode(t, m)
			before := d.l.Stats().Notifications
			n, elapsed := d.run(t, m, 0, *loadDuration/slices)
			writes[i] += n
			took[i] += elapsed
			if m.triggers && m.params == nil {
				// count what this slice's writes sent, not a later slice
				testsupport.Eventually(t, "the slice's notifications", func() bool { return d.l.Stats().Notifications-before >= uint64(n) })
			}
			heard[i] += d.l.Stats().Notifications - before
		}
	}
	var report string
	base := float64(writes[0]) / took[0].Seconds()
	for i, m := range loadModes {
		rate := float64(writes[i]) / took[i].Seconds()
		report += fmt.Sprintf("\n  %-18s %8.0f tx/s (%3.0f%%)  %d writes, %d notifications heard", m.name, rate, 100*rate/base, writes[i], heard[i])
		switch {
		case m.triggers && m.params == nil && heard[i] != uint64(writes[i]):
			t.Errorf("%s: the listener heard %d notifications of %d writes", m.name, heard[i], writes[i])
		case m.params != nil && heard[i] != 0:
			t.Errorf("%s: the listener heard %d notifications", m.name, heard[i])
		}
	}
	t.Logf("write throughput, %d connections × %s of single-row UPDATE autocommits per mode, in %d slices:%s",
		loadWorkers, *loadDuration, slices, report)
}

// BenchmarkWriteThroughput: b.N single-row UPDATE autocommits shared by 4
// connections, reported as tx/s, for each mode.
func BenchmarkWriteThroughput(b *testing.B) {
	d := newLoadDB(b)
	d.run(b, loadModes[0], 0, 500*time.Millisecond) // warm up
	for _, m := range loadModes {
		b.Run(m.name, func(b *testing.B) {
			d.setMode(b, m)
			b.ResetTimer()
			n, elapsed := d.run(b, m, b.N, 0)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "tx/s")
		})
	}
}
