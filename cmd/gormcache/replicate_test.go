package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
)

// lineReader collects a process's output lines.
type lineReader struct {
	t     *testing.T
	lines chan string
	seen  []string
}

func readLines(t *testing.T, r io.Reader) *lineReader {
	lr := &lineReader{t: t, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.lines <- sc.Text()
		}
		close(lr.lines)
	}()
	return lr
}

// wait returns the first line for which match holds, failing after 60s.
func (lr *lineReader) wait(what string, match func(string) bool) string {
	lr.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, open := <-lr.lines:
			if !open {
				lr.t.Fatalf("output ended before %s:\n%s", what, strings.Join(lr.seen, "\n"))
			}
			lr.seen = append(lr.seen, l)
			if match(l) {
				return l
			}
		case <-deadline:
			lr.t.Fatalf("no %s within 60s:\n%s", what, strings.Join(lr.seen, "\n"))
		}
	}
}

// TestPGReplicateKeepsRESTFresh runs examples/rest on PostgreSQL and Redis
// and 'gormcache pg replicate' beside it, and checks that pages the server
// cached (for 15 minutes) are fresh soon after psql changes their rows.
func TestPGReplicateKeepsRESTFresh(t *testing.T) {
	t.Parallel()
	dsn := testdb.FreshPostgres(t)
	url, prefix, _ := redisStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	restBin := filepath.Join(t.TempDir(), "rest")
	args := append(append([]string{"build"}, testdb.BuildFlags()...), "-o", restBin, "../../examples/rest")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build examples/rest: %v\n%s", err, out)
	}
	rest := exec.CommandContext(ctx, restBin, "-pg", dsn, "-redis", redisAddr, "-redis-prefix", prefix, "-addr", "127.0.0.1:0")
	restOut, err := rest.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rest.Stderr = os.Stderr
	if err := rest.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rest.Process.Kill(); _ = rest.Wait() })
	base := strings.TrimPrefix(readLines(t, restOut).wait("the server's address", func(l string) bool {
		return strings.HasPrefix(l, "listening on http://")
	}), "listening on ")

	slot := testdb.RandomName("gctest_repl_" + strconv.FormatInt(time.Now().Unix(), 10) + "_")
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", testdb.PostgresAdmin)
		if err != nil {
			return
		}
		defer admin.Close()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err := admin.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot); err == nil {
				return
			}
		}
	})
	side := exec.CommandContext(ctx, gcBinary, "pg", "replicate", "--store", url, "--dsn", dsn,
		"--slot", slot, "--publication", slot, "--stats-every", "0", "--verbose", "articles")
	side.Env = cleanEnv()
	sideOut, err := side.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var sideErr strings.Builder
	side.Stderr = &sideErr
	if err := side.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = side.Process.Kill(); _ = side.Wait() })
	lines := readLines(t, sideOut)
	lines.wait("the sidecar's start", func(l string) bool { return strings.HasPrefix(l, "replicating slot") })
	lines.wait("the new slot's bump of articles", func(l string) bool { return strings.HasSuffix(l, "invalidated articles") })

	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Cache-Status"), string(body)
	}
	title := func(body string) string {
		var a struct{ Title string }
		_ = json.Unmarshal([]byte(body), &a)
		return a.Title
	}
	cached := func(path string) string {
		t.Helper()
		get(path)
		code, status, body := get(path)
		if code != http.StatusOK || !strings.Contains(status, "hit") {
			t.Fatalf("GET %s twice: %d, Cache-Status %q: not a cached page", path, code, status)
		}
		return body
	}
	fresh := func(what, path string, ok func(code int, body string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, body := get(path)
			if ok(code, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s still %d %s after 30s; sidecar:\n%s\n%s", what, path, code, body, strings.Join(lines.seen, "\n"), sideErr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if before := title(cached("/articles/7")); before == "" || before == "Written by psql" {
		t.Fatalf("article 7's title %q", before)
	}
	cached("/articles")
	testdb.Psql(t, dsn, `UPDATE articles SET title = 'Written by psql' WHERE id = 7`)
	fresh("after a psql UPDATE", "/articles/7", func(code int, body string) bool { return title(body) == "Written by psql" })
	fresh("the list after a psql UPDATE", "/articles", func(code int, body string) bool { return strings.Contains(body, "Written by psql") })

	cached("/articles/8")
	testdb.Psql(t, dsn, `DELETE FROM articles WHERE id = 8`)
	fresh("after a psql DELETE", "/articles/8", func(code int, _ string) bool { return code == http.StatusNotFound })

	if err := side.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	last := lines.wait("the final stats", func(l string) bool { return strings.HasPrefix(l, "stopped; stats:") })
	if !strings.Contains(last, "commits=2") || !strings.Contains(last, "malformed=0") {
		t.Errorf("final stats: %s", last)
	}
	if err := side.Wait(); err != nil {
		t.Errorf("pg replicate exited with %v after an interrupt; stderr:\n%s", err, sideErr.String())
	}
}
