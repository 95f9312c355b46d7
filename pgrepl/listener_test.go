package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

type User struct{ ID int }

type Post struct {
	ID     int
	UserID int
	Title  string
}

var blogSchema = []string{
	`CREATE TABLE users (id int PRIMARY KEY)`,
	`CREATE TABLE posts (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, title text NOT NULL)`,
	`INSERT INTO users VALUES (1), (2)`,
	`INSERT INTO posts VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c')`,
}

// blog is a database with users and posts, read through the plugin, and a
// listener as the only thing that sees the writes made on raw.
type blog struct {
	db  *gorm.DB
	p   *plugin.Plugin
	l   *Listener
	raw interface{ Exec(string, ...any) }
}

func titles(t *testing.T, db *gorm.DB, userID int) []string {
	t.Helper()
	var posts []Post
	if err := db.Where("user_id = ?", userID).Order("id").Find(&posts).Error; err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, p := range posts {
		out = append(out, p.Title)
	}
	return out
}

// TestOutsideWrites: UPDATE, INSERT, DELETE and TRUNCATE made on a raw
// connection are followed by fresh reads through the plugin, once the
// listener has bumped them; under REPLICA IDENTITY FULL an UPDATE leaves
// the other users' cached lists alone.
func TestOutsideWrites(t *testing.T) {
	t.Parallel()
	dsn := fresh(t, blogSchema...)
	db, p := openGORM(t, dsn)
	cfg := names(t, testdb.PostgresAdmin)
	cfg.Tables = []string{"users", "posts"}
	l := listen(t, dsn, p, cfg)
	testsupport.EventuallyWithin(t, "the new slot's resync bump", 30*time.Second, func() bool { return l.Stats().Bumps >= 1 })
	if s := l.Stats(); s.Resyncs != 1 || !s.Connected {
		t.Fatalf("after Listen on a new slot: %+v", s)
	}
	raw := connect(t, dsn)

	want := func(what string, user int, titlesWant ...string) {
		t.Helper()
		if got := titles(t, db, user); !slices.Equal(got, titlesWant) {
			t.Fatalf("%s: user %d's posts %q, want %q", what, user, got, titlesWant)
		}
	}
	warm := func() {
		t.Helper()
		for range 2 {
			titles(t, db, 1)
			titles(t, db, 2)
		}
	}
	hits := func() uint64 { return p.Stats().Hits }

	warm()
	h := hits()
	want("cached", 1, "a", "b")
	if hits() == h {
		t.Fatal("no hit: the reads are not cached")
	}

	bumped(t, l, outside(t, raw, `UPDATE posts SET title = 'a2' WHERE id = 1`))
	want("after an outside UPDATE", 1, "a2", "b")

	bumped(t, l, outside(t, raw, `INSERT INTO posts VALUES (4, 2, 'd')`))
	want("after an outside INSERT", 2, "c", "d")

	warm()
	bumped(t, l, outside(t, raw, `DELETE FROM posts WHERE id = 2`))
	want("after an outside DELETE", 1, "a2")

	// Row-level: the old values come with REPLICA IDENTITY FULL, so an
	// UPDATE of user 1's post bumps user_id 1's tag, not the column's.
	outside(t, raw, `ALTER TABLE posts REPLICA IDENTITY FULL`)
	warm()
	h = hits()
	bumped(t, l, outside(t, raw, `UPDATE posts SET title = 'a3' WHERE id = 1`))
	want("user 2's posts, untouched", 2, "c", "d")
	if hits() == h {
		t.Error("user 2's posts were invalidated by an UPDATE of user 1's post under REPLICA IDENTITY FULL")
	}
	want("after an outside UPDATE, FULL", 1, "a3")

	// A move between users names both.
	warm()
	bumped(t, l, outside(t, raw, `UPDATE posts SET user_id = 2 WHERE id = 1`))
	want("moved from", 1)
	want("moved to", 2, "a3", "c", "d")

	warm()
	bumped(t, l, outside(t, raw, `TRUNCATE posts`))
	want("after an outside TRUNCATE", 1)
	want("after an outside TRUNCATE", 2)

	// A cascade the log records row by row.
	outside(t, raw, `INSERT INTO posts VALUES (5, 1, 'e')`)
	outside(t, raw, `ALTER TABLE posts DROP CONSTRAINT posts_user_id_fkey, ADD FOREIGN KEY (user_id) REFERENCES users ON DELETE CASCADE`)
	warm()
	bumped(t, l, outside(t, raw, `DELETE FROM users WHERE id = 1`))
	want("after a cascade", 1)

	s := l.Stats()
	if s.Commits < 7 || s.Rows < 7 || s.Malformed != 0 || s.Errors != 0 || s.Resyncs != 1 {
		t.Errorf("stats: %+v", s)
	}
}

// TestResume: a listener that restarts on its slot goes on from where it
// stopped (no resync), and bumps the writes made while it was down.
func TestResume(t *testing.T) {
	t.Parallel()
	dsn := fresh(t, blogSchema...)
	db, p := openGORM(t, dsn)
	cfg := names(t, testdb.PostgresAdmin)
	cfg.Tables = []string{"posts"}
	l := listen(t, dsn, p, cfg)
	raw := connect(t, dsn)
	bumped(t, l, outside(t, raw, `UPDATE posts SET title = 'a1' WHERE id = 1`))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before := l.Stats().Position

	titles(t, db, 1) // cached while no listener runs
	outside(t, raw, `UPDATE posts SET title = 'a2' WHERE id = 1`)
	if got := titles(t, db, 1); got[0] != "a1" {
		t.Fatalf("without a listener the cache cannot know: %q", got) // (the premise)
	}
	cfg.Tables = nil // the publication exists: its tables
	l2 := listen(t, dsn, p, cfg)
	testsupport.EventuallyWithin(t, "the write made while down", 30*time.Second, func() bool { return titles(t, db, 1)[0] == "a2" })
	if s := l2.Stats(); s.Resyncs != 0 || s.Position < before {
		t.Errorf("a resumed listener: %+v (position before: %s)", s, before)
	}
}

// TestBumpRetried: a bump the store refuses is retried, and nothing after
// it is confirmed meanwhile.
func TestBumpRetried(t *testing.T) {
	t.Parallel()
	dsn := fresh(t, blogSchema...)
	var fail atomic.Bool
	var mu sync.Mutex
	var seen []plugin.Change
	inv := InvalidatorFunc(func(_ context.Context, changes ...plugin.Change) error {
		if fail.Load() {
			return errors.New("store down")
		}
		mu.Lock()
		seen = append(seen, changes...)
		mu.Unlock()
		return nil
	})
	cfg := names(t, testdb.PostgresAdmin)
	cfg.Tables = []string{"posts"}
	cfg.StatusInterval = 20 * time.Millisecond
	l := listen(t, dsn, inv, cfg)
	raw := connect(t, dsn)
	bumped(t, l, outside(t, raw, `UPDATE posts SET title = 'x' WHERE id = 3`))
	fail.Store(true)
	lsn := outside(t, raw, `UPDATE posts SET title = 'y' WHERE id = 2`)
	testsupport.EventuallyWithin(t, "a failed bump", 30*time.Second, func() bool { return l.Stats().Errors >= 2 })
	// (keepalives may move the position up to the commit, not past it)
	if s := l.Stats(); s.Position >= lsn || s.Lag == 0 {
		t.Fatalf("confirmed past a commit whose bump failed: %+v (the commit ends before %s)", s, lsn)
	}
	fail.Store(false)
	bumped(t, l, lsn)
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, c := range seen {
		for _, r := range c.Rows {
			found = found || c.Table == `"posts"` && r.After["id"] == "2"
		}
	}
	if !found {
		t.Errorf("the retried bump did not name post 2: %+v", seen)
	}
}

// TestCloseIdle: Close ends a stream that is waiting for a message, long
// before the next status update or health check would.
func TestCloseIdle(t *testing.T) {
	t.Parallel()
	dsn := fresh(t, blogSchema...)
	cfg := names(t, testdb.PostgresAdmin)
	cfg.Tables = []string{"posts"}
	cfg.StatusInterval, cfg.HealthInterval = time.Hour, -1
	inv := InvalidatorFunc(func(context.Context, ...plugin.Change) error { return nil })
	l := listen(t, dsn, inv, cfg)
	testsupport.EventuallyWithin(t, "the new slot's resync bump", 30*time.Second, func() bool { return l.Stats().Bumps >= 1 })
	time.Sleep(50 * time.Millisecond) // (the stream waits for the next message)
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Close took %s", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the stream within 10s")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	inv := InvalidatorFunc(func(context.Context, ...plugin.Change) error { return nil })
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"slot name", Config{Slot: "Bad-Name"}},
		{"publication name", Config{Publication: "x;drop"}},
		{"reconnect", Config{ReconnectMin: time.Second, ReconnectMax: time.Millisecond}},
		{"empty table", Config{Tables: []string{" "}}},
	} {
		if _, err := Listen(context.Background(), "host=127.0.0.1", inv, c.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := Listen(context.Background(), "host=127.0.0.1", nil, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil invalidator: %v", err)
	}
}

// TestSetupErrors: a table that is not one, a table whose writes a
// publication would break, and a publication that does not exist.
func TestSetupErrors(t *testing.T) {
	t.Parallel()
	dsn := fresh(t, `CREATE TABLE keyless (n int)`, `CREATE TABLE ok (id int PRIMARY KEY)`)
	inv := InvalidatorFunc(func(context.Context, ...plugin.Change) error { return nil })
	cfg := names(t, testdb.PostgresAdmin)
	for _, c := range []struct {
		tables []string
		want   error
	}{
		{[]string{"nope"}, ErrNotTable},
		{[]string{"ok", "keyless"}, ErrNoReplicaIdentity},
		{nil, ErrInvalidConfig},
	} {
		cfg.Tables = c.tables
		if l, err := Listen(context.Background(), dsn, inv, cfg); !errors.Is(err, c.want) {
			if l != nil {
				l.Close()
			}
			t.Errorf("tables %q: %v, want %v", c.tables, err, c.want)
		}
	}
	var n int
	if err := openSQL(t, dsn).QueryRow(`SELECT count(*) FROM pg_publication`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a failed setup left %d publications (%v)", n, err)
	}
}

func TestSnapshotVisible(t *testing.T) {
	t.Parallel()
	epoch := uint64(3) << 32
	for _, c := range []struct {
		snap string
		xid  uint32
		want bool
	}{
		{"100:105:", 99, true},
		{"100:105:101,103", 102, true},
		{"100:105:101,103", 103, false},
		{"100:105:", 105, false}, // not completed yet
		{"100:105:", 200, false},
		{fmtSnap(epoch+10, epoch+20), 0xFFFFFFF0, true}, // the previous epoch's
		{fmtSnap(epoch+10, epoch+20), 15, true},
		{fmtSnap(epoch+10, epoch+20), 25, false},
	} {
		s, err := parseSnapshot(c.snap)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.visible(c.xid); got != c.want {
			t.Errorf("%s: xid %d visible = %v, want %v", c.snap, c.xid, got, c.want)
		}
	}
	for _, bad := range []string{"", "1:2", "x:2:", "1:2:a"} {
		if _, err := parseSnapshot(bad); !errors.Is(err, ErrServer) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func fmtSnap(xmin, xmax uint64) string {
	return strconv.FormatUint(xmin, 10) + ":" + strconv.FormatUint(xmax, 10) + ":"
}

// TestBatchWindow: commits received in quick succession share one
// visibility check and one bump, made once the batch window has passed
// since the first; a lone commit is bumped at once.
func TestBatchWindow(t *testing.T) {
	t.Parallel()
	pgcfg, err := pgconn.ParseConfig(testdb.PostgresAdmin)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls [][]plugin.Change
	var at []time.Time
	inv := InvalidatorFunc(func(_ context.Context, changes ...plugin.Change) error {
		mu.Lock()
		defer mu.Unlock()
		calls, at = append(calls, changes), append(at, time.Now())
		return nil
	})
	const window = time.Second
	l := &Listener{
		cfg: Config{ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond},
		inv: inv, pgcfg: pgcfg, log: core.NewLog(quiet()),
		kick: make(chan struct{}, 1), bumpDone: make(chan struct{}), window: window,
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.bumpLoop()
	t.Cleanup(func() { l.Close() })

	admin := connect(t, testdb.PostgresAdmin)
	n := 0
	commit := func() time.Time {
		t.Helper()
		var xid uint64
		if err := admin.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		n++
		tx := newTx()
		tx.xid = uint32(xid)
		tx.add(&relation{table: `"posts"`, tag: "posts"}, &plugin.ChangedRow{After: map[string]any{"id": strconv.Itoa(n)}}, false)
		now := time.Now()
		l.commit(decoded{commit: true, end: pglogrepl.LSN(n), commitTime: now, tx: tx})
		return now
	}
	bumps := func(want int) ([][]plugin.Change, []time.Time) {
		t.Helper()
		testsupport.EventuallyWithin(t, fmt.Sprintf("%d bumps", want), 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(calls) >= want
		})
		time.Sleep(window / 10) // (no other)
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != want {
			t.Fatalf("%d bumps, want %d: %+v", len(calls), want, calls)
		}
		return slices.Clone(calls), slices.Clone(at)
	}
	ids := func(changes []plugin.Change) (out []string) {
		for _, c := range changes {
			for _, r := range c.Rows {
				out = append(out, r.After["id"].(string))
			}
		}
		return out
	}

	sent := commit()
	_, at1 := bumps(1)
	if d := at1[0].Sub(sent); d >= window/2 {
		t.Errorf("a lone commit was bumped %s after it was received, want at once", d)
	}
	first := commit()
	for range 3 {
		commit()
	}
	got, at2 := bumps(2)
	if d := at2[1].Sub(first); d < window {
		t.Errorf("commits in quick succession were bumped %s after the first, want the window (%s)", d, window)
	}
	if want := []string{"2", "3", "4", "5"}; !slices.Equal(ids(got[1]), want) {
		t.Errorf("the batch's bump named ids %q, want %q", ids(got[1]), want)
	}
	time.Sleep(window)
	sent = commit()
	_, at3 := bumps(3)
	if d := at3[2].Sub(sent); d >= window/2 {
		t.Errorf("a commit after a pause was bumped %s after it was received, want at once", d)
	}
	if s := l.Stats(); s.Bumps != 3 || s.Position != pglogrepl.LSN(n) {
		t.Errorf("stats: %+v", s)
	}
}

// TestVisibleFromLastSnapshot: the transactions that the last snapshot,
// asked for during the current stream less than a second ago, shows
// completed need no new one; those it shows in progress or beyond it do,
// and so does every one once the stream has started again or the snapshot
// is older.
func TestVisibleFromLastSnapshot(t *testing.T) {
	t.Parallel()
	// (nothing listens on port 1: a new snapshot cannot be had)
	pgcfg, err := pgconn.ParseConfig("host=127.0.0.1 port=1 user=postgres dbname=postgres sslmode=disable connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	last, err := parseSnapshot("100:105:101,103")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		xids    []uint32
		restart bool          // a stream started after the snapshot
		age     time.Duration // of the snapshot
		settled bool
	}{
		{"completed", []uint32{99, 102, 104}, false, 0, true},
		{"in progress", []uint32{99, 101}, false, 0, false},
		{"beyond the snapshot", []uint32{105}, false, 0, false},
		{"a later stream", []uint32{99}, true, 0, false},
		{"an old snapshot", []uint32{99}, false, 2 * time.Second, false},
	} {
		l := &Listener{pgcfg: pgcfg}
		l.streams.Add(1)
		l.last, l.lastOpen, l.lastAt = last, 1, time.Now().Add(-c.age)
		if c.restart {
			l.streams.Add(1)
		}
		b := &batch{xids: slices.Clone(c.xids)}
		err := l.visible(context.Background(), b)
		if settled := err == nil && len(b.xids) == 0; settled != c.settled {
			t.Errorf("%s: xids %v: settled %v (left %v, %v), want %v", c.name, c.xids, settled, b.xids, err, c.settled)
		}
	}
}
