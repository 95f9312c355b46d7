package main

import (
	"bufio"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// freshPG creates a PostgreSQL database with the table items.
func freshPG(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn := testdb.FreshPostgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	return dsn, db
}

func hasTrigger(t *testing.T, db *sql.DB, table string) bool {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT count(*) FROM pg_trigger WHERE tgname = 'gormcache_notify' AND tgrelid = $1::regclass`, table).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestPGTriggersAndListen(t *testing.T) {
	t.Parallel()
	dsn, db := freshPG(t)
	url, _, _ := redisStore(t)

	r := ok(t, "pg", "install-triggers", "--dsn", dsn, "items")
	if !strings.Contains(r.stdout, "installed trigger gormcache_notify") || !hasTrigger(t, db, "items") {
		t.Fatalf("install-triggers: %s", r)
	}
	ok(t, "pg", "install-triggers", "--dsn", dsn, "items") // idempotent
	if r := gc(t, nil, "pg", "install-triggers", "--dsn", dsn, "no_such_table"); r.code != exitError || !strings.Contains(r.stderr, "check the names") {
		t.Errorf("install-triggers on a missing table: %s", r)
	}

	// listen: start, see the connect bump, write from outside, see the
	// notification's bump, interrupt.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gcBinary, "pg", "listen", "--dsn", dsn, "--store", url, "--stats-every", "0", "items")
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	wait := func(what string, match func(string) bool) {
		t.Helper()
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("listen ended before %s:\n%s\nstderr:\n%s", what, strings.Join(seen, "\n"), stderr.String())
				}
				seen = append(seen, l)
				if match(l) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s:\n%s\nstderr:\n%s", what, strings.Join(seen, "\n"), stderr.String())
			}
		}
	}
	bumped := func(l string) bool { return strings.HasSuffix(l, " invalidated items") }
	listening, connectBump := false, false
	for !listening || !connectBump {
		wait("listening line and connect bump", func(l string) bool {
			listening = listening || strings.HasPrefix(l, "listening on channel")
			connectBump = connectBump || bumped(l)
			return true
		})
	}
	before := versionsOf(t, url, "items")["items"]
	if _, err := db.Exec(`UPDATE items SET name = 'b' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	wait("bump after the UPDATE", bumped)
	if after := versionsOf(t, url, "items")["items"]; after == before {
		t.Errorf("the UPDATE left items at version %d", after)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	wait("final stats", func(l string) bool { return strings.HasPrefix(l, "stopped; stats:") })
	if last := seen[len(seen)-1]; !strings.Contains(last, "notifications=1") || !strings.Contains(last, "connected=") {
		t.Errorf("final stats: %s", last)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("listen exited with %v after an interrupt; stderr:\n%s", err, stderr.String())
	}

	r = ok(t, "pg", "remove-triggers", "--dsn", dsn, "items")
	if !strings.Contains(r.stdout, "removed trigger") || hasTrigger(t, db, "items") {
		t.Errorf("remove-triggers: %s", r)
	}
	ok(t, "pg", "remove-triggers", "--dsn", dsn, "items") // idempotent
}

func TestBench(t *testing.T) {
	t.Parallel()
	dsn, db := freshPG(t)
	args := []string{"bench", "--dsn", dsn, "--benchtime", "20x", "--count", "1"}
	if redisReachable() {
		args = append(args, "--redis", redisAddr)
	}
	r := ok(t, args...)
	for _, want := range []string{
		"| postgres | First by key, hit |", "| postgres | Find 100 rows, miss † |", "| postgres | Update by key ‡ |",
		"| First by key |", "| Find 100 rows |",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, r.stdout)
		}
	}
	if redisReachable() && !strings.Contains(r.stdout, "Shared store: the same postgres table cached in Redis") {
		t.Errorf("bench --redis lacks the shared-store table:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "FAILED") {
		t.Errorf("a case failed:\n%s\n%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "[1/") || !strings.Contains(r.stderr, "eta") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	var exists bool
	if err := db.QueryRow(`SELECT to_regclass('bench_rows') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("bench_rows left behind (%v)", err)
	}

	// A table of the user's named bench_rows is never replaced silently.
	if _, err := db.Exec(`CREATE TABLE bench_rows (x int)`); err != nil {
		t.Fatal(err)
	}
	r = gc(t, nil, "bench", "--dsn", dsn, "--benchtime", "1x", "--count", "1")
	if r.code != exitError || !strings.Contains(r.stderr, "--replace") {
		t.Errorf("bench over an existing table: %s", r)
	}
	if err := db.QueryRow(`SELECT to_regclass('bench_rows') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		t.Errorf("bench dropped a table it did not create (%v)", err)
	}
}
