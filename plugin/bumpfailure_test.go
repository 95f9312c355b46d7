package plugin_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/gormcache/gormcache/store/storetest"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestBumpFailure: two processes share Redis (the reader is this test
// binary started again); the writer's bumps cannot reach it. FailWrite (the default) refuses the write before it reaches
// the database, so the other instance's entries stay true; ProceedWrite
// runs it, and the other instance serves its old entry until the writer's
// retry lands (the stated window), then the new row.
func TestBumpFailure(t *testing.T) {
	t.Parallel()
	for _, mode := range []plugin.BumpFailure{plugin.FailWrite, plugin.ProceedWrite} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			dsn := testdb.FreshPostgres(t)
			prefix := testdb.KeyPrefix("gcbf")
			testdb.CleanRedis(t, redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}}, prefix)
			instance := func(wrap func(store.Store) store.Store) (*gorm.DB, *plugin.Plugin) {
				rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
				t.Cleanup(func() { rdb.Close() })
				st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
				if err != nil {
					testdb.Unavailable(t, "redis", err)
				}
				db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				p := plugin.New(plugin.Config{Store: wrap(st), BumpFailure: mode, Logger: quiet})
				if err := db.Use(p); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return db, p
			}
			var cut *storetest.CutBumps
			writer, wp := instance(func(s store.Store) store.Store { cut = &storetest.CutBumps{Store: s}; return cut })
			if err := writer.AutoMigrate(&Account{}); err != nil {
				t.Fatal(err)
			}
			if err := writer.Create(&Account{Owner: "a", Balance: 10}).Error; err != nil {
				t.Fatal(err)
			}
			// (after the table exists: a table the reader's catalog does
			// not list is not cached until the catalog is read again)
			read := readerProcess(t, sharedSpec{DSN: dsn, Redis: []string{"127.0.0.1:6379"}, Prefix: prefix})
			read()
			if got := read(); got != 10 {
				t.Fatal(got)
			}
			cut.Cut.Store(true)
			err := writer.Model(&Account{ID: 1}).Update("balance", 20).Error
			var raw int64
			if err := writer.Raw("SELECT balance FROM accounts WHERE id = 1").Row().Scan(&raw); err != nil {
				t.Fatal(err)
			}
			switch mode {
			case plugin.FailWrite:
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("write with its bump cut: %v, want an error wrapping store.ErrUnavailable", err)
				}
				if raw != 10 {
					t.Fatalf("the refused write reached the database: balance %d", raw)
				}
				if got := read(); got != 10 {
					t.Fatalf("other instance: %d, want 10", got)
				}
				if wp.Stats().WritesRefused != 1 {
					t.Fatalf("WritesRefused = %d", wp.Stats().WritesRefused)
				}
			case plugin.ProceedWrite:
				if err != nil || raw != 20 {
					t.Fatalf("write with its bump cut: %v, balance %d; want it written", err, raw)
				}
				if got := readID(t, writer, 1); got != 20 {
					t.Fatalf("the writer itself: %d, want 20 (its tables are broken: from the database)", got)
				}
				// The stated window: the other instance still serves its
				// entry from before the write...
				if got := read(); got != 10 {
					t.Fatalf("other instance during the window: %d; the window is documented as serving 10", got)
				}
				// ...until the writer's background retry reaches the store.
				cut.Cut.Store(false)
				testsupport.Eventually(t, "the other instance sees the write once the retry lands", func() bool { return read() == 20 })
			}
		})
	}
}

// TestLostBumpRepliesLeaveNoHold: a bump with a hold whose reply is lost
// (the client timed out after the store ran it) leaves a hold the plugin
// never got the lease of. Before the fix it held the table on every
// instance for WriteLease (a minute) after the write was refused or over:
// TestRedisDownAndBack saw no hits for 30s after Redis came back.
func TestLostBumpRepliesLeaveNoHold(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		mode plugin.BumpFailure
		lose int64 // replies lost: 3 fail every attempt
	}{
		{"refused", plugin.FailWrite, 3},
		{"retried", plugin.FailWrite, 1},
		{"proceeded", plugin.ProceedWrite, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ms, err := memstore.New(memstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			cut := &storetest.CutBumps{Store: ms}
			db, p := cachedDB(t, "sqlite", plugin.Config{Store: cut, BumpFailure: c.mode})
			readID(t, db, 1)
			cut.LoseReplies.Store(c.lose)
			err = db.Model(&Account{ID: 1}).Update("balance", 20).Error
			if refused := errors.Is(err, plugin.ErrWriteRefused); refused != (c.name == "refused") {
				t.Fatalf("write: %v", err)
			}
			want := int64(20)
			if c.name == "refused" {
				want = 10
			}
			cut.LoseReplies.Store(0)
			// Well under WriteLease (a minute): the background retry backs
			// off from 50ms.
			deadline := time.Now().Add(10 * time.Second)
			for {
				hits := p.Stats().Hits
				for range 2 {
					if got := readID(t, db, 1); got != want {
						t.Fatalf("read: %d, want %d", got, want)
					}
				}
				if p.Stats().Hits > hits {
					break
				}
				if time.Now().After(deadline) {
					v := storetest.Versions(t, ms, "accounts")
					t.Fatalf("no hits 10s after the store answered again (accounts version %v; 0 is held): %+v", v, p.Stats())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// bumpDownStore fails every Bump while down is set (Get and the rest work).
type bumpDownStore struct {
	*testsupport.RecordingStore
	down atomic.Bool
}

func (s *bumpDownStore) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if s.down.Load() {
		return 0, errors.New("bump: connection reset")
	}
	return s.RecordingStore.Bump(ctx, tags, hold)
}

// hookPool is a *sql.DB whose UPDATEs run through onUpdate when it is set.
type hookPool struct {
	*sql.DB
	onUpdate func(exec func() (sql.Result, error)) (sql.Result, error)
}

func (h *hookPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	exec := func() (sql.Result, error) { return h.DB.ExecContext(ctx, query, args...) }
	if h.onUpdate != nil && strings.HasPrefix(strings.TrimSpace(strings.ToUpper(query)), "UPDATE") {
		f := h.onUpdate
		h.onUpdate = nil
		return f(exec)
	}
	return exec()
}

// A write whose first bump fails marks its table broken, and retryBroken
// clears that mark with its own bump as soon as the store answers, even if
// the write is still running: its rows are not committed yet and no lease
// holds the table, so a read then stores the old rows under the current
// version, and once the write commits that entry is served until the
// write's final bump lands (the gap between COMMIT and the bump that the
// lease exists to close). Here a read made after the UPDATE committed, and
// before the statement returned, gets the old owner from the cache.
func TestRetryBrokenClearsMarkOfWriteInFlight(t *testing.T) {
	t.Parallel()
	seed, err := gorm.Open(testdb.Fresh(t, "sqlite"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := seed.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	if err := seed.Create(&Account{ID: 1, Owner: "old"}).Error; err != nil {
		t.Fatal(err)
	}
	sqlDB, err := seed.DB()
	if err != nil {
		t.Fatal(err)
	}
	hp := &hookPool{DB: sqlDB}
	db, err := gorm.Open(sqlite.Dialector{Conn: hp}, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	st := &bumpDownStore{RecordingStore: testsupport.NewRecordingStore()}
	p := plugin.New(plugin.Config{BumpFailure: plugin.ProceedWrite, Store: st, Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	var afterCommit Account
	hp.onUpdate = func(exec func() (sql.Result, error)) (sql.Result, error) {
		// The write's first bump has failed; the store answers again, and
		// the background retry runs (it starts at 50 ms).
		st.down.Store(false)
		time.Sleep(300 * time.Millisecond)
		if plugin.Serving(p, "accounts") {
			t.Error("accounts served again while the write whose bump failed is still running")
		}
		account(t, db, 1) // the write has not committed: the old row (it must not be stored)
		res, err := exec()
		afterCommit = account(t, db, 1) // begins after the commit
		return res, err
	}
	st.down.Store(true)
	if err := db.Model(&Account{ID: 1}).Update("owner", "new").Error; err != nil {
		t.Fatal(err)
	}
	if afterCommit.Owner != "new" {
		t.Errorf("a read begun after the UPDATE committed returned owner %q, want \"new\"", afterCommit.Owner)
	}
	// Once the write is over, its bump (made after it) serves the table again.
	for deadline := time.Now().Add(5 * time.Second); !plugin.Serving(p, "accounts"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("accounts not served again 5s after the write")
		}
	}
	if got := account(t, db, 1); got.Owner != "new" {
		t.Errorf("after the write: owner %q, want \"new\"", got.Owner)
	}
}

const readerEnv = "GORMCACHE_READER_CHILD"

// readerChild is the other process of readerProcess: for each line on its
// standard input it reads account 1 through its own plugin on the shared
// store, and prints its balance (or the error).
func readerChild(specJSON string) int {
	_, db, p := childDB("reader", specJSON)
	if db == nil {
		return 2
	}
	defer p.Close()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var a Account
		if err := db.First(&a, 1).Error; err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(a.Balance)
	}
	return 0
}

// readerProcess starts a second process sharing spec's database and store,
// and returns a function that has it read account 1's balance.
func readerProcess(t *testing.T, spec sharedSpec) func() int64 {
	t.Helper()
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), readerEnv+"="+string(js))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("reader process: %v\n%s", err, stderr.String())
		}
	})
	out := bufio.NewScanner(stdout)
	return func() int64 {
		t.Helper()
		if _, err := fmt.Fprintln(stdin, "read"); err != nil {
			t.Fatalf("reader process: %v\n%s", err, stderr.String())
		}
		if !out.Scan() {
			t.Fatalf("reader process ended: %v\n%s", out.Err(), stderr.String())
		}
		v, err := strconv.ParseInt(out.Text(), 10, 64)
		if err != nil {
			t.Fatalf("reader process: %s", out.Text())
		}
		return v
	}
}
