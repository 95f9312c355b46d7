package pgnotify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

var watchedSetup = []string{
	`CREATE SCHEMA "Other Schema"`,
	`CREATE TABLE "Other Schema"."MixedCase" (id int PRIMARY KEY, n int)`,
	`CREATE TABLE plain (id int PRIMARY KEY, n int)`,
	`CREATE TABLE marker (id int PRIMARY KEY, n int)`,
	`CREATE TABLE untouched (id int PRIMARY KEY, n int)`,
	`INSERT INTO plain VALUES (1, 0)`,
	`INSERT INTO marker VALUES (1, 0)`,
	`INSERT INTO untouched VALUES (1, 0)`,
	`INSERT INTO "Other Schema"."MixedCase" VALUES (1, 0)`,
}

// watchedDB is a database whose tables plain, marker and
// "Other Schema"."MixedCase" carry the trigger; untouched does not.
func watchedDB(t testing.TB) string {
	t.Helper()
	dsn, db := fresh(t, watchedSetup...)
	if err := InstallTriggers(context.Background(), db, "plain", "marker", `"Other Schema"."MixedCase"`); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	inv := newRecorder()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative min", Config{ReconnectMin: -1}},
		{"min above max", Config{ReconnectMin: time.Second, ReconnectMax: time.Millisecond}},
		{"empty table", Config{Tables: []string{""}}},
		{"long channel", Config{Channel: strings.Repeat("c", 64)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Listen(context.Background(), "host=127.0.0.1", inv, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Listen = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := Listen(context.Background(), "host=127.0.0.1", nil, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil Invalidator: %v, want ErrInvalidConfig", err)
	}
	if _, err := Listen(context.Background(), "port=notaport", inv, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad DSN: %v, want ErrInvalidConfig", err)
	}
}

func TestListenerBumpsWrittenTables(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	rec := newRecorder()
	l := listen(t, dsn, rec, Config{Tables: []string{"plain", `"Other Schema"."MixedCase"`}}, true)
	if s := l.Stats(); !s.Connected || s.BackendPID == 0 || s.LastHeard.IsZero() {
		t.Fatalf("stats after Listen: %+v", s)
	}
	conn := connect(t, dsn, nil)

	statements := []struct {
		sql, table string
	}{
		{`UPDATE plain SET n = n + 1`, "plain"},
		{`UPDATE plain SET n = n + 1 WHERE false`, "plain"}, // no row: still a write
		{`INSERT INTO plain VALUES (2, 0)`, "plain"},
		{`DELETE FROM plain WHERE id = 2`, "plain"},
		{`UPDATE "Other Schema"."MixedCase" SET n = 1`, "mixedcase"},
		{`TRUNCATE "Other Schema"."MixedCase"`, "mixedcase"},
	}
	for _, st := range statements {
		mustExec(t, conn, `UPDATE untouched SET n = n + 1`) // no trigger: no notification
		mustExec(t, conn, st.sql)
		calls := rec.until(t, st.table)
		for _, c := range calls {
			if c.has("untouched") || len(c.tables) != 1 {
				t.Fatalf("%s: Invalidate calls %v, want only %q", st.sql, calls, st.table)
			}
		}
	}

	// A rolled-back write notifies nobody.
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `UPDATE plain SET n = 0`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `UPDATE marker SET n = n + 1`)
	if calls := rec.until(t, "marker"); len(calls) != 1 || calls[0].has("plain") {
		t.Fatalf("after a rollback: calls %v, want only marker's", calls)
	}

	s := l.Stats()
	if s.Notifications != uint64(len(statements)+1) || s.LastNotification.IsZero() || s.Errors != 0 || s.Reconnects != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestListenerCoalesces: the notifications of one commit arrive together
// and are bumped with one call.
func TestListenerCoalesces(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	rec := newRecorder()
	l := listen(t, dsn, rec, Config{}, true)
	conn := connect(t, dsn, nil)
	for range 3 {
		tx, err := conn.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`UPDATE plain SET n = n + 1`, `UPDATE marker SET n = n + 1`,
			`UPDATE "Other Schema"."MixedCase" SET n = n + 1`, `UPDATE plain SET n = n + 1`} {
			if _, err := tx.Exec(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		c := rec.next(t, 5*time.Second)
		if want := []string{"marker", "mixedcase", "plain"}; !slices.Equal(c.tables, want) {
			t.Fatalf("one commit of three tables: Invalidate(%v), want one call with %v", c.tables, want)
		}
	}
	testsupport.Eventually(t, "the last bump to be counted", func() bool { return l.Stats().Bumps == 4 })
	if s := l.Stats(); s.Bumps != 4 || s.Notifications != 9 {
		t.Fatalf("stats %+v: want 4 bumps (one on connecting, one per commit) of 9 notifications (PostgreSQL folds a repeated one)", s)
	}
}

// TestListenerDiscoversTables: with no Tables, the watched tables are those
// carrying the trigger for the channel, bumped on connecting.
func TestListenerDiscoversTables(t *testing.T) {
	t.Parallel()
	dsn, db := fresh(t, watchedSetup...)
	if err := InstallTriggers(context.Background(), db, "plain", `"Other Schema"."MixedCase"`); err != nil {
		t.Fatal(err)
	}
	if err := InstallTriggersOn(context.Background(), db, "other", "marker"); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	l := listen(t, dsn, rec, Config{}, false)
	c := rec.next(t, 5*time.Second)
	if want := []string{"mixedcase", "plain"}; !slices.Equal(c.tables, want) {
		t.Fatalf("first bump %v, want the tables with the trigger on the channel %v", c.tables, want)
	}
	// A bare NOTIFY bumps every watched table.
	conn := connect(t, dsn, nil)
	mustExec(t, conn, `NOTIFY gormcache`)
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"mixedcase", "plain"}) {
		t.Fatalf("bare NOTIFY: %v", c.tables)
	}
	_ = l
}

// TestSkipSetting: the application's connections, with the skip setting,
// write without notifying; other connections notify.
func TestSkipSetting(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	rec := newRecorder()
	listen(t, dsn, rec, Config{}, true)
	plainConn := connect(t, dsn, nil)

	skipping := []struct {
		name  string
		write func(t *testing.T)
	}{
		{"RuntimeParams", func(t *testing.T) {
			mustExec(t, connect(t, dsn, AppRuntimeParams()), `UPDATE plain SET n = n + 1`)
		}},
		{"DSN options", func(t *testing.T) {
			mustExec(t, connect(t, dsn+" options='-c gormcache.skip_notify=on'", nil), `UPDATE plain SET n = n + 1`)
		}},
		{"SET LOCAL", func(t *testing.T) {
			conn := connect(t, dsn, nil)
			tx, err := conn.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`SET LOCAL gormcache.skip_notify = on`, `UPDATE plain SET n = n + 1`} {
				if _, err := tx.Exec(context.Background(), q); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"gorm with the DSN option", func(t *testing.T) {
			db, err := gorm.Open(postgres.Open(dsn+" options='-c gormcache.skip_notify=on'"), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { sqlDB, _ := db.DB(); sqlDB.Close() }()
			if err := db.Exec(`UPDATE plain SET n = n + 1`).Error; err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range skipping {
		t.Run(tt.name, func(t *testing.T) {
			tt.write(t)
			// Notifications arrive in commit order: had the skipped write
			// notified, its table would come before or with the marker's.
			mustExec(t, plainConn, `UPDATE marker SET n = n + 1`)
			if calls := rec.until(t, "marker"); len(calls) != 1 || calls[0].has("plain") {
				t.Fatalf("a skipped write notified: calls %v", calls)
			}
		})
	}
	// The same write without the setting notifies.
	mustExec(t, plainConn, `UPDATE plain SET n = n + 1`)
	rec.until(t, "plain")
}

// TestTwoListeners: every instance's listener bumps.
func TestTwoListeners(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	a, b := newRecorder(), newRecorder()
	listen(t, dsn, a, Config{}, true)
	listen(t, dsn, b, Config{}, true)
	conn := connect(t, dsn, nil)
	for i := range 5 {
		mustExec(t, conn, `UPDATE plain SET n = $1`, i)
		for _, r := range []*recorder{a, b} {
			if c := r.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"plain"}) {
				t.Fatalf("write %d: a listener saw %v", i, c.tables)
			}
		}
	}
}

// TestStoreInvalidator bumps tags in a store directly.
func TestStoreInvalidator(t *testing.T) {
	t.Parallel()
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tags := []string{"articles", "mixedcase", "other"}
	before := make([]uint64, len(tags))
	if err := st.Versions(ctx, tags, before); err != nil {
		t.Fatal(err)
	}
	inv := StoreInvalidator(st)
	if err := inv.Invalidate(ctx, "public.articles", `"Other Schema"."MixedCase"`, "ARTICLES", ""); err != nil {
		t.Fatal(err)
	}
	after := make([]uint64, len(tags))
	if err := st.Versions(ctx, tags, after); err != nil {
		t.Fatal(err)
	}
	if after[0] == before[0] || after[1] == before[1] || after[2] != before[2] {
		t.Fatalf("versions %v → %v: want articles and mixedcase bumped, other not", before, after)
	}
	if err := inv.Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
}

// article is the model of the end-to-end tests.
type article struct {
	ID    uint
	Title string
}

type other struct {
	ID   uint
	Name string
}

// cachedApp is an application: GORM with the plugin, on connections that
// skip the notification, and a listener bumping through the plugin.
type cachedApp struct {
	db  *gorm.DB
	p   *plugin.Plugin
	l   *Listener
	dsn string
}

func newCachedApp(t *testing.T, cfg Config) *cachedApp {
	t.Helper()
	dsn, sqlDB := fresh(t)
	db, err := gorm.Open(postgres.Open(dsn+" options='-c gormcache.skip_notify=on'"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d, _ := db.DB(); d.Close() })
	if err := db.AutoMigrate(&article{}, &other{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&article{ID: 1, Title: "first"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&other{ID: 1, Name: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := InstallTriggers(context.Background(), sqlDB, "articles", "others"); err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg.Tables = []string{"articles", "others"}
	return &cachedApp{db: db, p: p, l: listen(t, dsn, p, cfg, true), dsn: dsn}
}

// title reads article 1 and reports whether it was a cache hit.
func (a *cachedApp) title(t *testing.T) (string, bool) {
	t.Helper()
	hits := a.p.Stats().Hits
	var got article
	if err := a.db.First(&got, 1).Error; err != nil {
		t.Fatal(err)
	}
	return got.Title, a.p.Stats().Hits > hits
}

// cache reads article 1 until it is served from the cache.
func (a *cachedApp) cache(t *testing.T, want string) {
	t.Helper()
	for range 3 {
		if got, hit := a.title(t); got != want {
			t.Fatalf("title %q, want %q", got, want)
		} else if hit {
			return
		}
	}
	t.Fatal("article 1 is not served from the cache")
}

// TestPsqlWriteIsSeen: a write by another process (psql) is followed by a
// fresh read once the listener has bumped.
func TestPsqlWriteIsSeen(t *testing.T) {
	t.Parallel()
	app := newCachedApp(t, Config{})
	app.cache(t, "first")

	// The application's own writes bump through the plugin, skip the
	// trigger, and do not make other tables' entries stale.
	var o other
	if err := app.db.First(&o, 1).Error; err != nil {
		t.Fatal(err)
	}
	if err := app.db.Model(&other{ID: 1}).Update("name", "y").Error; err != nil {
		t.Fatal(err)
	}
	if _, hit := app.title(t); !hit {
		t.Fatal("a write to others made articles' entry stale: the trigger is taken for one that writes unknown tables")
	}

	for i, title := range []string{"second", "third"} {
		s := app.l.Stats()
		testdb.Psql(t, app.dsn, `UPDATE articles SET title = '`+title+`' WHERE id = 1`)
		testsupport.Eventually(t, "the listener's bump", func() bool {
			n := app.l.Stats()
			return n.Notifications > s.Notifications && n.Bumps > s.Bumps
		})
		if got, hit := app.title(t); got != title || hit {
			t.Fatalf("write %d: read %q (hit %v) after psql wrote %q", i, got, hit, title)
		}
		app.cache(t, title)
	}
	if s := app.l.Stats(); s.Notifications != 2 {
		t.Fatalf("notifications = %d, want 2 (the application's own write skipped it)", s.Notifications)
	}
}

// TestTerminatedListenerLosesNothing: a write made while the listener's
// backend is gone is bumped when it reconnects; later writes notify again.
func TestTerminatedListenerLosesNothing(t *testing.T) {
	t.Parallel()
	// The reconnect waits a second: the write below must commit while the
	// listener is down (on a loaded machine, a psql started after a 300ms
	// wait could come after the reconnect, whose notification it then
	// received).
	app := newCachedApp(t, Config{ReconnectMin: time.Second, ReconnectMax: 2 * time.Second})
	app.cache(t, "first")
	admin := connect(t, app.dsn, nil)

	before := app.l.Stats()
	var ok bool
	if err := admin.QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 5000)`, int(before.BackendPID)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v, %v", ok, err)
	}
	testsupport.Eventually(t, "the listener to notice", func() bool { return !app.l.Stats().Connected })
	// An outside writer, on a connection already open (no process to start).
	if _, err := admin.Exec(context.Background(), `UPDATE articles SET title = 'while down' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if app.l.Stats().Connected {
		t.Fatal("the listener reconnected before the write committed: the test's premise (a write while it is down) did not hold")
	}
	// No notification can reach it now; the entry is stale until the
	// reconnect's bump.
	testsupport.Eventually(t, "the reconnection and its bump", func() bool {
		s := app.l.Stats()
		return s.Connected && s.Reconnects == 1 && s.Lost == 1 && s.Bumps > before.Bumps
	})
	after := app.l.Stats()
	if after.BackendPID == before.BackendPID || after.Errors != 1 || after.Notifications != before.Notifications {
		t.Fatalf("stats before %+v, after %+v", before, after)
	}
	if got, _ := app.title(t); got != "while down" {
		t.Fatalf("read %q after reconnecting, want the write made while the listener was down", got)
	}
	app.cache(t, "while down")

	testdb.Psql(t, app.dsn, `UPDATE articles SET title = 'after' WHERE id = 1`)
	testsupport.Eventually(t, "a notification after reconnecting", func() bool {
		s := app.l.Stats()
		return s.Notifications > after.Notifications && s.Bumps > after.Bumps
	})
	if got, _ := app.title(t); got != "after" {
		t.Fatalf("read %q, want after", got)
	}
}

// logRecorder is a slog.Handler keeping the records' messages and times.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) times(msg string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []time.Time
	for _, r := range h.records {
		if strings.Contains(r.Message, msg) {
			ts = append(ts, r.Time)
		}
	}
	return ts
}

// TestReconnectBacksOff: while the database refuses connections, attempts
// are spaced from ReconnectMin doubling up to ReconnectMax; the loss and
// the recovery are logged and counted.
func TestReconnectBacksOff(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	admin := connect(t, "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable", nil)
	cfg, _ := pgx.ParseConfig(dsn)
	name := pgx.Identifier{cfg.Database}.Sanitize()
	logs := &logRecorder{}
	const lo, hi = 20 * time.Millisecond, 80 * time.Millisecond
	rec := newRecorder()
	l := listen(t, dsn, rec, Config{Tables: []string{"plain"}, ReconnectMin: lo, ReconnectMax: hi, Logger: slog.New(logs)}, true)

	mustExec(t, admin, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS false`)
	t.Cleanup(func() { admin.Exec(context.Background(), `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`) })
	mustExec(t, admin, `SELECT pg_terminate_backend($1, 5000)`, int(l.Stats().BackendPID))
	testsupport.Eventually(t, "six failed attempts", func() bool { return len(logs.times("reconnect failed")) >= 6 })
	mustExec(t, admin, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`)
	testsupport.Eventually(t, "the reconnection", func() bool { return l.Stats().Connected })
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"plain"}) {
		t.Fatalf("bump on reconnecting: %v", c.tables)
	}

	testsupport.Eventually(t, "the recovery to be logged", func() bool { return len(logs.times("reconnected")) == 1 })
	lost := logs.times("connection lost")
	failed := logs.times("reconnect failed")
	if len(lost) != 1 || len(logs.times("reconnected")) != 1 {
		t.Fatalf("logged %d losses and %d recoveries, want 1 each", len(lost), len(logs.times("reconnected")))
	}
	// Spacing: attempt k waits jitter(min(lo·2^k, hi)) ∈ [¾ of it, it], never
	// below lo nor above hi; each gap also holds one refused attempt
	// (milliseconds on loopback, more when the server is busy).
	prev := lost[0]
	for i, at := range failed[:6] {
		gap := at.Sub(prev)
		wait := min(lo<<i, hi)
		if gap < max(wait*3/4, lo) || gap > wait+time.Second {
			t.Errorf("attempt %d came %s after the previous, want about %s", i+1, gap, wait)
		}
		prev = at
	}
	s := l.Stats()
	if s.Reconnects != 1 || s.Lost != 1 || s.Errors < 7 {
		t.Fatalf("stats %+v: want 1 reconnect, 1 lost, ≥ 7 errors (the loss and the failed attempts)", s)
	}
}

// freezer is a TCP proxy that can stop forwarding without closing anything:
// a half-open connection, as a dead network or a pooler that never passes
// notifications on makes it.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen []net.Conn // the connections frozen, never served again
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range append(f.conns, f.frozen...) {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		f.mu.Lock()
		dead := slices.Contains(f.frozen, src)
		f.mu.Unlock()
		if dead {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// freeze makes the current connections deliver nothing from now on.
func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = append(f.frozen, f.conns...)
	f.conns = nil
}

// TestHealthCheckReconnects: a connection that silently stops delivering is
// found by the health check, and replaced.
func TestHealthCheckReconnects(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	f := newFreezer(t, "127.0.0.1:5432")
	cfg, _ := pgx.ParseConfig(dsn)
	proxied := "host=127.0.0.1 port=" + strings.TrimPrefix(f.ln.Addr().String(), "127.0.0.1:") +
		" user=postgres sslmode=disable dbname=" + cfg.Database
	rec := newRecorder()
	l := listen(t, proxied, rec, Config{Tables: []string{"plain"}, HealthInterval: 200 * time.Millisecond, ReconnectMin: 10 * time.Millisecond}, true)

	// Healthy: the checks come back, nothing else happens.
	heard := l.Stats().LastHeard
	testsupport.Eventually(t, "a health check to come back", func() bool { return l.Stats().LastHeard.After(heard) })
	time.Sleep(500 * time.Millisecond)
	if s := l.Stats(); s.Errors != 0 || s.Reconnects != 0 || s.Notifications != 0 || time.Since(s.LastHeard) > 450*time.Millisecond {
		t.Fatalf("healthy listener: %+v", s)
	}

	f.freeze()
	testsupport.Eventually(t, "the reconnection", func() bool { s := l.Stats(); return s.Reconnects == 1 && s.Connected })
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"plain"}) {
		t.Fatalf("bump on reconnecting: %v", c.tables)
	}
	conn := connect(t, dsn, nil)
	mustExec(t, conn, `UPDATE plain SET n = n + 1`)
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"plain"}) {
		t.Fatalf("after reconnecting: %v", c.tables)
	}
}

// TestFailedBumpIsRetried: a bump the store refuses is not dropped.
func TestFailedBumpIsRetried(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	var mu sync.Mutex
	fail := 2
	rec := newRecorder()
	inv := InvalidatorFunc(func(ctx context.Context, tables ...string) error {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			return errors.New("store down")
		}
		return rec.Invalidate(ctx, tables...)
	})
	l := listen(t, dsn, inv, Config{ReconnectMin: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, false)
	// The bump on connecting fails twice, then lands.
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"marker", "mixedcase", "plain"}) {
		t.Fatalf("retried bump: %v", c.tables)
	}
	mustExec(t, connect(t, dsn, nil), `UPDATE plain SET n = n + 1`)
	if c := rec.next(t, 5*time.Second); !slices.Equal(c.tables, []string{"plain"}) {
		t.Fatalf("bump after the retries: %v", c.tables)
	}
	testsupport.Eventually(t, "the last bump to be counted", func() bool { return l.Stats().Bumps == 2 })
	if s := l.Stats(); s.Errors != 2 || s.Bumps != 2 {
		t.Fatalf("stats %+v: want 2 errors, 2 bumps", s)
	}
}

// TestCloseStops: Close returns promptly, twice, and a cancelled context
// stops the listener too.
func TestCloseStops(t *testing.T) {
	t.Parallel()
	dsn := watchedDB(t)
	l := listen(t, dsn, newRecorder(), Config{}, false)
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if l.Stats().Connected {
		t.Fatal("connected after Close")
	}

	ctx, cancel := context.WithCancel(context.Background())
	l2, err := Listen(ctx, dsn, newRecorder(), Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	testsupport.Eventually(t, "the listener to stop with its context", func() bool { return !l2.Stats().Connected })
	l2.Close()

	if _, err := Listen(context.Background(), "host=127.0.0.1 port=1 user=postgres connect_timeout=2", newRecorder(), Config{}); err == nil {
		t.Fatal("Listen to a closed port succeeded")
	}
}
