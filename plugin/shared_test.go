package plugin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Several application instances sharing one Redis: the stale-read checker
// runs in this process and in a second process (this test binary started
// again as a child), on one PostgreSQL database and one Redis (single node
// or Cluster). Every write and every read is logged with its wall-clock
// times; afterwards every read of either process is checked against the
// writes of both that had returned before it began.

const childEnv = "GORMCACHE_SHARED_CHILD"

// quietRedis drops go-redis's own logs (dial failures while a test has
// Redis down on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(sharedChild(spec))
	}
	if spec := os.Getenv(readerEnv); spec != "" {
		os.Exit(readerChild(spec))
	}
	os.Exit(m.Run())
}

// sharedSpec is what both processes need to know.
type sharedSpec struct {
	DSN      string
	Redis    []string // one address: a single node; several: a cluster
	Prefix   string
	Duration time.Duration
	Seed     uint64
}

// logRecord is one write (At: when it returned) or read (At: when it began).
type logRecord struct {
	Write bool
	Row   int
	V     int64
	At    int64
	What  string `json:",omitempty"`
	// Top: a read of the rows of the greatest values (Row 0, V the least
	// value it returned): the rows it returned
	Top []int `json:",omitempty"`
}

func sharedDB(spec sharedSpec) (*gorm.DB, *plugin.Plugin, error) {
	var rdb redis.UniversalClient
	if len(spec.Redis) == 1 {
		rdb = redis.NewClient(&redis.Options{Addr: spec.Redis[0], ContextTimeoutEnabled: true})
	} else {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: spec.Redis, ContextTimeoutEnabled: true})
	}
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: spec.Prefix})
	if err != nil {
		return nil, nil, err
	}
	db, err := gorm.Open(postgres.Open(spec.DSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, nil, err
	}
	p := plugin.New(plugin.Config{Store: st, Logger: quiet})
	if err := db.Use(p); err != nil {
		return nil, nil, err
	}
	return db, p, nil
}

// sharedPhase: writers of both processes write in the first half of each
// phase (by the wall clock, which the processes share) and leave the second
// half quiet. While any write to a table is in flight its reads go to the
// database, and on two loaded cores the writers of two processes can keep
// the table held for the whole run; reads in the quiet halves are served
// from entries either process stored, and reads go on throughout.
const sharedPhase = 500 * time.Millisecond

// sharedSets is the number of sets the counters of TestTwoProcessesShareRedis
// are in (counters.set_id, a foreign key).
const sharedSets = 3

// quietFor returns how long writers must wait at now (0: they may write).
func quietFor(now time.Time) time.Duration {
	in := time.Duration(now.UnixNano() % int64(sharedPhase))
	if in < sharedPhase/2 {
		return 0
	}
	return sharedPhase - in
}

// sharedTables creates the counters sharedLoad works on, in sets
// (counters.set_id, a foreign key: reads by set are row-level).
func sharedTables(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := db.AutoMigrate(&Counter{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= staleRows; i++ {
		db.Create(&Counter{ID: i})
	}
	for _, q := range []string{
		"CREATE TABLE counter_sets (id bigint PRIMARY KEY)",
		"INSERT INTO counter_sets SELECT generate_series(1, " + fmt.Sprint(sharedSets) + ")",
		"ALTER TABLE counters ADD COLUMN set_id bigint REFERENCES counter_sets (id)",
		"UPDATE counters SET set_id = 1 + id % " + fmt.Sprint(sharedSets),
		"CREATE INDEX counters_v ON counters (v)", // (keyed: the greatest values are a ranged read)
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// sharedLoad runs writers and readers on db for d (on sharedTables) and
// returns their logs.
func sharedLoad(db *gorm.DB, d time.Duration, seed uint64) ([]logRecord, error) {
	var (
		mu   sync.Mutex
		logs []logRecord
		wg   sync.WaitGroup
		errs = make(chan error, 16)
		stop = time.Now().Add(d)
		next = int64(seed) << 40 // values of this process: distinct from the other's
	)
	add := func(r logRecord) {
		mu.Lock()
		logs = append(logs, r)
		mu.Unlock()
	}
	write := func(r *rand.Rand, n int64) error {
		i := 1 + r.IntN(staleRows)
		v := next + n
		var err error
		switch n % 4 {
		case 3: // moves the row to another set (a foreign key: row-level reads by set)
			err = db.Exec("UPDATE counters SET set_id = ?, v = GREATEST(v, ?) WHERE id = ?", 1+r.IntN(sharedSets), v, i).Error
		case 0:
			err = db.Exec("UPDATE counters SET v = GREATEST(v, ?) WHERE id = ?", v, i).Error
		case 1:
			err = db.Model(&Counter{}).Where("id = ?", i).Update("v", gorm.Expr("GREATEST(v, ?)", v)).Error
		default:
			err = db.Transaction(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE counters SET v = GREATEST(v, ?) WHERE id = ?", v, i).Error
			})
		}
		if errors.Is(err, store.ErrUnavailable) {
			return nil // refused before it ran (Config.BumpFailure FailWrite): nothing written
		}
		if err == nil {
			add(logRecord{Write: true, Row: i, V: v, At: time.Now().UnixNano()})
		}
		return err
	}
	read := func(r *rand.Rand) error {
		i := 1 + r.IntN(staleRows)
		began := time.Now().UnixNano()
		switch r.IntN(6) {
		case 5: // the greatest value (a ranged read: every write of another row by the
			// other process puts that row first)
			var cs []Counter
			if err := db.Order("v desc, id").Limit(1).Find(&cs).Error; err != nil {
				return err
			}
			top := logRecord{At: began, What: "Top(1)", V: cs[len(cs)-1].V}
			for _, c := range cs {
				add(logRecord{Row: c.ID, V: c.V, At: began, What: "Top(1)"})
				top.Top = append(top.Top, c.ID)
			}
			add(top)
		case 3, 4: // by a foreign key
			sets := []int{1 + r.IntN(sharedSets)}
			if r.IntN(2) == 0 {
				sets = append(sets, 1+r.IntN(sharedSets))
			}
			var cs []Counter
			if err := db.Where("set_id IN ?", sets).Order("id").Find(&cs).Error; err != nil {
				return err
			}
			for _, c := range cs {
				add(logRecord{Row: c.ID, V: c.V, At: began, What: fmt.Sprintf("Find(set_id IN %v)", sets)})
			}
		case 0:
			var c Counter
			if err := db.First(&c, i).Error; err != nil {
				return err
			}
			add(logRecord{Row: i, V: c.V, At: began, What: "First"})
		case 1:
			var v int64
			if err := db.Raw("SELECT v FROM counters WHERE id = ?", i).Scan(&v).Error; err != nil {
				return err
			}
			add(logRecord{Row: i, V: v, At: began, What: "Raw"})
		default:
			var all []Counter
			if err := db.Order("id").Find(&all).Error; err != nil {
				return err
			}
			for _, c := range all {
				add(logRecord{Row: c.ID, V: c.V, At: began, What: "Find"})
			}
		}
		return nil
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := int64(w); time.Now().Before(stop); n += 2 {
				if wait := quietFor(time.Now()); wait > 0 {
					time.Sleep(wait)
					continue
				}
				if err := write(r, n+1); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
			}
		}(w)
	}
	for rd := 0; rd < 4; rd++ {
		wg.Add(1)
		go func(rd int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 100+uint64(rd)))
			for time.Now().Before(stop) {
				if err := read(r); err != nil {
					errs <- err
					return
				}
			}
		}(rd)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return logs, err
	}
	return logs, nil
}

// childDB opens, in a child process, the database and plugin of the spec
// its parent passed (nil, after saying why on stderr, if it cannot).
func childDB(who, specJSON string) (sharedSpec, *gorm.DB, *plugin.Plugin) {
	var spec sharedSpec
	err := json.Unmarshal([]byte(specJSON), &spec)
	var db *gorm.DB
	var p *plugin.Plugin
	if err == nil {
		db, p, err = sharedDB(spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, who+":", err)
		return spec, nil, nil
	}
	return spec, db, p
}

// sharedChild is the second process: it runs the load and prints its log.
func sharedChild(specJSON string) int {
	spec, db, p := childDB("child", specJSON)
	if db == nil {
		return 2
	}
	logs, err := sharedLoad(db, spec.Duration, spec.Seed)
	p.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: query failed:", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for _, l := range logs {
		enc.Encode(l)
	}
	st := p.Stats()
	fmt.Fprintf(os.Stderr, "child: hits=%d misses=%d stores=%d\n", st.Hits, st.Misses, st.Stores)
	out.Flush()
	return 0
}

// checkLogs returns the reads that returned less than a write (of either
// process) that had returned before they began.
func checkLogs(logs []logRecord) (reads int, stale []string) {
	writes := map[int][]logRecord{}
	for _, l := range logs {
		if l.Write {
			writes[l.Row] = append(writes[l.Row], l)
		}
	}
	floors := map[int][]int64{} // prefix maxima of values by write time
	for row, ws := range writes {
		sort.Slice(ws, func(i, j int) bool { return ws[i].At < ws[j].At })
		m := make([]int64, len(ws))
		for i, w := range ws {
			m[i] = w.V
			if i > 0 && m[i-1] > m[i] {
				m[i] = m[i-1]
			}
		}
		writes[row], floors[row] = ws, m
	}
	floorAt := func(row int, at int64) int64 {
		ws := writes[row]
		n := sort.Search(len(ws), func(i int) bool { return ws[i].At >= at }) // writes returned before the read began
		if n == 0 {
			return 0
		}
		return floors[row][n-1]
	}
	for _, l := range logs {
		if l.Write {
			continue
		}
		if l.Top != nil {
			// A row whose committed value was above the least one returned
			// belongs among them.
			for row := range writes {
				if f := floorAt(row, l.At); f > l.V && !slices.Contains(l.Top, row) {
					stale = append(stale, fmt.Sprintf("%s = rows %v down to %d, but row %d had %d before", l.What, l.Top, l.V, row, f))
				}
			}
			continue
		}
		reads++
		ws := writes[l.Row]
		n := sort.Search(len(ws), func(i int) bool { return ws[i].At >= l.At }) // writes returned before the read began
		if n > 0 && l.V < floors[l.Row][n-1] {
			stale = append(stale, fmt.Sprintf("%s(%d) = %d, committed before: %d", l.What, l.Row, l.V, floors[l.Row][n-1]))
		}
	}
	return reads, stale
}

func sharedRedisAddrs(t *testing.T, mode string) []string {
	t.Helper()
	var addrs []string
	if mode == "single" {
		addrs = []string{"127.0.0.1:6379"}
	} else {
		if err := rediscluster.Use(t); err != nil {
			testdb.Unavailable(t, "redis cluster", err)
		}
		addrs = rediscluster.Addrs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if mode == "single" {
		err = redis.NewClient(&redis.Options{Addr: addrs[0]}).Ping(ctx).Err()
	} else {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		err = c.Ping(ctx).Err()
		if err == nil {
			var info string
			info, err = c.ClusterInfo(ctx).Result()
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = fmt.Errorf("cluster state: %s", info)
			}
		}
		c.Close()
	}
	if err != nil {
		testdb.Unavailable(t, "redis "+mode, err)
	}
	return addrs
}

// TestTwoProcessesShareRedis: zero stale reads across two processes sharing
// one Redis (single node, and Cluster), with reads by primary key, by a
// foreign key (row-level), of the row of the greatest value (a ranged read:
// a row that had a greater value before the read must not be missing) and
// of the whole table, and writes that move rows between the foreign key's
// values.
func TestTwoProcessesShareRedis(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			spec := sharedSpec{
				DSN:      testdb.FreshPostgres(t),
				Redis:    sharedRedisAddrs(t, mode),
				Prefix:   testdb.KeyPrefix("gct"),
				Duration: 2500 * time.Millisecond,
			}
			testdb.CleanRedis(t, redis.UniversalOptions{Addrs: spec.Redis}, spec.Prefix)
			db, p, err := sharedDB(spec)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			sharedTables(t, db)
			childSpec := spec
			childSpec.Seed = 2
			js, _ := json.Marshal(childSpec)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+string(js))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var childLogs []logRecord
			done := make(chan error, 1)
			go func() {
				dec := json.NewDecoder(stdout)
				for {
					var l logRecord
					if err := dec.Decode(&l); err != nil {
						done <- nil
						return
					}
					childLogs = append(childLogs, l)
				}
			}()
			logs, loadErr := sharedLoad(db, spec.Duration, 1)
			<-done
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
			if loadErr != nil {
				t.Fatalf("query failed: %v", loadErr)
			}
			childReads, childWrites := 0, 0
			for _, l := range childLogs {
				if l.Write {
					childWrites++
				} else {
					childReads++
				}
			}
			if childWrites == 0 || childReads == 0 {
				t.Fatalf("the child did nothing: %d writes, %d reads\n%s", childWrites, childReads, stderr.String())
			}
			all := slices.Concat(logs, childLogs)
			reads, stale := checkLogs(all)
			st := p.Stats()
			t.Logf("%s: %d records (child: %d writes, %d reads); %d reads checked; parent hits=%d misses=%d stores=%d; %s",
				mode, len(all), childWrites, childReads, reads, st.Hits, st.Misses, st.Stores, strings.TrimSpace(stderr.String()))
			if len(stale) > 0 {
				t.Fatalf("%d stale reads across processes; first: %s", len(stale), stale[0])
			}
			if st.Hits == 0 {
				t.Fatal("no hits: the shared store was not exercised")
			}
		})
	}
}

// privateRedis starts a redis-server of the test's own on a free loopback
// port (stopped at the end), so that it can be killed and restarted.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testdb.Unavailable(t, "redis-server", err)
	}
	// Below the ephemeral range (32768-60999 on Linux): clients retrying a
	// port in it while the server is down can connect to themselves (TCP
	// simultaneous open) and hold the port, so that the restart cannot
	// bind it (TestRedisDownAndBack: "did not start").
	r := &privateRedis{t: t, port: 20000 + rand.IntN(12000)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *privateRedis) start() {
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	for i := 0; i < 500; i++ { // 10s: a loaded machine starts it slowly
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Errorf("private redis-server on %d did not start", r.port) // (not Fatal: the restart runs in a goroutine)
}

func (r *privateRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// TestRedisDownAndBack: Redis killed under load and restarted empty: no
// query fails, no read is stale, and caching resumes by itself.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	rs := startPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	st, err := redisstore.New(rdb, redisstore.Config{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db := testdb.Open(t, "postgres", &gorm.Config{Logger: logger.Discard})
	p := plugin.New(plugin.Config{Store: st, Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go func() {
		time.Sleep(800 * time.Millisecond)
		rs.stop()
		time.Sleep(800 * time.Millisecond)
		rs.start() // empty: no persistence
	}()
	res := RunStaleChecker(t, db, "autocommit", 3*time.Second, nil)
	stats := p.Stats()
	t.Logf("%d writes, %d reads; hits=%d misses=%d store errors=%d bypasses=%v", res.Writes, res.Reads, stats.Hits, stats.Misses, stats.StoreErrors, stats.Bypasses)
	if res.Stale != 0 {
		t.Fatalf("%d stale reads; first: %s", res.Stale, res.FirstStale)
	}
	if stats.StoreErrors == 0 {
		t.Fatal("the store never failed: Redis was not down during the load")
	}
	waitForHits(t, db, p, "after Redis came back")
}

// waitForHits fails unless reads of a counter are hits again within 30s.
func waitForHits(t *testing.T, db *gorm.DB, p *plugin.Plugin, when string) {
	t.Helper()
	waitForHitsOf(t, p, when, func() error {
		var c Counter
		return db.First(&c, 1).Error
	})
}

// waitForHitsOf fails unless read, run twice, gives a hit within 30s (after
// an outage: the epoch bump's retry backs off up to 5s, and on two loaded
// cores a store with a 50ms timeout may fail it several times).
func waitForHitsOf(t *testing.T, p *plugin.Plugin, when string, read func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := p.Stats().Hits
		for range 2 {
			if err := read(); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
		if p.Stats().Hits > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hits 30s %s: %+v", when, p.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOutageThenLostBump: after an outage, a shared store may come back
// without the last bumps (a failover to a replica that had not received
// them; replication is asynchronous). Simulated: Redis paused (calls time
// out), and the table's version set back to what it was before a write.
// The entry read before that write must not be served.
func TestOutageThenLostBump(t *testing.T) {
	t.Parallel()
	rs := startPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	st, err := redisstore.New(rdb, redisstore.Config{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db, p := cachedDB(t, "sqlite", plugin.Config{Store: st})
	ctx := context.Background()
	// Cached (the store's first call checks its master, and a loaded
	// machine may miss the 50ms timeout once: an outage, then the epoch
	// bump, then hits).
	waitForHitsOf(t, p, "before the outage", func() error {
		var a Account
		return db.First(&a, 1).Error
	})
	const versionKey = "gc:{t:accounts}:v"
	before, err := rdb.Get(ctx, versionKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&Account{ID: 1}).Update("balance", 99).Error; err != nil {
		t.Fatal(err)
	}
	// The outage: every call times out for a while.
	admin := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer admin.Close()
	outages := p.Stats().Outages
	paused := time.Now()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "400", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// Reads during the outage, until the plugin has seen it fail (the
	// premise: an instance that made no call during it cannot notice).
	for p.Stats().Outages == outages {
		if got := readID(t, db, 1); got != 99 {
			t.Fatalf("during the outage: %d, want 99 from the database", got)
		}
		if time.Since(paused) > 350*time.Millisecond {
			t.Fatalf("no store call failed during the pause: %+v", p.Stats())
		}
	}
	time.Sleep(450*time.Millisecond - time.Since(paused))
	// The failover lost the write's bumps.
	if err := admin.Set(ctx, versionKey, before, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if got := readID(t, db, 1); got != 99 {
			t.Fatalf("after the outage: %d, the entry from before the write (want 99)", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterFailoverUnderLoad: a master of the Redis Cluster is stopped
// while the checker runs through the plugin; its replica is promoted.
// Every query is answered (the plugin fails open), no read is stale, and
// caching resumes after the promotion.
func TestClusterFailoverUnderLoad(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		testdb.Unavailable(t, "redis-server", err)
	}
	rediscluster.Lock(t)
	if err := rediscluster.OK(""); err != nil {
		testdb.Unavailable(t, "redis cluster", err)
	}
	spec := sharedSpec{DSN: testdb.FreshPostgres(t), Redis: rediscluster.Addrs, Prefix: testdb.KeyPrefix("gcf"), Duration: 7 * time.Second}
	// (registered before the node's restart, so run after it)
	testdb.CleanRedis(t, redis.UniversalOptions{Addrs: rediscluster.Addrs}, spec.Prefix)
	db, p, err := sharedDB(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sharedTables(t, db)
	ctx := context.Background()
	type result struct {
		logs []logRecord
		err  error
	}
	done := make(chan result, 1)
	go func() {
		logs, err := sharedLoad(db, spec.Duration, 1)
		done <- result{logs, err}
	}()
	time.Sleep(time.Second)
	stopped, err := rediscluster.StopMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopped.Restart(ctx, 30*time.Second); err != nil {
			t.Error(err)
		}
	})
	stoppedAt := time.Now()
	if err := stopped.WaitPromoted(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(stoppedAt)
	hitsAtPromotion := p.Stats().Hits
	res := <-done
	if res.err != nil {
		t.Fatalf("a query failed during the failover: %v", res.err)
	}
	reads, stale := checkLogs(res.logs)
	st := p.Stats()
	t.Logf("stopped %s, %s promoted after %v; %d reads checked; hits=%d (%d after the promotion) misses=%d store errors=%d",
		stopped.Victim, stopped.Heir, promoted.Round(time.Millisecond), reads, st.Hits, st.Hits-hitsAtPromotion, st.Misses, st.StoreErrors)
	if len(stale) > 0 {
		t.Fatalf("%d stale reads; first: %s", len(stale), stale[0])
	}
	if st.StoreErrors == 0 {
		t.Fatal("no store error: the failover was not seen")
	}
	waitForHits(t, db, p, "after the failover")
}

func (r *privateRedis) signal(sig os.Signal) {
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// TestRedisHung: Redis paused (SIGSTOP) under load, then refusing
// connections, with every setting at its default (the client's too): the
// store's breaker cuts it off within a few calls, so only a handful of
// queries wait for it, every query is answered right, and caching resumes
// once Redis answers again. Reported: how many queries each fault slowed.
func TestRedisHung(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts redis.Options
	}{
		{"client defaults", redis.Options{}},
		{"client honours deadlines", redis.Options{ContextTimeoutEnabled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := startPrivateRedis(t)
			opts := tc.opts
			opts.Addr = rs.addr()
			rdb := redis.NewClient(&opts)
			defer rdb.Close()
			st, err := redisstore.New(rdb, redisstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			db, p := cachedDB(t, "sqlite", plugin.Config{Store: st})
			defer p.Close()
			hit := func() error {
				var a Account
				return db.First(&a, 1).Error
			}
			waitForHitsOf(t, p, "before the faults", hit)
			// The queries a fault slowed are those whose store call
			// waited for Redis until the timeout, or failed (a latency
			// count also has the loaded machine's own stalls: reported
			// only). The breaker opens after DefaultBreakerFailures of
			// them; the other workers' calls in flight then end too, and
			// so does one probe per cooldown.
			const workers = 4
			fault := func(name string, d time.Duration, begin, end func()) {
				t.Helper()
				before := st.Stats()
				queries, slowed, slowest, err := redisLoad(db, workers, d, begin, end)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				after := st.Stats()
				failed := after.Errors - before.Errors
				t.Logf("%s for %v: %d queries; %d store calls failed (%d timed out), %d queries slower than 50ms (slowest %v); store %+v; plugin %d store errors, %d outages",
					name, d, queries, failed, after.Timeouts-before.Timeouts, slowed, slowest, after, p.Stats().StoreErrors, p.Stats().Outages)
				if after.BreakerOpens == before.BreakerOpens {
					t.Fatalf("%s: the breaker never opened: %+v", name, after)
				}
				probes := int(d/redisstore.DefaultBreakerCooldown) + 1
				if bound := redisstore.DefaultBreakerFailures + workers + probes; failed > uint64(bound) {
					t.Fatalf("%s: %d store calls reached the failing Redis; want at most %d", name, failed, bound)
				}
				if failed*10 > uint64(queries) {
					t.Fatalf("%s: %d of the %d queries reached the failing Redis: it was not cut off", name, failed, queries)
				}
			}
			fault("paused", 2*time.Second,
				func() { rs.signal(syscall.SIGSTOP) },
				func() { rs.signal(syscall.SIGCONT) })
			waitForHitsOf(t, p, "after Redis resumed", hit)
			fault("refusing connections", time.Second, rs.stop, rs.start)
			waitForHitsOf(t, p, "after Redis restarted", hit)
		})
	}
}

// redisLoad reads accounts through db from workers goroutines for d, with
// begin called once they run and end after d, and reports the queries run
// between the two, how many took over 50ms, and the slowest.
func redisLoad(db *gorm.DB, workers int, d time.Duration, begin, end func()) (queries, slowed int, slowest time.Duration, err error) {
	var (
		mu     sync.Mutex
		on     bool
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		failed = make(chan error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := 1 + (w+i)%5
				var a Account
				start := time.Now()
				err := db.First(&a, id).Error
				took := time.Since(start)
				if err != nil || a.Balance != int64(10*id) {
					failed <- fmt.Errorf("query of account %d: %v, balance %d", id, err, a.Balance)
					return
				}
				mu.Lock()
				if on {
					queries++
					if took > 50*time.Millisecond {
						slowed++
					}
					slowest = max(slowest, took)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	on = true
	mu.Unlock()
	begin()
	time.Sleep(d)
	end()
	mu.Lock()
	on = false
	mu.Unlock()
	close(stop)
	wg.Wait()
	close(failed)
	return queries, slowed, slowest, <-failed
}
