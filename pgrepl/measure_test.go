package pgrepl

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pgx/v5"
)

// These measurements give README its figures (a quiet run, without -race):
//
//	go test -count=1 -v -run 'Delay|Throughput' ./pgrepl/ -args -pgrepl.load=16s -pgrepl.writes=3000
//	go test -run '^$' -bench . -benchtime 2s ./pgrepl/

var (
	loadDuration = flag.Duration("pgrepl.load", 1500*time.Millisecond, "total duration of each mode's load in TestWriteThroughput")
	delayWrites  = flag.Int("pgrepl.writes", 300, "writes measured by TestCommitToBumpDelay")
)

const loadWorkers = 4

// measureDB is a database with two 1,000-row tables: watched, in the
// listener's publication, and plain, in none.
func measureDB(t testing.TB) (string, Config) {
	dsn := fresh(t,
		`CREATE TABLE watched (id int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO watched SELECT i, 0 FROM generate_series(1, 1000) i`,
		`CREATE TABLE plain (id int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO plain SELECT i, 0 FROM generate_series(1, 1000) i`,
	)
	cfg := names(t, testdb.PostgresAdmin)
	cfg.Tables = []string{"watched"}
	return dsn, cfg
}

// timedInvalidator is the plugin's InvalidateRows, recording when each
// call returned and which watched ids it named.
type timedInvalidator struct {
	p  *plugin.Plugin
	ch chan time.Time
}

func (ti *timedInvalidator) InvalidateRows(ctx context.Context, changes ...plugin.Change) error {
	err := ti.p.InvalidateRows(ctx, changes...)
	if err == nil {
		select {
		case ti.ch <- time.Now():
		default:
		}
	}
	return err
}

// delays measures, for n single-row autocommit UPDATEs of a watched table
// made one after another, the time from the writer's COMMIT acknowledged
// to the end of the plugin's InvalidateRows call for it (an in-process
// store), and from the statement sent.
func delays(t testing.TB, n int) (fromCommit, fromStart []time.Duration) {
	dsn, cfg := measureDB(t)
	_, p := openGORM(t, dsn)
	ti := &timedInvalidator{p: p, ch: make(chan time.Time, 16)}
	l := listen(t, dsn, ti, cfg)
	conn := connect(t, dsn)
	next := func() time.Time {
		t.Helper()
		select {
		case at := <-ti.ch:
			return at
		case <-time.After(10 * time.Second):
			t.Fatal("no bump within 10s")
			return time.Time{}
		}
	}
	testsupport.EventuallyWithin(t, "the first bump", 30*time.Second, func() bool { return l.Stats().Bumps >= 1 })
	for len(ti.ch) > 0 {
		<-ti.ch
	}
	if b, ok := t.(*testing.B); ok {
		b.ResetTimer()
	}
	for range n {
		start := time.Now()
		if _, err := conn.Exec(context.Background(), `UPDATE watched SET n = n + 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		at := next()
		fromCommit = append(fromCommit, max(at.Sub(committed), 0))
		fromStart = append(fromStart, at.Sub(start))
	}
	return fromCommit, fromStart
}

// TestCommitToBumpDelay logs the delay from commit to bump; it asserts
// only a generous bound (the target, p99 < 50ms on loopback, is for
// README, measured without -race on a quiet machine).
func TestCommitToBumpDelay(t *testing.T) {
	fromCommit, fromStart := delays(t, *delayWrites)
	p50, p99, worst := testsupport.Percentile(fromCommit, 50), testsupport.Percentile(fromCommit, 99), testsupport.Percentile(fromCommit, 100)
	t.Logf("commit → bump over %d writes: p50 %s, p99 %s, max %s (statement sent → bump: p50 %s, p99 %s)",
		len(fromCommit), p50, p99, worst, testsupport.Percentile(fromStart, 50), testsupport.Percentile(fromStart, 99))
	if p99 > 5*time.Second {
		t.Fatalf("commit → bump p99 %s, want well under 5s", p99)
	}
}

// BenchmarkCommitToBump: one op is a single-row autocommit UPDATE of a
// watched table and the wait for its bump. Reported in µs: p50 and p99 of
// the delay from the writer's COMMIT acknowledged to the bump, and from
// the statement sent.
func BenchmarkCommitToBump(b *testing.B) {
	fromCommit, fromStart := delays(b, b.N)
	b.StopTimer()
	testsupport.ReportDelays(b, fromCommit, fromStart)
}

// loadMode is one of the write loads compared.
type loadMode struct {
	name     string
	table    string
	listener bool // the listener runs during the load
}

var loadModes = []loadMode{
	{"unwatched", "plain", true},
	{"watched", "watched", true},
	{"watched, no listener", "watched", false},
}

// runLoad makes loadWorkers connections UPDATE one row each of table per
// autocommit transaction (each its own rows: no lock waits), until total
// writes are done (total > 0) or for dur; it returns the writes made and
// the time taken.
func runLoad(t testing.TB, dsn, table string, total int, dur time.Duration) (int, time.Duration) {
	update := `UPDATE ` + table + ` SET n = n + 1 WHERE id = $1`
	conns := make([]*pgx.Conn, loadWorkers)
	for i := range conns {
		conns[i] = connect(t, dsn)
		if _, err := conns[i].Prepare(context.Background(), update, update); err != nil {
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
			defer conn.Close(context.Background())
			for i := 0; ; i++ {
				if total > 0 {
					if done.Add(1) > int64(total) {
						done.Add(-1)
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				if _, err := conn.Exec(context.Background(), update, w+1+(i*loadWorkers)%1000); err != nil {
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

// loadRig runs a listener (counting what it receives) that the modes
// start and stop.
type loadRig struct {
	dsn  string
	cfg  Config
	inv  Invalidator
	l    *Listener
	rows atomic.Uint64
}

func newLoadRig(t testing.TB) *loadRig {
	dsn, cfg := measureDB(t)
	r := &loadRig{dsn: dsn, cfg: cfg}
	_, p := openGORM(t, dsn)
	r.inv = p
	r.setListener(t, true)
	return r
}

func (r *loadRig) setListener(t testing.TB, on bool) {
	switch {
	case on && r.l == nil:
		r.l = listen(t, r.dsn, r.inv, r.cfg)
	case !on && r.l != nil:
		r.l.Close()
		r.rows.Add(r.l.Stats().Rows) // (after Close: nothing arrives later)
		r.l = nil
	}
}

// seen returns the rows the listeners received so far.
func (r *loadRig) seen() uint64 {
	n := r.rows.Load()
	if r.l != nil {
		n += r.l.Stats().Rows
	}
	return n
}

// TestWriteThroughput logs the write throughput of a table outside the
// publication and of a watched one while the listener runs, and of the
// watched one while no listener runs. The modes take turns in short
// slices, so that a machine's background load weighs on all alike; the
// listener must have received every write to the watched table. It
// asserts nothing about speed.
func TestWriteThroughput(t *testing.T) {
	const slices = 8
	r := newLoadRig(t)
	runLoad(t, r.dsn, "plain", 0, *loadDuration/4) // warm up
	writes := make([]int, len(loadModes))
	took := make([]time.Duration, len(loadModes))
	watchedWrites := 0
	var senderCPU time.Duration                      // the walsender's, while the listener ran
	decoded := 0                                     // writes made meanwhile (it decodes them all)
	selfCPU := make([]time.Duration, len(loadModes)) // this process's: writers, listener
	var sideCPU time.Duration                        // the backend of the listener's visibility checks
	var watchedBumps, snapshots uint64               // while the listener ran on the watched table
	admin := openSQL(t, r.dsn)
	sidePID := func() int {
		var pid int
		_ = admin.QueryRow(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'gormcache-pgrepl' AND backend_type = 'client backend'`).Scan(&pid)
		return pid
	}
	caughtUp := func() {
		// (a listener started again decodes what was written without it
		// first: not during the next slice)
		testsupport.EventuallyWithin(t, "the listener caught up", 2*time.Minute, func() bool { s := r.l.Stats(); return s.Lag == 0 && s.LagBytes < 1<<20 })
	}
	for slice := range slices {
		for k := range loadModes {
			i := (k + slice) % len(loadModes) // (each mode after each other)
			m := loadModes[i]
			r.setListener(t, m.listener)
			pid, cpu := 0, time.Duration(0)
			side, sideStart, bumps, snaps := 0, time.Duration(0), uint64(0), uint64(0)
			if m.listener {
				caughtUp()
				pid = int(r.l.Stats().BackendPID)
				cpu = processCPU(pid)
				side = sidePID()
				sideStart, bumps, snaps = processCPU(side), r.l.Stats().Bumps, r.l.snapshots.Load()
			}
			self := processCPU(os.Getpid())
			n, elapsed := runLoad(t, r.dsn, m.table, 0, *loadDuration/slices)
			writes[i] += n
			took[i] += elapsed
			if m.table == "watched" {
				watchedWrites += n
			}
			if m.listener {
				caughtUp()
				senderCPU += processCPU(pid) - cpu
				decoded += n
				if m.table == "watched" {
					if side != 0 && side == sidePID() {
						sideCPU += processCPU(side) - sideStart
					}
					watchedBumps += r.l.Stats().Bumps - bumps
					snapshots += r.l.snapshots.Load() - snaps
				}
			}
			selfCPU[i] += processCPU(os.Getpid()) - self
		}
	}
	r.setListener(t, true)
	testsupport.EventuallyWithin(t, "every watched write received", 2*time.Minute, func() bool { return r.seen() >= uint64(watchedWrites) })
	var report string
	base := float64(writes[0]) / took[0].Seconds()
	for i, m := range loadModes {
		rate := float64(writes[i]) / took[i].Seconds()
		report += fmt.Sprintf("\n  %-22s %8.0f tx/s (%3.0f%%)  %d writes, this process's CPU %.1f µs a write", m.name, rate, 100*rate/base, writes[i], float64(selfCPU[i].Microseconds())/float64(max(writes[i], 1)))
	}
	watched := writes[1]
	report += fmt.Sprintf("\n  watched while the listener ran: %d commits in %d bumps (%.1f a bump), %d snapshots taken for them; the visibility checks' backend's CPU %s (%.1f µs a commit)",
		watched, watchedBumps, float64(watched)/float64(max(watchedBumps, 1)), snapshots, sideCPU, float64(sideCPU.Microseconds())/float64(max(watched, 1)))
	t.Logf("write throughput, %d connections × %s of single-row UPDATE autocommits per mode, in %d slices:%s\n  rows received by the listeners: %d of %d watched writes\n  the walsender's CPU while the listener ran: %s for %d commits (%.1f µs a commit; 0 where /proc cannot tell)",
		loadWorkers, *loadDuration, slices, report, r.seen(), watchedWrites, senderCPU, decoded, float64(senderCPU.Microseconds())/float64(max(decoded, 1)))
}

// BenchmarkWriteThroughput: b.N single-row UPDATE autocommits shared by 4
// connections, reported as tx/s, for each mode.
func BenchmarkWriteThroughput(b *testing.B) {
	r := newLoadRig(b)
	runLoad(b, r.dsn, "plain", 0, 500*time.Millisecond) // warm up
	for _, m := range loadModes {
		b.Run(m.name, func(b *testing.B) {
			r.setListener(b, m.listener)
			b.ResetTimer()
			n, elapsed := runLoad(b, r.dsn, m.table, b.N, 0)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "tx/s")
		})
	}
}

// processCPU returns the CPU time a local process has used (user and
// system; 0 when /proc cannot tell: another machine's server).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / 100 // (USER_HZ)
}
