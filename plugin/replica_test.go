package plugin_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// A "replica" that is deliberately late: a second PostgreSQL database that
// a background job brings up to the source's state, replicaLag after the
// state was read. It is registered as the replica through dbresolver, so
// reads go to it and writes to the source.
const replRows = 3

type lateReplica struct {
	src, dst *sql.DB
	stop     chan struct{}
	done     sync.WaitGroup
}

// startLateReplica returns the replica's own history: when each value was
// applied to it.
func startLateReplica(t *testing.T, srcDSN, dstDSN string, lag time.Duration) *history {
	t.Helper()
	src, err := sql.Open("pgx", srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := sql.Open("pgx", dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	r := &lateReplica{src: src, dst: dst, stop: make(chan struct{})}
	applied := &history{}
	type snapshot struct {
		at   time.Time
		vals map[int]int64
		beat int64
	}
	snaps := make(chan snapshot, 1024)
	r.done.Add(2)
	go func() { // read the source's state every 10ms
		defer r.done.Done()
		defer close(snaps)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			rows, err := src.Query("SELECT id, v FROM counters")
			if err != nil {
				continue
			}
			s := snapshot{at: time.Now(), vals: map[int]int64{}}
			for rows.Next() {
				var id int
				var v int64
				if rows.Scan(&id, &v) == nil {
					s.vals[id] = v
				}
			}
			rows.Close()
			src.QueryRow("SELECT at FROM gc_heartbeat WHERE id = 1").Scan(&s.beat)
			snaps <- s
		}
	}()
	go func() { // apply each state replicaLag after it was read
		defer r.done.Done()
		// Only what changed is written, and a state already superseded by
		// a later one that is also due is skipped: applying every snapshot
		// (four commits each, every 10ms) falls behind on loaded cores, and
		// the replica's lag then grows past the window under test.
		cur := map[int]int64{}
		var beat int64
		var next *snapshot
		for {
			var s snapshot
			if next != nil {
				s, next = *next, nil
			} else {
				var ok bool
				if s, ok = <-snaps; !ok {
					return
				}
			}
			time.Sleep(time.Until(s.at.Add(lag)))
		drain:
			for {
				select {
				case later, ok := <-snaps:
					if !ok {
						break drain
					}
					if later.at.Add(lag).After(time.Now()) {
						next = &later
						break drain
					}
					s = later
				default:
					break drain
				}
			}
			for id, v := range s.vals {
				if c, ok := cur[id]; ok && c == v {
					continue
				}
				if _, err := dst.Exec("UPDATE counters SET v = $1 WHERE id = $2", v, id); err == nil {
					cur[id] = v
					applied.add(id, v)
				}
			}
			if s.beat != 0 && s.beat != beat {
				if _, err := dst.Exec("INSERT INTO gc_heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = $1", s.beat); err == nil {
					beat = s.beat
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(r.stop)
		r.done.Wait()
		src.Close()
		dst.Close()
	})
	return applied
}

// history records, per row, when each value's write returned.
type history struct {
	mu     sync.Mutex
	writes [replRows + 1][]timedValue
}

type timedValue struct {
	at time.Time
	v  int64
}

func (h *history) add(i int, v int64) {
	h.mu.Lock()
	h.writes[i] = append(h.writes[i], timedValue{time.Now(), v})
	h.mu.Unlock()
}

// reached is when row i first held v or more, if it has.
func (h *history) reached(i int, v int64) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.writes[i] {
		if w.v >= v {
			return w.at, true
		}
	}
	return time.Time{}, false
}

// floor is the largest value whose write had returned by t.
func (h *history) floor(i int, t time.Time) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var f int64
	for _, w := range h.writes[i] {
		if !w.at.After(t) && w.v > f {
			f = w.v
		}
	}
	return f
}

// runReplicaChecker writes through the source and reads through the
// replica (via the cache) for d. A read is stale when it returns less than
// the replica itself held when the read began: the cache made it worse than
// plain GORM on the replica. (lagged counts the reads older than the value
// committed maxLag before they began: the replica's own lag, for the log.)
// slowest is the longest any write took to reach the replica (or, for one
// that never did, the time from its return to the end of the run).
func runReplicaChecker(t *testing.T, db *gorm.DB, replica *history, d, maxLag, pause time.Duration) (reads, stale, lagged int64, first string, slowest time.Duration) {
	var (
		h    history
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		stop = time.Now().Add(d)
	)
	wg.Add(1)
	go func() { // one writer: a write, then a pause longer than the window
		defer wg.Done()
		for n := 0; time.Now().Before(stop); n++ {
			i := 1 + n%replRows
			v := next.Add(1)
			var err error
			if n%2 == 0 {
				err = db.Exec("UPDATE counters SET v = GREATEST(v, ?) WHERE id = ?", v, i).Error
			} else {
				err = db.Model(&Counter{}).Where("id = ?", i).Update("v", gorm.Expr("GREATEST(v, ?)", v)).Error
			}
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
			h.add(i, v)
			time.Sleep(pause)
		}
	}()
	for rd := 0; rd < 4; rd++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for time.Now().Before(stop) {
				i := 1 + r.IntN(replRows)
				began := time.Now()
				want := h.floor(i, began.Add(-maxLag))
				held := replica.floor(i, began)
				var c Counter
				if err := db.WithContext(context.Background()).First(&c, i).Error; err != nil {
					t.Errorf("read: %v", err)
					return
				}
				atomic.AddInt64(&reads, 1)
				if c.V < want {
					atomic.AddInt64(&lagged, 1)
				}
				if c.V < held {
					atomic.AddInt64(&stale, 1)
					mu.Lock()
					if first == "" {
						first = fmt.Sprintf("First(%d) = %d, the replica held %d when the read began (committed %v before: %d)", i, c.V, held, maxLag, want)
					}
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}(uint64(rd + 1))
	}
	wg.Wait()
	end := time.Now()
	for i := 1; i <= replRows; i++ {
		for _, w := range h.writes[i] {
			at, ok := replica.reached(i, w.v)
			if !ok {
				at = end
			}
			slowest = max(slowest, at.Sub(w.at))
		}
	}
	return reads, stale, lagged, first, slowest
}

// replicaCase is one configuration of TestReplicaLag.
type replicaCase struct {
	name        string
	cacheFirst  bool
	lag, window time.Duration
	heartbeat   bool
	expectStale bool
}

// TestReplicaLag: with dbresolver sending reads to a late replica, the
// cache makes nothing staler than the replica already is, in both
// registration orders; with ReplicaWindow set shorter than the lag, it
// does (the test shows the stale reads it then allows).
//
// The window promises nothing about a replica later than the window, so a
// case that expects no stale reads of a replica within it is run again
// (up to three times in all) when the late replica itself, slowed by a
// loaded machine, took longer than that to apply a write; it fails if no
// run kept to the premise.
func TestReplicaLag(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	cases := []replicaCase{
		{"cache-then-resolver", true, 150 * ms, 600 * ms, true, false},
		{"resolver-then-cache", false, 150 * ms, 600 * ms, false, false},
		{"window-too-short", true, 150 * ms, 5 * ms, false, true},
		// a replica further behind than the window: the window alone lets
		// stale rows in; the heartbeat keeps that replica from filling the cache
		{"behind-without-heartbeat", true, 800 * ms, 300 * ms, false, true},
		{"behind-with-heartbeat", false, 800 * ms, 300 * ms, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const attempts = 3
			for attempt := 1; ; attempt++ {
				conclusive := true
				t.Run(fmt.Sprintf("run%d", attempt), func(t *testing.T) { conclusive = replicaLagRun(t, c) })
				if conclusive || t.Failed() {
					return
				}
				if attempt == attempts {
					t.Fatalf("in %d runs the late replica itself took longer than the window (%v) to apply a write: too loaded to tell", attempts, c.window)
				}
			}
		})
	}
}

// replicaLagRun runs one case on fresh databases. It reports false, having
// checked only what does not depend on it, when the case needs the replica
// within the window and the replica was not.
func replicaLagRun(t *testing.T, c replicaCase) (conclusive bool) {
	const ms = time.Millisecond
	srcDSN, dstDSN := testdb.FreshPostgres(t), testdb.FreshPostgres(t)
	for _, dsn := range []string{srcDSN, dstDSN} {
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdb.Exec("CREATE TABLE counters (id int PRIMARY KEY, v bigint NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := sdb.Exec("CREATE TABLE gc_heartbeat (id integer PRIMARY KEY, at bigint NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= replRows; i++ {
			sdb.Exec("INSERT INTO counters VALUES ($1, 0)", i)
		}
		sdb.Close()
	}
	replica := startLateReplica(t, srcDSN, dstDSN, c.lag)
	db, err := gorm.Open(postgres.Open(srcDSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	cfg := plugin.Config{ReplicaWindow: c.window, Logger: quiet}
	if c.heartbeat {
		cfg.ReplicaHeartbeat = "gc_heartbeat"
	}
	p := plugin.New(cfg)
	resolver := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(dstDSN)}})
	uses := []gorm.Plugin{p, resolver}
	if !c.cacheFirst {
		uses = []gorm.Plugin{resolver, p}
	}
	for _, u := range uses {
		if err := db.Use(u); err != nil {
			t.Fatal(err)
		}
	}
	defer p.Close()
	maxLag := c.lag + 150*ms // the copier's own delays, with margin
	// A write, then a pause longer than the window: three writes, each
	// followed by reads the cache may serve once the window has passed.
	pause := max(1000*ms, c.lag+700*ms)
	reads, stale, lagged, first, slowest := runReplicaChecker(t, db, replica, 2*pause+500*ms, maxLag, pause)
	st := p.Stats()
	t.Logf("%s: %d reads, %d staler than the replica, %d older than %v; hits=%d misses=%d stores=%d bypasses=%v lags=%v; slowest write to reach the replica %v",
		c.name, reads, stale, lagged, maxLag, st.Hits, st.Misses, st.Stores, st.Bypasses, p.ReplicaLags(), slowest)
	// dbresolver registered first hands GORM's default transaction a
	// pool it captured before the plugin wrapped it: unless adopted,
	// the commit goes unseen and the table stays held for WriteLease.
	if n := st.Bypasses["write_in_flight"]; n > 300 {
		t.Fatalf("%d reads found the table held: a write's commit was not seen", n)
	}
	// The margin: a write's version changes before the write returns, and
	// the heartbeat (written every quarter window) sees a replica later
	// than it is by up to its own interval.
	margin := 50 * ms
	if c.heartbeat {
		margin += c.window / 4
	}
	if c.lag < c.window && slowest+margin > c.window {
		t.Logf("inconclusive: the replica itself took %v to apply a write, the window is %v", slowest, c.window)
		return false
	}
	switch {
	case c.lag > c.window && c.heartbeat:
		if st.Bypasses["replica_behind"] == 0 {
			t.Fatal("the heartbeat did not find the replica behind")
		}
	case st.Hits == 0:
		t.Fatal("no hits: the cache was not exercised")
	}
	if c.expectStale && stale == 0 {
		t.Fatal("with the window shorter than the lag, the checker saw no stale read: it cannot tell")
	}
	if !c.expectStale && stale != 0 {
		t.Fatalf("%d stale reads beyond the replica's own lag; first: %s", stale, first)
	}
	return true
}
