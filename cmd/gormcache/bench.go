package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/cmd/gormcache-bench/suite"
	"github.com/gormcache/gormcache/internal/nulldb"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/redisstore"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

var benchCommand = &command{
	name:    "bench",
	args:    "",
	summary: "the README benchmark table (plain GORM vs cached: hit, miss, write) on your own database",
	help: `
Measures plain GORM against GORM with the plugin (in-process store) on the
database of --dsn, with the benchmarks behind README's table (package
github.com/gormcache/gormcache/cmd/gormcache-bench/suite): First by primary
key and a 100-row Find, each as a hit and as a miss, and an Update by primary
key. Every case runs --count rounds of --benchtime, round-robin, and the table
shows the medians, the allocations, and the targets (PASS/MISS for PostgreSQL;
the targets were set for PostgreSQL over loopback). A second table compares a
hit's allocations with GORM's own work against a null database. With --redis,
a third compares a hit from a Redis store with a bare GET of the same bytes.

The run creates the table bench_rows in that database, fills it with 100 rows,
and drops it at the end. It refuses to start if the table exists, unless
--replace. Progress goes to stderr (a bar on a terminal, a line per case
otherwise); the table goes to stdout.`,
	examples: `  gormcache bench --dsn "host=127.0.0.1 user=app dbname=app_bench"
  gormcache bench --dsn "host=127.0.0.1 dbname=app_bench" --redis 127.0.0.1:6379 --benchtime 5000x --count 5
  gormcache bench --dsn "mysql://app:secret@tcp(127.0.0.1:3306)/app_bench?parseTime=true"
  gormcache bench --dsn sqlite:/tmp/bench.db --benchtime 2s`,
	setup: func(fs *flag.FlagSet) runFunc {
		dsn := fs.String("dsn", "", "the database: a PostgreSQL `DSN`, mysql://DSN or sqlite:PATH (default $GORMCACHE_DSN)")
		redisAddr := fs.String("redis", "", "also measure a Redis-store hit: `ADDR` as host:port or a redis:// URL")
		benchtime := fs.String("benchtime", "2000x", "run `TIME` of each case, as go test's -benchtime (\"2s\", or \"2000x\" iterations)")
		count := fs.Int("count", 3, "`N` rounds; each figure is the median over the rounds")
		replace := fs.Bool("replace", false, "replace an existing table bench_rows (it is dropped at the end)")
		quiet := fs.Bool("quiet", false, "no progress on stderr")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("bench takes no arguments (got %q)", args)
			}
			if *count < 1 {
				return usagef("--count must be at least 1")
			}
			o := benchOptions{dsn: envDefault(*dsn, "GORMCACHE_DSN"), redis: *redisAddr, benchtime: *benchtime,
				count: *count, replace: *replace, quiet: *quiet}
			if o.dsn == "" {
				return usagef("give --dsn (or GORMCACHE_DSN): the database to measure on")
			}
			return bench(ctx, e, o)
		}
	},
}

type benchOptions struct {
	dsn, redis, benchtime string
	count                 int
	replace, quiet        bool
}

func bench(ctx context.Context, e *env, o benchOptions) error {
	if flag.Lookup("test.benchtime") == nil {
		testing.Init()
	}
	if err := flag.Set("test.benchtime", o.benchtime); err != nil {
		return usagef("--benchtime %q: %v", o.benchtime, err)
	}
	_, name, err := dialectorFor(o.dsn)
	if err != nil {
		return err
	}
	dial := func() gorm.Dialector { d, _, _ := dialectorFor(o.dsn); return d }

	// The table: refuse to replace one we did not create, drop ours at the end.
	admin, err := gorm.Open(dial(), &gorm.Config{Logger: logger.Discard, DisableAutomaticPing: true})
	if err == nil {
		if sqlDB, derr := admin.DB(); derr == nil {
			defer sqlDB.Close()
			cctx, cancel := e.withTimeout(ctx)
			err = sqlDB.PingContext(cctx)
			cancel()
		}
	}
	if err != nil {
		return fmt.Errorf("cannot connect to the %s database: %s — is the server running? check --dsn", name, netReason(err, e.g.timeout))
	}
	if admin.Migrator().HasTable(suite.Table) && !o.replace {
		return fmt.Errorf("the table %s exists in that database: bench creates, fills and drops it — pass --replace to let it replace that table (left by an interrupted run?), or use another database", suite.Table)
	}
	defer func() {
		if err := admin.Migrator().DropTable(suite.Table); err != nil {
			fmt.Fprintf(e.stderr, "gormcache bench: drop table %s: %v\n", suite.Table, err)
		}
	}()

	var envs []*suite.Env
	defer func() {
		for _, env := range envs {
			env.Close()
		}
	}()
	dbEnv, err := suite.Open(name, dial, suite.Options{Seed: true})
	if err != nil {
		return err
	}
	envs = append(envs, dbEnv)
	if o.redis != "" {
		re, cleanup, err := openRedisEnv(ctx, e, name, dial, o.redis)
		if err != nil {
			return err
		}
		defer cleanup()
		envs = append(envs, re)
	}
	null, err := suite.Open("null", func() gorm.Dialector { return nulldb.Dialector(suite.NullConfig()) }, suite.Options{Identity: "nulldb"})
	if err != nil {
		return err
	}
	envs = append(envs, null)

	prog := newProgress(e.stderr, o.quiet, envs, o.count)
	done := make(chan []benchResults, 1)
	go func() { done <- measure(envs, o.count, prog) }()
	var all []benchResults
	select {
	case all = <-done:
	case <-ctx.Done():
		prog.finish()
		return errors.New("interrupted: the table bench_rows is dropped; no figures")
	}
	prog.finish()

	rep := benchReport{benchtime: o.benchtime, count: o.count, null: all[len(all)-1], where: name}
	if name == dialectPostgres {
		rep.where = describePG(o.dsn)
	}
	for _, r := range all[:len(all)-1] {
		if strings.HasSuffix(r.name, "+redis") {
			rep.redis = append(rep.redis, r)
		} else {
			rep.dbs = append(rep.dbs, r)
		}
	}
	rep.write(e.stdout)
	return nil
}

// openRedisEnv opens the shared-store case: the same database through a
// plugin on Redis, under a fresh prefix whose version keys it deletes at the
// end (its entries expire by themselves).
func openRedisEnv(ctx context.Context, e *env, name string, dial func() gorm.Dialector, addr string) (*suite.Env, func(), error) {
	u := addr
	if !strings.Contains(u, "://") {
		u = "redis://" + addr
	}
	spec, err := parseStoreURL(u)
	if err != nil {
		return nil, nil, err
	}
	if spec.kind != kindRedis {
		return nil, nil, usagef("--redis %q is not a Redis address", addr)
	}
	rdb, err := spec.redisClient(e.g.timeout)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := e.withTimeout(ctx)
	err = rdb.Ping(cctx).Err()
	cancel()
	if err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("cannot reach %s: %s — is the server running? check --redis, or leave it out", spec, netReason(err, e.g.timeout))
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "gcbench:" + hex.EncodeToString(b[:]) + ":"
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	re, err := suite.Open(name+"+redis", dial, suite.Options{
		Store:  st,
		RawGet: func(ctx context.Context, k string) ([]byte, error) { return rdb.Get(ctx, k).Bytes() },
		RawKey: st.EntryKey,
	})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	cleanup := func() {
		var ks []string
		for _, tag := range []string{suite.Table, store.GlobalTag} {
			for _, s := range []string{"v", "u", "l"} { // redisstore's documented key layout
				ks = append(ks, prefix+"{t:"+tag+"}:"+s)
			}
		}
		for _, k := range ks {
			rdb.Del(context.Background(), k)
		}
		rdb.Close()
	}
	return re, cleanup, nil
}

// progress reports the cases on stderr: a bar on a terminal, a line per case
// otherwise.
type progress struct {
	mu          sync.Mutex
	w           io.Writer
	quiet, tty  bool
	total, done int
	start       time.Time
	stopped     bool // interrupted: the cases still running fail, unreported
}

func newProgress(w io.Writer, quiet bool, envs []*suite.Env, count int) *progress {
	p := &progress{w: w, quiet: quiet, start: time.Now()}
	for _, e := range envs {
		p.total += len(benchCases(e)) * count
	}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	if !quiet {
		fmt.Fprintf(w, "gormcache bench: %d cases (%d rounds); the table follows on stdout\n", p.total, count)
	}
	return p
}

func (p *progress) eta() string {
	if p.done == 0 {
		return "?"
	}
	el := time.Since(p.start)
	left := time.Duration(float64(el) / float64(p.done) * float64(p.total-p.done))
	return left.Round(time.Second).String()
}

// starting shows the case about to run.
func (p *progress) starting(round int, env, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet || !p.tty || p.stopped {
		return
	}
	const width = 30
	filled := width * p.done / max(p.total, 1)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r\033[K[%s] %d/%d  round %d  %s %s  eta %s", bar, p.done, p.total, round, env, name, p.eta())
}

// finished records a case's result.
func (p *progress) finished(round int, env, name string, res testing.BenchmarkResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.quiet || p.tty || p.stopped {
		return
	}
	fig := "FAILED"
	if res.N > 0 {
		fig = fmt.Sprintf("%s/op, %d allocs/op", fmtNS(float64(res.T.Nanoseconds())/float64(res.N)), res.AllocsPerOp())
	}
	fmt.Fprintf(p.w, "[%d/%d] round %d: %s %s: %s (eta %s)\n", p.done, p.total, round, env, name, fig, p.eta())
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	if !p.quiet && p.tty {
		fmt.Fprintf(p.w, "\r\033[K%d/%d cases in %s\n", p.done, p.total, time.Since(p.start).Round(time.Second))
	}
}

// figure is one case's result over the rounds: the median ns/op, the
// allocations of the last round, and whether every round ran.
type figure struct {
	ns     float64
	allocs int64
	rounds []float64
	ok     bool
}

// benchResults are the figures of one environment, by case name.
type benchResults struct {
	name string
	figs map[string]*figure
}

func (r benchResults) get(name string) figure {
	if f := r.figs[name]; f != nil {
		return *f
	}
	return figure{}
}

type benchCase struct {
	name string
	f    func(*testing.B)
}

// benchCases lists the cases of an environment, plain before cached, as
// gormcache-bench runs them.
func benchCases(e *suite.Env) []benchCase {
	switch {
	case strings.HasSuffix(e.Name, "+redis"):
		return []benchCase{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit}, {"First/get", e.FirstGet},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	case e.Name == "null":
		return []benchCase{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	}
	return []benchCase{
		{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit},
		{"First/plain_inv", e.FirstPlainInv}, {"First/miss", e.FirstMiss},
		{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		{"Find100/plain_inv", e.Find100PlainInv}, {"Find100/miss", e.Find100Miss},
		{"Write/plain", e.WritePlain}, {"Write/cached", e.WriteCached},
		{"Invalidate", e.Invalidate},
	}
}

// measure runs every case of every environment count times, round-robin, so
// that a slow spell of the machine hits plain and cached alike, and keeps
// the median of each.
func measure(envs []*suite.Env, count int, p *progress) []benchResults {
	out := make([]benchResults, len(envs))
	for i, e := range envs {
		out[i] = benchResults{name: e.Name, figs: map[string]*figure{}}
	}
	for round := 1; round <= count; round++ {
		for i, e := range envs {
			for _, c := range benchCases(e) {
				p.starting(round, e.Name, c.name)
				res := testing.Benchmark(c.f)
				p.finished(round, e.Name, c.name, res)
				f := out[i].figs[c.name]
				if f == nil {
					f = &figure{ok: true}
					out[i].figs[c.name] = f
				}
				if res.N == 0 { // testing.Benchmark reports a failed benchmark as a zero result
					f.ok = false
					continue
				}
				f.rounds = append(f.rounds, float64(res.T.Nanoseconds())/float64(res.N))
				f.allocs = res.AllocsPerOp()
			}
		}
	}
	for _, r := range out {
		for _, f := range r.figs {
			if len(f.rounds) == 0 {
				f.ok = false
				continue
			}
			v := slices.Clone(f.rounds)
			slices.Sort(v)
			f.ns = v[len(v)/2]
			if len(v)%2 == 0 {
				f.ns = (v[len(v)/2-1] + v[len(v)/2]) / 2
			}
		}
	}
	return out
}

// The targets of README (PostgreSQL over loopback, in-process store).
const (
	targetFirstHit  = 10.0 // plain/hit
	targetFindHit   = 5.0  // plain/hit
	targetMiss      = 1.10 // miss/plain
	targetWrite     = 1.05 // cached/plain
	targetHitAllocs = 10   // hit allocs − null-database allocs
	targetRedisGet  = 1.3  // Redis-store hit / bare GET
)

type benchReport struct {
	where     string // the database
	benchtime string
	count     int
	dbs       []benchResults
	null      benchResults
	redis     []benchResults
}

func fmtNS(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

// verdict says PASS or MISS for a PostgreSQL figure; the targets are
// PostgreSQL's.
func verdict(db string, ok bool) string {
	switch {
	case db != dialectPostgres:
		return "(no target)"
	case ok:
		return "PASS"
	}
	return "MISS"
}

func (rep benchReport) write(w io.Writer) {
	fmt.Fprintf(w, "gormcache bench: %s; %s/%s, %d CPUs, %s; in-process store; medians of %d rounds of %s per case.\n\n",
		rep.where, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), rep.count, rep.benchtime)
	fmt.Fprintln(w, "| database | case | plain | cached | ratio | target | allocs/op plain → cached | result |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|---:|---|")
	for _, r := range rep.dbs {
		row := func(name, plainCase, cachedCase string, hit bool, target float64) {
			plain, cached := r.get(plainCase), r.get(cachedCase)
			var ratio float64
			var ok bool
			tgt := fmt.Sprintf("cached/plain ≤ %.2f", target)
			if hit {
				tgt = fmt.Sprintf("plain/cached ≥ %g×", target)
			}
			res := "FAILED"
			if plain.ok && cached.ok {
				if hit {
					ratio = plain.ns / cached.ns
					ok = ratio >= target
				} else {
					ratio = cached.ns / plain.ns
					ok = ratio <= target
				}
				res = verdict(r.name, ok)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %d → %d | %s |\n",
				r.name, name, fmtNS(plain.ns), fmtNS(cached.ns), ratio, tgt, plain.allocs, cached.allocs, res)
		}
		row("First by key, hit", "First/plain", "First/hit", true, targetFirstHit)
		row("Find 100 rows, hit", "Find100/plain", "Find100/hit", true, targetFindHit)
		row("First by key, miss †", "First/plain_inv", "First/miss", false, targetMiss)
		row("Find 100 rows, miss †", "Find100/plain_inv", "Find100/miss", false, targetMiss)
		row("Update by key ‡", "Write/plain", "Write/cached", false, targetWrite)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "† every iteration a miss: Plugin.Invalidate of the table before each query; the plain figure makes the same call")
	fmt.Fprint(w, "  each iteration (it cannot affect the plain handle), so both carry its cost:")
	for _, r := range rep.dbs {
		fmt.Fprintf(w, " %s %s/op (%d allocs);", r.name, fmtNS(r.get("Invalidate").ns), r.get("Invalidate").allocs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "‡ db.Model(&BenchRow{ID: id}).Update(\"age\", n), in GORM's default transaction.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Allocations of a hit against GORM's own work (GORM + database/sql over a null database that answers instantly")
	fmt.Fprintln(w, "with the driver values pgx returns for the same rows):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| case | null db, plain GORM | null db, hit |")
	for _, r := range rep.dbs {
		fmt.Fprintf(w, " %s hit |", r.name)
	}
	fmt.Fprintln(w, " extra allocs of a hit | target | result |")
	fmt.Fprintln(w, "|---|---:|---:|"+strings.Repeat("---:|", len(rep.dbs))+"---:|---|---|")
	allocRow := func(name, plainCase, hitCase string) {
		plain, hit := rep.null.get(plainCase), rep.null.get(hitCase)
		extra := hit.allocs - plain.allocs
		cols := ""
		for _, r := range rep.dbs {
			f := r.get(hitCase)
			cols += fmt.Sprintf(" %d |", f.allocs)
			if f.allocs-plain.allocs > extra {
				extra = f.allocs - plain.allocs
			}
		}
		res := "PASS"
		if extra > targetHitAllocs {
			res = "MISS"
		}
		if !plain.ok || !hit.ok {
			res = "FAILED"
		}
		fmt.Fprintf(w, "| %s | %d (%s) | %d (%s) |%s %+d | ≤ +%d | %s |\n", name,
			plain.allocs, fmtNS(plain.ns), hit.allocs, fmtNS(hit.ns), cols, extra, targetHitAllocs, res)
	}
	allocRow("First by key", "First/plain", "First/hit")
	allocRow("Find 100 rows", "Find100/plain", "Find100/hit")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Extra allocs: a hit (on the null database, or on yours if more) minus plain GORM on the null database.")
	for _, r := range rep.redis {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Shared store: the same %s table cached in Redis (store/redisstore, one client):\n", strings.TrimSuffix(r.name, "+redis"))
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| case | plain GORM | Redis-store hit | bare GET of the entry | plain/hit | hit/GET | target | allocs plain → hit |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---:|")
		get := r.get("First/get")
		for _, c := range []struct{ name, plain, hit string }{{"First by key", "First/plain", "First/hit"}, {"Find 100 rows", "Find100/plain", "Find100/hit"}} {
			plain, hit := r.get(c.plain), r.get(c.hit)
			tgt, getCol, ratioGet := "", "—", "—"
			if c.plain == "First/plain" && get.ok && hit.ok {
				getCol = fmtNS(get.ns)
				ratio := hit.ns / get.ns
				ratioGet = fmt.Sprintf("%.2f×", ratio)
				res := "MISS"
				if ratio <= targetRedisGet {
					res = "PASS"
				}
				tgt = fmt.Sprintf("hit/GET ≤ %g×: %s", targetRedisGet, res)
			}
			ratio := 0.0
			if hit.ns > 0 {
				ratio = plain.ns / hit.ns
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %s | %d → %d |\n", c.name, fmtNS(plain.ns), fmtNS(hit.ns), getCol, ratio, ratioGet, tgt, plain.allocs, hit.allocs)
		}
	}
}
