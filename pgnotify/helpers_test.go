package pgnotify

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

var _ Invalidator = (*plugin.Plugin)(nil)

// fresh creates a database and returns its DSN and a *sql.DB on it.
func fresh(t testing.TB, setup ...string) (string, *sql.DB) {
	t.Helper()
	dsn := testdb.FreshPostgres(t)
	db := openSQL(t, dsn)
	for _, q := range setup {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return dsn, db
}

// openSQL opens a *sql.DB on dsn, closed at the end of the test.
func openSQL(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// quiet is the logger of tests: verbose runs show the listener's log.
func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// call is one Invalidate call seen by a recorder.
type call struct {
	at     time.Time
	tables []string
}

func (c call) has(table string) bool { return slices.Contains(c.tables, table) }

// recorder is an Invalidator that records its calls.
type recorder struct {
	mu    sync.Mutex
	calls []call
	ch    chan call
}

func newRecorder() *recorder { return &recorder{ch: make(chan call, 100_000)} }

func (r *recorder) Invalidate(_ context.Context, tables ...string) error {
	c := call{at: time.Now(), tables: slices.Clone(tables)}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	r.ch <- c
	return nil
}

// next returns the next call, failing the test after timeout.
func (r *recorder) next(t testing.TB, timeout time.Duration) call {
	t.Helper()
	select {
	case c := <-r.ch:
		return c
	case <-time.After(timeout):
		t.Fatalf("no Invalidate call within %s", timeout)
		return call{}
	}
}

// until returns the calls up to and including the first that names table.
func (r *recorder) until(t testing.TB, table string) []call {
	t.Helper()
	var seen []call
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-r.ch:
			seen = append(seen, c)
			if c.has(table) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no Invalidate call named %q within 5s (calls: %v)", table, seen)
		}
	}
}

// listen starts a listener closed at the end of the test. With settle, it
// waits for the listener's first bump (of the watched tables) and, from a
// recorder, takes that call.
func listen(t testing.TB, dsn string, inv Invalidator, cfg Config, settle bool) *Listener {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	l, err := Listen(context.Background(), dsn, inv, cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if settle {
		testsupport.Eventually(t, "the first bump", func() bool { return l.Stats().Bumps >= 1 })
		if r, ok := inv.(*recorder); ok {
			r.next(t, time.Second)
		}
	}
	return l
}

// connect opens a pgx connection, closed at the end of the test.
func connect(t testing.TB, dsn string, params map[string]string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
