package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/redis/go-redis/v9"
)

// gcBinary is the gormcache command built once for the tests.
var gcBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gormcache-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gcBinary = filepath.Join(dir, "gormcache")
	args := append(append([]string{"build"}, testdb.BuildFlags()...), "-o", gcBinary, ".")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// gc runs the binary with args and no GORMCACHE_* variables but those of env
// ("NAME=value").
func gc(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gcBinary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run %q: %v", args, err)
	}
	return r
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GORMCACHE_STORE=") && !strings.HasPrefix(kv, "GORMCACHE_DSN=") {
			env = append(env, kv)
		}
	}
	return env
}

// ok runs the binary and fails the test unless it exits 0.
func ok(t testing.TB, args ...string) result {
	t.Helper()
	r := gc(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("gormcache %q: %s", args, r)
	}
	return r
}

// Servers of this machine (scripts/services).
var (
	redisAddr      = envOr("GORMCACHE_REDIS", "127.0.0.1:6379")
	memcacheAddr   = envOr("GORMCACHE_MEMCACHED", "127.0.0.1:11211")
	sentinelAddr   = envOr("GORMCACHE_REDIS_SENTINEL", "127.0.0.1:26379")
	sentinelMaster = envOr("GORMCACHE_REDIS_MASTER", "gcmaster")
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// redisStore returns a --store URL on the local Redis with a fresh prefix,
// and a client; the prefix's keys are deleted at the end.
func redisStore(t testing.TB) (string, string, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		testdb.Unavailable(t, "redis at "+redisAddr, err)
	}
	t.Cleanup(func() { rdb.Close() })
	prefix := testdb.KeyPrefix("gccli-")
	testdb.CleanRedis(t, redis.UniversalOptions{Addrs: []string{redisAddr}}, prefix)
	return "redis://" + redisAddr + "?prefix=" + prefix, prefix, rdb
}

// clusterStore returns a --store URL on the local Redis Cluster with a fresh
// prefix (its keys are deleted at the end), holding the cluster's shared test lock (tests elsewhere stop its
// nodes under an exclusive one).
func clusterStore(t testing.TB) string {
	t.Helper()
	if err := rediscluster.Use(t); err != nil {
		testdb.Unavailable(t, "redis cluster at "+strings.Join(rediscluster.Addrs, ","), err)
	}
	prefix := testdb.KeyPrefix("gccli-")
	testdb.CleanRedis(t, redis.UniversalOptions{Addrs: rediscluster.Addrs}, prefix)
	return "redis+cluster://" + strings.Join(rediscluster.Addrs[:3], ",") + "?prefix=" + prefix
}

// sentinelStore returns a --store URL on the master the local Sentinel
// watches, with a fresh prefix; the prefix's keys are deleted at the end.
func sentinelStore(t testing.TB) string {
	t.Helper()
	opt := redis.UniversalOptions{MasterName: sentinelMaster, Addrs: []string{sentinelAddr}, DialTimeout: 2 * time.Second}
	rdb := redis.NewUniversalClient(&opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	rdb.Close()
	if err != nil {
		testdb.Unavailable(t, "redis sentinel at "+sentinelAddr, err)
	}
	prefix := testdb.KeyPrefix("gccli-")
	testdb.CleanRedis(t, opt, prefix)
	return "redis+sentinel://" + sentinelAddr + "?master=" + sentinelMaster + "&prefix=" + prefix
}

// redisReachable reports whether the local Redis answers.
func redisReachable() bool {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err() == nil
}

// memcacheStore returns a --store URL on the local memcached with a fresh
// prefix (its keys are left to expire or be evicted).
func memcacheStore(t testing.TB) string {
	t.Helper()
	mc := memcache.New(memcacheAddr)
	mc.Timeout = 2 * time.Second
	if err := mc.Ping(); err != nil {
		testdb.Unavailable(t, "memcached at "+memcacheAddr, err)
	}
	mc.Close()
	return "memcache://" + memcacheAddr + "?prefix=" + testdb.KeyPrefix("gccli-")
}

// fileStore returns a --store URL on a new directory.
func fileStore(t testing.TB) string {
	t.Helper()
	return "file://" + t.TempDir()
}

// closedPort returns a local TCP port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strconv.Itoa(port)
}

// versionsOf runs versions --json and returns the versions.
func versionsOf(t testing.TB, storeURL string, tables ...string) map[string]uint64 {
	t.Helper()
	r := ok(t, append([]string{"versions", "--json", "--store", storeURL}, tables...)...)
	var m map[string]uint64
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("versions --json: %v\n%s", err, r.stdout)
	}
	return m
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	store := "--store=redis://127.0.0.1:" + closedPort(t) // never reached: usage is checked first
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"suggestion", []string{"inval", "x"}, "did you mean invalidate"},
		{"unknown global flag", []string{"--nope", "flush"}, "flag provided but not defined"},
		{"unknown command flag", []string{"invalidate", "--nope", "users"}, "flag provided but not defined"},
		{"invalidate without tables", []string{"invalidate", store}, "name at least one table"},
		{"flush with arguments", []string{"flush", store, "users"}, "flush takes no arguments"},
		{"no store", []string{"versions"}, "no store: give --store URL or set GORMCACHE_STORE"},
		{"bad scheme", []string{"versions", "--store", "ftp://x"}, `unknown store URL scheme "ftp"`},
		{"no scheme", []string{"versions", "--store", "127.0.0.1:6379"}, "has no scheme"},
		{"relative file", []string{"versions", "--store", "file://cache/dir"}, "file:///abs/dir"},
		{"several redis hosts", []string{"versions", "--store", "redis://a:1,b:2"}, "redis+cluster://"},
		{"sentinel without master", []string{"versions", "--store", "redis+sentinel://a:26379"}, "?master=NAME"},
		{"memcache parameter", []string{"versions", "--store", "memcache://a:1?db=2"}, `unknown parameter "db"`},
		{"inspect two keys", []string{"inspect", store, "a", "b"}, "inspect takes one KEY"},
		{"inspect sql without dsn", []string{"inspect", store, "--sql", "SELECT 1"}, "--sql needs --dsn"},
		{"get without key", []string{"get", store}, "get takes one KEY"},
		{"set one argument", []string{"set", store, "k"}, "set takes KEY and VALUE"},
		{"set bad JSON", []string{"set", store, "k", "hello"}, "VALUE is not JSON"},
		{"set bad TTL", []string{"set", store, "--ttl", "soon", "k", "1"}, `--ttl "soon"`},
		{"negative timeout", []string{"--timeout", "-1s", "flush", store}, "--timeout must be positive"},
		{"pg without command", []string{"pg"}, "missing pg command"},
		{"pg unknown command", []string{"pg", "nope"}, `unknown command "pg nope"`},
		{"pg install without tables", []string{"pg", "install-triggers", "--dsn", "host=x"}, "name at least one table"},
		{"pg install without dsn", []string{"pg", "install-triggers", "users"}, "give --dsn"},
		{"pg on mysql", []string{"pg", "remove-triggers", "--dsn", "mysql://u@tcp(h:3306)/d", "users"}, "LISTEN/NOTIFY triggers and logical replication are PostgreSQL's"},
		{"bench without dsn", []string{"bench"}, "give --dsn"},
		{"bench count", []string{"bench", "--dsn", "host=x", "--count", "0"}, "--count must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := gc(t, nil, tc.args...)
			if r.code != exitUsage {
				t.Fatalf("want exit %d: %s", exitUsage, r)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if !strings.Contains(r.stderr, "--help") {
				t.Errorf("stderr does not point to --help:\n%s", r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := ok(t, "--help")
	for _, want := range []string{"Usage:", "Exit codes:", "redis+cluster://", "memcache://", "file:///", "Examples:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gormcache --help lacks %q", want)
		}
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := append(strings.Fields(c.name), "--help")
			r := ok(t, args...)
			for _, want := range []string{"Usage: gormcache " + c.name, "Examples:", "gormcache " + c.name, "Exit codes: 0 success, 1 runtime error, 2 usage error", "--store"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%s --help lacks %q:\n%s", c.name, want, r.stdout)
				}
			}
			// Each command's exit codes are those the main help lists.
			if c.notFound && !strings.Contains(r.stdout, ", 3 no live entry") {
				t.Errorf("%s --help does not list exit code 3:\n%s", c.name, r.stdout)
			}
			if c.noTarget != strings.Contains(r.stdout, ", 4 no version") {
				t.Errorf("%s --help: exit code 4 listed %t, want %t:\n%s", c.name, !c.noTarget, c.noTarget, r.stdout)
			}
			if h := ok(t, append([]string{"help"}, strings.Fields(c.name)...)...); h.stdout != r.stdout {
				t.Errorf("gormcache help %s differs from --help", c.name)
			}
		})
	}
	if r := ok(t, "pg", "--help"); !strings.Contains(r.stdout, "pg listen") {
		t.Errorf("pg --help:\n%s", r.stdout)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"redis", []string{"flush", "--store", "redis://127.0.0.1:" + port},
			[]string{"cannot reach redis at 127.0.0.1:" + port, "connection refused", "is the server running? check --store"}},
		{"redis cluster", []string{"versions", "users", "--store", "redis+cluster://127.0.0.1:" + port},
			[]string{"cannot reach redis cluster at 127.0.0.1:" + port, "check --store"}},
		{"memcached", []string{"invalidate", "users", "--store", "memcache://127.0.0.1:" + port},
			[]string{"cannot reach memcached at 127.0.0.1:" + port, "connection refused", "check --store"}},
		{"file", []string{"versions", "--store", "file:///nonexistent/gormcache-" + port},
			[]string{"no directory /nonexistent/gormcache-" + port, "check --store"}},
		{"postgres", []string{"pg", "install-triggers", "--dsn", "host=127.0.0.1 port=" + port + " user=postgres dbname=x sslmode=disable", "users"},
			[]string{"cannot connect to PostgreSQL at 127.0.0.1:" + port, "connection refused", "check --dsn"}},
		{"bench", []string{"bench", "--dsn", "host=127.0.0.1 port=" + port + " user=postgres dbname=x sslmode=disable"},
			[]string{"cannot connect to the postgres database", "check --dsn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := gc(t, nil, tc.args...)
			if r.code != exitError {
				t.Fatalf("want exit %d: %s", exitError, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}

// TestStoreFromEnv: GORMCACHE_STORE stands for --store, and --store wins.
func TestStoreFromEnv(t *testing.T) {
	t.Parallel()
	url := fileStore(t)
	r := gc(t, []string{"GORMCACHE_STORE=" + url}, "versions", "users")
	if r.code != 0 || !strings.Contains(r.stdout, "users") {
		t.Fatalf("%s", r)
	}
	r = gc(t, []string{"GORMCACHE_STORE=redis://127.0.0.1:" + closedPort(t)}, "versions", "--store", url)
	if r.code != 0 {
		t.Fatalf("--store should win over GORMCACHE_STORE: %s", r)
	}
}
