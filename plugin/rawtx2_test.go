package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
	"gorm.io/gorm"
)

// SET autocommit = 0 combined with another variable in one SET is not
// read as transaction control: the UPDATE after it is treated as
// autocommit (bumped and released at once), reads through the pool store
// the old row, and the COMMIT bumps nothing.
func TestAutocommitOffInCombinedSet(t *testing.T) {
	t.Parallel()
	for _, set := range []string{
		"SET autocommit = 0, sql_mode = 'STRICT_TRANS_TABLES'",
		"SET SESSION sql_mode = 'STRICT_TRANS_TABLES', SESSION autocommit = 0",
		"SET SESSION autocommit := 0, @x = 1",
	} {
		t.Run(set, func(t *testing.T) {
			t.Parallel()
			db, _ := cachedDB(t, "mysql", plugin.Config{})
			err := db.Connection(func(conn *gorm.DB) error {
				execAll(t, conn, set, "UPDATE accounts SET balance = 99 WHERE id = 1")
				readID(t, db, 1) // through the pool: 10 (uncommitted), stored
				execAll(t, conn, "COMMIT", "SET autocommit = 1")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readID(t, db, 1); got != 99 {
				t.Fatalf("after COMMIT: %d, want 99 (stale entry stored during the transaction)", got)
			}
		})
	}
}

// a dedicated connection closed (db.Connection returns) with a raw
// transaction still open does not roll it back: *sql.Conn.Close returns the
// driver connection to the pool, transaction and all. The AddCleanup then
// releases the holds, and the pool's reads (on that same connection) see
// and store the uncommitted row; a ROLLBACK later sent through the pool
// bumps nothing.
func TestConnClosedInsideRawTx(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, _ := cachedDB(t, dialect, plugin.Config{})
			sqlDB, _ := db.DB()
			sqlDB.SetMaxOpenConns(1)
			readID(t, db, 1)
			err := db.Connection(func(conn *gorm.DB) error {
				execAll(t, conn, "BEGIN", "UPDATE accounts SET balance = 99 WHERE id = 1")
				return nil // an early return: no COMMIT, no ROLLBACK
			})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				runtime.GC()
				time.Sleep(20 * time.Millisecond)
			}
			// The only connection is the one with the open transaction.
			got := readID(t, db, 1)
			t.Logf("read through the pool after the conn was closed: %d", got)
			execAll(t, db, "ROLLBACK") // the uncommitted row is gone
			var raw int64
			if err := db.Raw("SELECT balance FROM accounts WHERE id = 1").Row().Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if raw != 10 {
				t.Fatalf("database: %d after ROLLBACK", raw)
			}
			if got := readID(t, db, 1); got != 10 {
				t.Fatalf("after ROLLBACK: cache serves %d, a row that never committed (database has 10)", got)
			}
		})
	}
}

// a refused write (FailWrite) that carries a COMMIT ("UPDATE …;
// COMMIT" in one Exec) never ran, yet rawTx.control(TxEnd) ends the
// transaction's holds: once the store is back, the pool stores the old row,
// and the real COMMIT later bumps nothing.
func TestRefusedCommitKeepsHolds(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	if err := db.Exec("CREATE TABLE others (x int)").Error; err != nil {
		t.Fatal(err)
	}
	// A shared store (not the plugin's own), whose bumps can be cut.
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cut := &storetest.CutBumps{Store: ms}
	p := plugin.New(plugin.Config{Store: cut, Logger: quiet})
	// Re-open a gorm DB on the same database with this plugin.
	sqlDB, _ := db.DB()
	db2, err := gorm.Open(db.Dialector, &gorm.Config{Logger: db.Logger, ConnPool: sqlDB})
	if err != nil {
		t.Fatal(err)
	}
	if err := db2.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	db = db2
	readID(t, db, 1)
	err = db.Connection(func(conn *gorm.DB) error {
		execAll(t, conn, "BEGIN", "UPDATE accounts SET balance = 99 WHERE id = 1")
		cut.Cut.Store(true)
		err := conn.Exec("UPDATE others SET x = 1; COMMIT").Error
		t.Logf("refused: %v", err)
		if err == nil {
			t.Fatal("not refused")
		}
		conn.Error = nil // Connection's instance keeps its error
		cut.Cut.Store(false)
		// The transaction is still open: its table stays held.
		hits := p.Stats().Hits
		for range 2 {
			if got := readID(t, db, 1); got != 10 {
				t.Fatalf("during the transaction: %d", got)
			}
		}
		if p.Stats().Hits != hits {
			t.Fatal("a table written by the open transaction was served from the cache after a refused COMMIT")
		}
		execAll(t, conn, "COMMIT") // the real one
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readID(t, db, 1); got != 99 {
		t.Fatalf("after the real COMMIT: %d, want 99", got)
	}
}

// netDown fails bumps and releases with a connection error, as a Redis
// that refuses connections does.
type netDown struct {
	store.Store
	cut atomic.Bool
}

func (n *netDown) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if n.cut.Load() {
		return 0, fmt.Errorf("redis: %w: %w", store.ErrUnavailable, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	}
	return n.Store.Bump(ctx, tags, hold)
}

func (n *netDown) Release(ctx context.Context, tags []string, id uint64) error {
	if n.cut.Load() {
		return fmt.Errorf("redis: %w: %w", store.ErrUnavailable, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	}
	return n.Store.Release(ctx, tags, id)
}

// "BEGIN; UPDATE …" refused (FailWrite) never ran, but the store's
// error reads as outcomeUnknown, so rawTx.control(TxBegin) opens the shared
// pool's raw transaction: every read through the pool bypasses the cache
// from then on (until some COMMIT/ROLLBACK happens to be sent).
func TestRefusedBeginOpensNothing(t *testing.T) {
	t.Parallel()
	base, _ := cachedDB(t, "postgres", plugin.Config{})
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := &netDown{Store: ms}
	p := plugin.New(plugin.Config{Store: st, Logger: quiet})
	sqlDB, _ := base.DB()
	db, err := gorm.Open(base.Dialector, &gorm.Config{Logger: base.Logger, ConnPool: sqlDB})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	st.cut.Store(true)
	if err := db.Exec("BEGIN; UPDATE accounts SET balance = 99 WHERE id = 1").Error; err == nil {
		t.Fatal("not refused")
	}
	st.cut.Store(false)
	testsupport.Eventually(t, "store back", func() bool { return plugin.Serving(p, "accounts") })
	before := p.Stats().Hits
	for range 5 {
		readID(t, db, 2)
	}
	if p.Stats().Hits == before {
		t.Fatalf("no hit in 5 reads after the refused write: bypasses %v", p.Stats().Bypasses)
	}
}
