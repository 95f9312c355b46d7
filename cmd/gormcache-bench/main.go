// Command gormcache-bench measures gormcache against plain GORM and prints a
// Markdown table of the figures and of the performance targets (PASS/MISS).
//
//	go run ./cmd/gormcache-bench                 # SQLite and a fresh PostgreSQL database
//	go run ./cmd/gormcache-bench -pg off         # SQLite and the null database only
//	go run ./cmd/gormcache-bench -pg 'host=… dbname=…' -benchtime 5000x
//	go run ./cmd/gormcache-bench -workload       # the workload benchmark (PostgreSQL)
//	go run ./cmd/gormcache-bench -console -count 21   # the console's cost on a First hit only
//
// The targets (PostgreSQL over loopback, in-process store): a hit ≥ 10× faster
// than plain GORM for First by primary key and ≥ 5× for a 100-row Find; a miss
// ≤ 10% slower than plain GORM; a write ≤ 5% slower; a hit allocating at most
// 10 objects more than GORM's own work for the same call against a null
// database (one that answers instantly with canned rows). A missed target is
// reported, not an error: the program exits 0 once it has measured.
//
// The measurements are those of the plugin's benchmarks (package internal/benchsuite).
//
// Every run also measures a First hit with the console (package console)
// collecting and without (target: at most 3% apart); -console measures only
// that, on SQLite and the null database, the two cases in turn in each round,
// in wall time and in the CPU time of the thread running the hits.
//
// With -workload it runs the workload benchmark instead: one seeded request
// sequence of reads and writes of a users and a posts table, from -clients
// concurrent clients for -duration, against plain GORM, gormcache
// table-level and gormcache row-level on PostgreSQL, and simulated for an
// ideal cache; at each of -writes percentages of writes. It prints requests
// per second, database queries per read and the plugin's Stats of each, and
// the workload targets: queries per read at most 1.15× the ideal's, requests
// per second at least plain GORM's at 10% writes and 1.5× at 1%.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/internal/benchsuite"
	"github.com/gormcache/gormcache/internal/nulldb"
	"github.com/gormcache/gormcache/internal/pgadmin"
	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// DefaultPGAdmin is the connection used to create (and drop) the fresh
// PostgreSQL database when -pg is not given.
const DefaultPGAdmin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gormcache-bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gormcache-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "", `PostgreSQL DSN to measure on; "" creates a fresh database through -pg-admin (dropped at exit); "off" skips PostgreSQL`)
	pgAdmin := fs.String("pg-admin", DefaultPGAdmin, "PostgreSQL admin DSN, used to create and drop the fresh database")
	withSQLite := fs.Bool("sqlite", true, "measure SQLite too (a file in a temporary directory)")
	benchtime := fs.String("benchtime", "2000x", `run time of each case, as go test's -benchtime ("2s", or "2000x" for a fixed count)`)
	count := fs.Int("count", 5, "rounds; each case's figure is its median over the rounds")
	redisAddr := fs.String("redis", "127.0.0.1:6379", `Redis address for the shared-store cases (on PostgreSQL); "off" skips them`)
	workload := fs.Bool("workload", false, "run the workload benchmark (PostgreSQL only) instead of the per-call cases")
	duration := fs.Duration("duration", 10*time.Second, "-workload: run time of each configuration at each write rate")
	requests := fs.Int("requests", 0, "-workload: run exactly this many requests per configuration instead of -duration (with -clients 1 the read results are compared)")
	clients := fs.Int("clients", 8, "-workload: concurrent clients")
	writes := fs.String("writes", "10,1", "-workload: percentages of writes, one run each, comma-separated")
	seed := fs.Uint64("seed", 1, "-workload: seed of the request sequence")
	consoleOnly := fs.Bool("console", false, "measure only the console's cost: a First hit with the console collecting and without, in turn (SQLite unless -sqlite=false, and the null database; no PostgreSQL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *workload {
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		var pcts []float64
		for _, f := range strings.Split(*writes, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v < 0 || v > 100 {
				return fmt.Errorf("-writes: %q is not a percentage", f)
			}
			pcts = append(pcts, v)
		}
		if *clients < 1 || *duration <= 0 || *requests < 0 {
			return fmt.Errorf("-clients, -duration and -requests must be positive")
		}
		opt := benchsuite.WorkloadOptions{Clients: *clients, Duration: *duration, Requests: *requests, Writes: pcts, Seed: *seed,
			Progress: func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }}
		return runWorkload(*pg, *pgAdmin, opt, stdout)
	}
	if *count < 1 {
		return fmt.Errorf("-count must be at least 1")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if flag.Lookup("test.benchtime") == nil {
		testing.Init()
	}
	if err := flag.Set("test.benchtime", *benchtime); err != nil {
		return fmt.Errorf("-benchtime: %w", err)
	}

	var envs []*benchsuite.Env
	defer func() {
		for _, e := range envs {
			e.Close()
		}
	}()

	if *withSQLite {
		dir, err := os.MkdirTemp("", "gormcache-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dsn := "file:" + filepath.Join(dir, "bench.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
		e, err := benchsuite.Open("sqlite", func() gorm.Dialector { return sqlite.Open(dsn) }, benchsuite.Options{Seed: true})
		if err != nil {
			return err
		}
		envs = append(envs, e)
	}
	if *pg != "off" && !*consoleOnly {
		dsn := *pg
		if dsn == "" {
			var drop func()
			var err error
			dsn, drop, err = pgadmin.Fresh(*pgAdmin)
			if err != nil {
				return err
			}
			defer drop()
		}
		e, err := benchsuite.Open("postgres", func() gorm.Dialector { return postgres.Open(dsn) }, benchsuite.Options{Seed: true})
		if err != nil {
			return err
		}
		envs = append(envs, e)
		if *redisAddr != "off" {
			rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
			defer rdb.Close()
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				return fmt.Errorf("Redis unreachable at %s (use -redis off to skip it): %w", *redisAddr, err)
			}
			opt, drop, err := benchsuite.RedisStore(rdb)
			if err != nil {
				return err
			}
			var re *benchsuite.Env
			defer func() {
				if re != nil {
					re.Close() // first: nothing writes after the keys are gone
				}
				if err := drop(context.Background()); err != nil {
					fmt.Fprintf(stderr, "delete the benchmark's keys from Redis at %s: %v\n", *redisAddr, err)
				}
			}()
			re, err = benchsuite.Open("postgres+redis", func() gorm.Dialector { return postgres.Open(dsn) }, opt)
			if err != nil {
				return err
			}
			envs = append(envs, re)
		}
	}
	cfg := benchsuite.NullConfig()
	null, err := benchsuite.Open("null", func() gorm.Dialector { return nulldb.Dialector(cfg) }, benchsuite.Options{Identity: "nulldb"})
	if err != nil {
		return err
	}
	envs = append(envs, null)

	fmt.Fprintf(stderr, "measuring: %d rounds, benchtime %s\n", *count, *benchtime)
	hooks := benchsuite.Hooks{Finished: func(round int, env, name string, res testing.BenchmarkResult) {
		if res.N == 0 {
			fmt.Fprintf(stderr, "round %d: %s/%s: FAILED\n", round, env, name)
			return
		}
		fmt.Fprintf(stderr, "round %d: %s/%s:\t%s\t%s\n", round, env, name, res.String(), res.MemString())
	}}
	if *consoleOnly {
		all, err := benchsuite.MeasureConsole(envs, *count, 20000, hooks)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "gormcache-bench -console; %d CPUs, %s; in-process store; medians of %d rounds of %s per case.\n\n", runtime.NumCPU(), runtime.Version(), *count, *benchtime)
		benchsuite.WriteConsole(stdout, all)
		return nil
	}
	all := benchsuite.Measure(envs, *count, hooks)
	rep := benchsuite.Report{Title: "gormcache-bench", Benchtime: *benchtime, Count: *count, Null: all[len(all)-1]}
	for _, r := range all[:len(all)-1] {
		if strings.HasSuffix(r.Name, "+redis") {
			rep.Redis = append(rep.Redis, r)
		} else {
			rep.DBs = append(rep.DBs, r)
		}
	}
	rep.Write(stdout)
	return nil
}

// runWorkload runs the workload benchmark on pg, or on a fresh database
// created through pgAdmin (and dropped) when pg is "".
func runWorkload(pg, pgAdmin string, opt benchsuite.WorkloadOptions, stdout io.Writer) error {
	if pg == "off" {
		return fmt.Errorf("-workload runs on PostgreSQL: -pg off leaves it nothing to measure")
	}
	opt.DSN = pg
	if pg == "" {
		dsn, drop, err := pgadmin.Fresh(pgAdmin)
		if err != nil {
			return err
		}
		defer drop()
		opt.DSN = dsn
	}
	rep, err := benchsuite.Workload(context.Background(), opt)
	if err != nil {
		return err
	}
	rep.Write(stdout)
	return nil
}
