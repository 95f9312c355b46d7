package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/benchsuite"
	"github.com/gormcache/gormcache/internal/nulldb"
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
github.com/gormcache/gormcache/internal/benchsuite): First by primary
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
	if admin.Migrator().HasTable(benchsuite.Table) && !o.replace {
		return fmt.Errorf("the table %s exists in that database: bench creates, fills and drops it — pass --replace to let it replace that table (left by an interrupted run?), or use another database", benchsuite.Table)
	}
	defer func() {
		if err := admin.Migrator().DropTable(benchsuite.Table); err != nil {
			fmt.Fprintf(e.stderr, "gormcache bench: drop table %s: %v\n", benchsuite.Table, err)
		}
	}()

	var envs []*benchsuite.Env
	defer func() {
		for _, env := range envs {
			env.Close()
		}
	}()
	dbEnv, err := benchsuite.Open(name, dial, benchsuite.Options{Seed: true})
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
	null, err := benchsuite.Open("null", func() gorm.Dialector { return nulldb.Dialector(benchsuite.NullConfig()) }, benchsuite.Options{Identity: "nulldb"})
	if err != nil {
		return err
	}
	envs = append(envs, null)

	prog := newProgress(e.stderr, o.quiet, envs, o.count)
	done := make(chan []benchsuite.Results, 1)
	go func() {
		done <- benchsuite.Measure(envs, o.count, benchsuite.Hooks{Starting: prog.starting, Finished: prog.finished})
	}()
	var all []benchsuite.Results
	select {
	case all = <-done:
	case <-ctx.Done():
		prog.finish()
		return errors.New("interrupted: the table bench_rows is dropped; no figures")
	}
	prog.finish()

	rep := benchsuite.Report{Title: "gormcache bench: " + name, Benchtime: o.benchtime, Count: o.count, Null: all[len(all)-1]}
	if name == dialectPostgres {
		rep.Title = "gormcache bench: " + describePG(o.dsn)
	}
	for _, r := range all[:len(all)-1] {
		if strings.HasSuffix(r.Name, "+redis") {
			rep.Redis = append(rep.Redis, r)
		} else {
			rep.DBs = append(rep.DBs, r)
		}
	}
	rep.Write(e.stdout)
	return nil
}

// openRedisEnv opens the shared-store case: the same database through a
// plugin on Redis, under a fresh prefix whose keys it deletes at the end.
func openRedisEnv(ctx context.Context, e *env, name string, dial func() gorm.Dialector, addr string) (*benchsuite.Env, func(), error) {
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
	opt, drop, err := benchsuite.RedisStore(rdb)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	var re *benchsuite.Env
	cleanup := func() {
		if re != nil {
			re.Close() // first: nothing writes after the keys are gone
		}
		// Not ctx: the keys go after an interrupt too.
		cctx, cancel := context.WithTimeout(context.Background(), 4*e.g.timeout)
		defer cancel()
		if err := drop(cctx); err != nil {
			fmt.Fprintf(e.stderr, "gormcache bench: delete the benchmark's keys from %s: %v\n", spec, err)
		}
		rdb.Close()
	}
	re, err = benchsuite.Open(name+"+redis", dial, opt)
	if err != nil {
		cleanup()
		return nil, nil, err
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

func newProgress(w io.Writer, quiet bool, envs []*benchsuite.Env, count int) *progress {
	p := &progress{w: w, quiet: quiet, start: time.Now()}
	for _, e := range envs {
		p.total += len(benchsuite.Cases(e)) * count
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
		fig = fmt.Sprintf("%s/op, %d allocs/op", benchsuite.FmtNS(float64(res.T.Nanoseconds())/float64(res.N)), res.AllocsPerOp())
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
