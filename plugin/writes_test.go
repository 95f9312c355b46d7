package plugin_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Tests of writes whose end the plugin cannot simply see: statements and
// commits of unknown outcome, cancelled and long transactions, Close.

// rawBalance reads account id's balance straight from the database.
func rawBalance(t *testing.T, sqlDB *sql.DB, id int) int64 {
	t.Helper()
	var b int64
	if err := sqlDB.QueryRow("SELECT balance FROM accounts WHERE id = ?", id).Scan(&b); err != nil {
		// PostgreSQL's placeholders
		if err := sqlDB.QueryRow("SELECT balance FROM accounts WHERE id = $1", id).Scan(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestWriteOutlivesItsContext: an autocommit UPDATE waits on a row lock
// and its caller's context expires. go-sql-driver/mysql closes the
// connection, and the server runs the UPDATE, and commits it, once the lock
// is released. pgx (v5.10) closes its connection too and sends a cancel
// request as it does, asynchronously: the statement is cancelled, unless it
// got the lock first. Either way, until WriteLease has passed its table
// must not be served from entries read meanwhile.
func TestWriteOutlivesItsContext(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			locker, err := sqlDB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer locker.Close()
			for _, q := range []string{"BEGIN", "UPDATE accounts SET owner = owner WHERE id = 1"} {
				if _, err := locker.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err = db.WithContext(wctx).Exec("UPDATE accounts SET balance = 77 WHERE id = 1").Error
			cancel()
			if err == nil {
				t.Fatal("the UPDATE did not wait for the row lock")
			}
			// Reads while the UPDATE may still commit.
			before := p.Stats().Hits
			for range 2 {
				if got := readID(t, db, 1); got != 10 {
					t.Fatalf("before the lock was released: %d, want 10", got)
				}
			}
			if hits := p.Stats().Hits - before; hits != 0 {
				t.Fatalf("%d reads served from the cache while the UPDATE's outcome was unknown", hits)
			}
			if _, err := locker.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			// The outcome: 77 when the UPDATE ran once the lock was gone
			// (go-sql-driver/mysql closes the connection and the statement
			// runs on; pgx's cancel request may come too late on a loaded
			// machine), 10 when pgx's cancel request reached it first.
			var want int64
			testsupport.Eventually(t, "the UPDATE's outcome is settled", func() bool {
				if want = rawBalance(t, sqlDB, 1); want == 77 {
					return true
				}
				return dialect == "postgres" && !updateRunning(t, sqlDB)
			})
			if got := readID(t, db, 1); got != want {
				t.Fatalf("after the UPDATE's outcome was settled: %d (an entry read before), want %d", got, want)
			}
			if st := p.Stats(); st.UnknownOutcomes != 1 {
				t.Fatalf("UnknownOutcomes = %d, want 1", st.UnknownOutcomes)
			}
		})
	}
}

// updateRunning reports whether PostgreSQL still runs (or waits to run)
// the test's UPDATE of balance 77.
func updateRunning(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'UPDATE accounts SET balance = 77%' AND state <> 'idle' AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// lateCommitPool begins transactions whose Commit fails with a connection
// error while the COMMIT, already sent, still lands a little later (a
// connection reset after the server received it).
type lateCommitPool struct {
	*sql.DB
	landed chan struct{}
}

func (p lateCommitPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &lateCommitTx{Tx: tx, landed: p.landed}, nil
}

type lateCommitTx struct {
	*sql.Tx
	landed chan struct{}
	once   sync.Once
}

func (t *lateCommitTx) Commit() error {
	t.once.Do(func() {
		go func() {
			time.Sleep(200 * time.Millisecond)
			_ = t.Tx.Commit()
			close(t.landed)
		}()
	})
	return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

func (t *lateCommitTx) Rollback() error { return sql.ErrTxDone }

// TestCommitOfUnknownOutcome: a COMMIT that returns a connection error may
// have committed: its tables stay held, so that rows read before it lands
// are not served after.
func TestCommitOfUnknownOutcome(t *testing.T) {
	t.Parallel()
	sqlDB, err := sql.Open("pgx", testdb.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	pool := lateCommitPool{DB: sqlDB, landed: make(chan struct{})}
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: pool}), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Account{Owner: "a", Balance: 10}).Error; err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = db.Transaction(func(tx *gorm.DB) error {
		return tx.Exec("UPDATE accounts SET balance = 55 WHERE id = 1").Error
	})
	if err == nil {
		t.Fatal("the commit did not fail")
	}
	for range 2 {
		if got := readID(t, db, 1); got != 10 {
			t.Fatalf("before the COMMIT landed: %d, want 10", got)
		}
	}
	<-pool.landed
	if got := readID(t, db, 1); got != 55 {
		t.Fatalf("after the COMMIT landed: %d (an entry read before), want 55", got)
	}
}

// TestCancelledTransactionReleases: a transaction whose context is
// cancelled is rolled back by database/sql itself, and GORM's Rollback then
// gets sql.ErrTxDone: the holds must be released all the same, so that the
// table is cached again at once (not after WriteLease).
func TestCancelledTransactionReleases(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Account{ID: 1}).Update("balance", 55).Error; err != nil {
			return err
		}
		cancel()
		// Wait for database/sql's own rollback.
		testsupport.Eventually(t, "database/sql rolls back", func() bool {
			return errors.Is(tx.WithContext(context.Background()).Exec("SELECT 1").Error, sql.ErrTxDone)
		})
		return errors.New("given up")
	})
	if err == nil {
		t.Fatal("the transaction did not fail")
	}
	before := p.Stats().Hits
	for range 2 {
		if got := readID(t, db, 1); got != 10 {
			t.Fatalf("after the rollback: %d, want 10", got)
		}
	}
	if st := p.Stats(); st.Hits != before+1 {
		t.Fatalf("the second read was not a hit: the rolled-back transaction still holds its table (%+v)", st.Bypasses)
	}
}

// TestLongTransactionRenewsHold: on MySQL (whose READ UNCOMMITTED readers
// see a transaction's rows before it commits), a transaction open for
// longer than WriteLease keeps its tables held (renewed), so that no other
// reader stores or serves rows while it may still commit.
func TestLongTransactionRenewsHold(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	db, p := cachedDB(t, "mysql", plugin.Config{WriteLease: lease})
	tx := db.Begin()
	if err := tx.Model(&Account{ID: 1}).Update("balance", 66).Error; err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * lease / 2)
	before := p.Stats()
	for range 2 {
		if got := readID(t, db, 1); got != 10 {
			t.Fatalf("during the transaction: %d, want 10", got)
		}
	}
	after := p.Stats()
	if after.Hits != before.Hits || after.Stores != before.Stores {
		t.Fatalf("rows of a table written by an open transaction were stored or served: %+v", after)
	}
	if after.HoldRenewals == 0 {
		t.Fatal("no hold was renewed")
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if got := readID(t, db, 1); got != 66 {
		t.Fatalf("after the commit: %d, want 66", got)
	}
}

// slowBumps is a byte store whose bumps and releases take a millisecond.
type slowBumps struct{ *testsupport.RecordingStore }

func (s slowBumps) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	time.Sleep(time.Millisecond)
	return s.RecordingStore.Bump(ctx, tags, hold)
}

func (s slowBumps) Release(ctx context.Context, tags []string, id uint64) error {
	time.Sleep(time.Millisecond)
	return s.RecordingStore.Release(ctx, tags, id)
}

// TestCloseWhileWriting: Close while writes run (their bumps start while
// Close waits for those in flight: a sync.WaitGroup forbids that) neither
// races nor panics, and every write completes.
func TestCloseWhileWriting(t *testing.T) {
	t.Parallel()
	st := slowBumps{testsupport.NewRecordingStore()}
	db, p := cachedDB(t, "sqlite", plugin.Config{Store: st})
	defer st.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if err := db.Exec("UPDATE accounts SET balance = ? WHERE id = ?", i, 1+w).Error; err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestWriteCallingUnknownFunction: a write that calls a function the
// plugin does not know (here one that writes another table) invalidates
// everything, as a read calling it does.
func TestWriteCallingUnknownFunction(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	for _, q := range []string{
		"CREATE TABLE audit (n int)",
		"INSERT INTO audit VALUES (0)",
		"CREATE FUNCTION note_change(v bigint) RETURNS bigint LANGUAGE sql AS 'UPDATE audit SET n = n + 1; SELECT v'",
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	audit := func() int {
		var n int
		if err := db.Raw("SELECT n FROM audit").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	audit()
	if got := audit(); got != 0 {
		t.Fatal(got)
	}
	if err := db.Exec("UPDATE accounts SET balance = note_change(balance) WHERE id = 1").Error; err != nil {
		t.Fatal(err)
	}
	if got := audit(); got != 1 {
		t.Fatalf("audit after a write whose function wrote it: %d (stale), want 1", got)
	}
}

// A closed plugin on a store it does not own still invalidates that store
// on writes: other processes read it.
func TestClosedPluginStillBumpsSharedStore(t *testing.T) {
	t.Parallel()
	ms, _ := memstore.New(memstore.Config{})
	db1, p1 := cachedDB(t, "sqlite", plugin.Config{Store: ms})
	sqlDB, _ := db1.DB()
	db2, err := gorm.Open(db1.Dialector, &gorm.Config{Logger: logger.Discard, ConnPool: sqlDB})
	if err != nil {
		t.Fatal(err)
	}
	p2 := plugin.New(plugin.Config{Store: ms, Logger: quiet})
	if err := db2.Use(p2); err != nil {
		t.Fatal(err)
	}
	account(t, db2, 1)
	account(t, db2, 1)
	p1.Close()
	db1.Model(&Account{}).Where("id = 1").Update("balance", 777)
	if a := account(t, db2, 1); a.Balance != 777 {
		t.Fatalf("after a write through a closed instance: balance %d, want 777", a.Balance)
	}
}

// TestLateHolds: on PostgreSQL and SQLite a transaction holds what it
// wrote when it commits: until then the rows it changed are served from
// the cache as the database still has them (no other session sees its
// writes), and once Commit has returned, no read sees them old.
func TestLateHolds(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			readID(t, db, 1)
			tx := db.Begin()
			must(t, tx.Model(&Account{ID: 1}).Update("balance", 66).Error)
			before := p.Stats()
			if got := readID(t, db, 1); got != 10 {
				t.Fatalf("during the transaction: %d, want 10", got)
			}
			if after := p.Stats(); after.Hits != before.Hits+1 {
				t.Fatalf("a row written by an open transaction was not served from the cache: %+v", after.Bypasses)
			}
			must(t, tx.Commit().Error)
			if got := readID(t, db, 1); got != 66 {
				t.Fatalf("after the commit: %d, want 66", got)
			}
			// A rolled-back transaction changed nothing, and bumps nothing.
			readID(t, db, 1)
			tx = db.Begin()
			must(t, tx.Model(&Account{ID: 1}).Update("balance", 77).Error)
			must(t, tx.Rollback().Error)
			before = p.Stats()
			if got := readID(t, db, 1); got != 66 {
				t.Fatalf("after the rollback: %d, want 66", got)
			}
			if after := p.Stats(); after.Hits != before.Hits+1 {
				t.Fatal("the read after a rollback missed")
			}
		})
	}
}
