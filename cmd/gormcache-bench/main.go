// Command gormcache-bench measures gormcache against plain GORM and prints a
// Markdown table of the figures and of the performance targets (PASS/MISS).
//
//	go run ./cmd/gormcache-bench                 # SQLite and a fresh PostgreSQL database
//	go run ./cmd/gormcache-bench -pg off         # SQLite and the null database only
//	go run ./cmd/gormcache-bench -pg 'host=… dbname=…' -benchtime 5000x
//
// The targets (PostgreSQL over loopback, in-process store): a hit ≥ 10× faster
// than plain GORM for First by primary key and ≥ 5× for a 100-row Find; a miss
// ≤ 10% slower than plain GORM; a write ≤ 5% slower; a hit allocating at most
// 10 objects more than GORM's own work for the same call against a null
// database (one that answers instantly with canned rows). A missed target is
// reported, not an error: the program exits 0 once it has measured.
//
// The measurements are those of the plugin's benchmarks (package suite).
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/cmd/gormcache-bench/suite"
	"github.com/gormcache/gormcache/internal/nulldb"
	"github.com/gormcache/gormcache/store/redisstore"
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

// Targets.
const (
	targetFirstHit  = 10.0 // plain/hit
	targetFindHit   = 5.0  // plain/hit
	targetMiss      = 1.10 // miss/plain
	targetWrite     = 1.05 // cached/plain
	targetHitAllocs = 10   // hit allocs − null-database allocs
)

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gormcache-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("pg", "", `PostgreSQL DSN to measure on; "" creates a fresh database through -pg-admin (dropped at exit); "off" skips PostgreSQL`)
	pgAdmin := fs.String("pg-admin", DefaultPGAdmin, "PostgreSQL admin DSN, used to create and drop the fresh database")
	withSQLite := fs.Bool("sqlite", true, "measure SQLite too (a file in a temporary directory)")
	benchtime := fs.String("benchtime", "2000x", `run time of each case, as go test's -benchtime ("2s", or "2000x" for a fixed count)`)
	count := fs.Int("count", 5, "rounds; each case's figure is its median over the rounds")
	redisAddr := fs.String("redis", "127.0.0.1:6379", `Redis address for the shared-store cases (on PostgreSQL); "off" skips them`)
	if err := fs.Parse(args); err != nil {
		return err
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

	var envs []*suite.Env
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
		e, err := suite.Open("sqlite", func() gorm.Dialector { return sqlite.Open(dsn) }, suite.Options{Seed: true})
		if err != nil {
			return err
		}
		envs = append(envs, e)
	}
	if *pg != "off" {
		dsn := *pg
		if dsn == "" {
			var drop func()
			var err error
			dsn, drop, err = freshPostgres(*pgAdmin)
			if err != nil {
				return err
			}
			defer drop()
		}
		e, err := suite.Open("postgres", func() gorm.Dialector { return postgres.Open(dsn) }, suite.Options{Seed: true})
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
			var b [4]byte
			_, _ = rand.Read(b[:])
			prefix := "gcbench:" + hex.EncodeToString(b[:]) + ":"
			st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
			if err != nil {
				return err
			}
			re, err := suite.Open("postgres+redis", func() gorm.Dialector { return postgres.Open(dsn) }, suite.Options{
				Store:  st,
				RawGet: func(ctx context.Context, k string) ([]byte, error) { return rdb.Get(ctx, k).Bytes() },
				RawKey: st.EntryKey,
			})
			if err != nil {
				return err
			}
			envs = append(envs, re)
		}
	}
	cfg := suite.NullConfig()
	null, err := suite.Open("null", func() gorm.Dialector { return nulldb.Dialector(cfg) }, suite.Options{Identity: "nulldb"})
	if err != nil {
		return err
	}
	envs = append(envs, null)

	fmt.Fprintf(stderr, "measuring: %d rounds, benchtime %s\n", *count, *benchtime)
	all := measure(envs, *count, stderr)
	rep := report{benchtime: *benchtime, count: *count, null: all[len(all)-1]}
	for _, r := range all[:len(all)-1] {
		if r.name == "postgres+redis" {
			rep.redis = append(rep.redis, r)
		} else {
			rep.dbs = append(rep.dbs, r)
		}
	}
	rep.write(stdout)
	return nil
}

// freshPostgres creates a database through admin and returns its DSN and
// the function dropping it.
func freshPostgres(admin string) (string, func(), error) {
	db, err := sql.Open("pgx", admin)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL unreachable through %q (use -pg off to skip it): %w", admin, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gcbench_" + hex.EncodeToString(b[:])
	if _, err := db.Exec(`CREATE DATABASE "` + name + `"`); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		defer db.Close()
		if _, err := db.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`); err != nil {
			fmt.Fprintf(os.Stderr, "gormcache-bench: drop database %s: %v\n", name, err)
		}
	}
	return replaceDBName(admin, name), drop, nil
}

// replaceDBName sets dbname in a key=value DSN.
func replaceDBName(dsn, name string) string {
	var out []string
	found := false
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "dbname=") {
			f, found = "dbname="+name, true
		}
		out = append(out, f)
	}
	if !found {
		out = append(out, "dbname="+name)
	}
	return strings.Join(out, " ")
}

// figure is one case's result over the rounds: the median ns/op, the
// allocations of the last round (they do not vary), and whether every round
// ran.
type figure struct {
	ns     float64
	allocs int64
	rounds []float64
	ok     bool
}

// results of one database, by case name ("First/plain", …).
type results struct {
	name string
	figs map[string]*figure
}

func (r results) get(name string) figure {
	if f := r.figs[name]; f != nil {
		return *f
	}
	return figure{}
}

// cases lists the cases measured on a database, plain before cached, as the
// benchmarks of the plugin run them.
func cases(e *suite.Env) []struct {
	name string
	f    func(*testing.B)
} {
	type c = struct {
		name string
		f    func(*testing.B)
	}
	if e.Name == "postgres+redis" {
		return []c{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit}, {"First/get", e.FirstGet},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	}
	if e.Name == "null" {
		return []c{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	}
	return []c{
		{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit},
		{"First/plain_inv", e.FirstPlainInv}, {"First/miss", e.FirstMiss},
		{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		{"Find100/plain_inv", e.Find100PlainInv}, {"Find100/miss", e.Find100Miss},
		{"Write/plain", e.WritePlain}, {"Write/cached", e.WriteCached},
		{"Invalidate", e.Invalidate},
	}
}

// measure runs every case of every database count times, round-robin, so
// that a slow spell of the machine hits plain and cached alike, and keeps the
// median of each.
func measure(envs []*suite.Env, count int, log io.Writer) []results {
	out := make([]results, len(envs))
	for i, e := range envs {
		out[i] = results{name: e.Name, figs: map[string]*figure{}}
	}
	for round := 1; round <= count; round++ {
		for i, e := range envs {
			for _, c := range cases(e) {
				res := testing.Benchmark(c.f)
				f := out[i].figs[c.name]
				if f == nil {
					f = &figure{ok: true}
					out[i].figs[c.name] = f
				}
				if res.N == 0 {
					// testing.Benchmark reports a failed benchmark as a zero result.
					fmt.Fprintf(log, "round %d: %s/%s: FAILED\n", round, e.Name, c.name)
					f.ok = false
					continue
				}
				fmt.Fprintf(log, "round %d: %s/%s:\t%s\t%s\n", round, e.Name, c.name, res.String(), res.MemString())
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

type report struct {
	benchtime string
	count     int
	dbs       []results
	null      results
	redis     []results // the shared-store cases, if measured
}

// targetRedisGet: a Redis-store hit within 1.3× of a bare GET of its bytes.
const targetRedisGet = 1.3

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

// verdict says PASS or MISS for a PostgreSQL figure, and nothing for the
// others (the targets are PostgreSQL's).
func verdict(db string, ok bool) string {
	if db != "postgres" {
		return "(no target)"
	}
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (rep report) write(w io.Writer) {
	fmt.Fprintf(w, "gormcache-bench: %s/%s, %d CPUs, %s; in-process store; medians of %d rounds of %s per case.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), rep.count, rep.benchtime)
	fmt.Fprintln(w, "| database | case | plain | cached | ratio | target | allocs/op plain → cached | result |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|---:|---|")
	for _, r := range rep.dbs {
		row := func(name, plainCase, cachedCase string, hit bool, target float64) {
			plain, cached := r.get(plainCase), r.get(cachedCase)
			var ratio float64
			var ok bool
			var tgt string
			if hit {
				tgt = fmt.Sprintf("plain/cached ≥ %g×", target)
			} else {
				tgt = fmt.Sprintf("cached/plain ≤ %.2f", target)
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
			if r.name == "postgres" && f.allocs-plain.allocs > extra {
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
	fmt.Fprintln(w, "Extra allocs: a hit (on the null database, or on PostgreSQL if more) minus plain GORM on the null database.")
	for _, r := range rep.redis {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Shared store: the same PostgreSQL table cached in Redis (store/redisstore, one client, loopback):")
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
				tgt = fmt.Sprintf("hit/GET ≤ %g×: %s", targetRedisGet, map[bool]string{true: "PASS", false: "MISS"}[ratio <= targetRedisGet])
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %s | %d → %d |\n", c.name, fmtNS(plain.ns), fmtNS(hit.ns), getCol, plain.ns/hit.ns, ratioGet, tgt, plain.allocs, hit.allocs)
		}
	}
}
