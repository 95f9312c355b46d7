package plugin_test

// Connection pools of the user's own: a gorm.ConnPool wrapping a *sql.DB (as
// a tracing or metrics wrapper would), or the user's *sql.DB given as the
// dialector's Conn; and the databases the tests open through them.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// freshDSN creates a fresh database of the dialect and returns the
// database/sql driver name and DSN to open it with.
func freshDSN(t *testing.T, dialect string) (driverName, dsn string) {
	t.Helper()
	switch dialect {
	case "sqlite":
		return sqlite.DriverName, testdb.Fresh(t, dialect).(*sqlite.Dialector).DSN
	case "postgres":
		return "pgx", testdb.FreshPostgres(t)
	case "mysql":
		return "mysql", testdb.Fresh(t, dialect).(*mysql.Dialector).Config.DSN
	}
	t.Fatalf("unknown dialect %q", dialect)
	return "", ""
}

// dialectorFor opens dsn the ordinary way (the dialector opens its own pool).
func dialectorFor(dialect, dsn string) gorm.Dialector {
	switch dialect {
	case "sqlite":
		return sqlite.Open(dsn)
	case "postgres":
		return postgres.Open(dsn)
	}
	return mysql.Open(dsn)
}

// connDialector gives the dialect's dialector a pool of the user's own.
func connDialector(dialect string, conn gorm.ConnPool) gorm.Dialector {
	switch dialect {
	case "sqlite":
		return &sqlite.Dialector{Conn: conn}
	case "postgres":
		return postgres.New(postgres.Config{Conn: conn})
	}
	return mysql.New(mysql.Config{Conn: conn})
}

// openSQL opens a *sql.DB of the user's, closed when the test ends.
func openSQL(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	sqlDB, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	return sqlDB
}

// userPool is a connection pool of the user's own: not a *sql.DB, but a
// wrapper over one (as a tracing or metrics wrapper would be) that counts
// what reaches the database through it.
type userPool struct {
	db                             *sql.DB
	reads, execs, prepares, begins atomic.Int64
	// bareTx: its transactions are gorm.ConnPool and gorm.TxCommitter, but
	// not gorm.Tx (no StmtContext).
	bareTx bool
}

var (
	_ gorm.ConnPool         = (*userPool)(nil)
	_ gorm.ConnPoolBeginner = (*userPool)(nil)
	_ gorm.GetDBConnector   = (*userPool)(nil)
	_ gorm.Tx               = (*userTx)(nil)
	_ gorm.TxCommitter      = (*bareTx)(nil)
)

func (u *userPool) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	u.prepares.Add(1)
	return u.db.PrepareContext(ctx, q)
}

func (u *userPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	u.execs.Add(1)
	return u.db.ExecContext(ctx, q, args...)
}

func (u *userPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	u.reads.Add(1)
	return u.db.QueryContext(ctx, q, args...)
}

func (u *userPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	u.reads.Add(1)
	return u.db.QueryRowContext(ctx, q, args...)
}

func (u *userPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := u.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	u.begins.Add(1)
	if u.bareTx {
		return &bareTx{tx: tx, pool: u}, nil
	}
	return &userTx{bareTx{tx: tx, pool: u}}, nil
}

func (u *userPool) GetDBConn() (*sql.DB, error) { return u.db, nil }

// bareTx is a transaction of a userPool with only what GORM needs without
// PrepareStmt.
type bareTx struct {
	tx   *sql.Tx
	pool *userPool
}

func (b *bareTx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	b.pool.prepares.Add(1)
	return b.tx.PrepareContext(ctx, q)
}

func (b *bareTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	b.pool.execs.Add(1)
	return b.tx.ExecContext(ctx, q, args...)
}

func (b *bareTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	b.pool.reads.Add(1)
	return b.tx.QueryContext(ctx, q, args...)
}

func (b *bareTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	b.pool.reads.Add(1)
	return b.tx.QueryRowContext(ctx, q, args...)
}

func (b *bareTx) Commit() error   { return b.tx.Commit() }
func (b *bareTx) Rollback() error { return b.tx.Rollback() }

// userTx is a full gorm.Tx, usable with PrepareStmt.
type userTx struct{ bareTx }

func (u *userTx) StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	return u.tx.StmtContext(ctx, stmt)
}

// TestUserConnPool: a gorm.ConnPool of the user's (not a *sql.DB), or the
// user's *sql.DB given as the dialector's Conn, with PrepareStmt on and
// off: hits do not reach the pool, writes invalidate, transactions begun
// through it defer their bumps to commit, db.DB() works.
func TestUserConnPool(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, kind := range []string{"wrapper", "sql.DB"} {
			for _, prepare := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/PrepareStmt=%v", dialect, kind, prepare), func(t *testing.T) {
					t.Parallel()
					driverName, dsn := freshDSN(t, dialect)
					sqlDB := openSQL(t, driverName, dsn)
					var (
						conn gorm.ConnPool = sqlDB
						pool *userPool
					)
					if kind == "wrapper" {
						pool = &userPool{db: sqlDB}
						conn = pool
					}
					db, err := gorm.Open(connDialector(dialect, conn), &gorm.Config{Logger: logger.Discard, PrepareStmt: prepare})
					if err != nil {
						t.Fatal(err)
					}
					seedAccounts(t, db)
					p := plugin.New(plugin.Config{Logger: quiet})
					if err := db.Use(p); err != nil {
						t.Fatal(err)
					}
					defer p.Close()
					userPoolScenario(t, db, p, sqlDB, pool)
				})
			}
		}
	}
}

func userPoolScenario(t *testing.T, db *gorm.DB, p *plugin.Plugin, sqlDB *sql.DB, pool *userPool) {
	t.Helper()
	ctx := context.Background()
	if got, err := db.DB(); err != nil || got != sqlDB {
		t.Fatalf("db.DB() = %p, %v; want the user's *sql.DB %p", got, err, sqlDB)
	}
	reads := func() int64 {
		if pool == nil {
			return 0
		}
		return pool.reads.Load() + pool.prepares.Load()
	}

	// Hits: served without reaching the pool.
	if b := balanceOf(t, db, 1); b != 10 {
		t.Fatalf("balance %d, want 10", b)
	}
	before, hits := reads(), p.Stats().Hits
	if b := balanceOf(t, db, 1); b != 10 {
		t.Fatalf("balance %d, want 10", b)
	}
	if p.Stats().Hits != hits+1 {
		t.Fatalf("no hit through the user's pool: %+v", p.Stats())
	}
	if n := reads() - before; n != 0 {
		t.Fatalf("a hit made %d calls to the user's pool", n)
	}
	// The same, seen from the database: a change made behind GORM's back is
	// not seen until invalidated (the hit did not ask the database).
	if _, err := sqlDB.ExecContext(ctx, "UPDATE accounts SET balance = 999 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, db, 1); b != 10 {
		t.Fatalf("balance %d, want the cached 10", b)
	}
	if err := p.Invalidate(ctx, "accounts"); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, db, 1); b != 999 {
		t.Fatalf("after Invalidate: balance %d, want 999", b)
	}

	// Writes invalidate.
	balanceOf(t, db, 2)
	balanceOf(t, db, 2)
	if err := db.Model(&Account{ID: 2}).Update("balance", 77).Error; err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, db, 2); b != 77 {
		t.Fatalf("after an update: balance %d, want 77", b)
	}

	// Transactions: a row written in an open transaction reads old until
	// commit, new right after, and is cached again.
	balanceOf(t, db, 3)
	balanceOf(t, db, 3)
	begins := int64(0)
	if pool != nil {
		begins = pool.begins.Load()
	}
	tx := db.Begin()
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	if pool != nil && pool.begins.Load() != begins+1 {
		t.Fatalf("the transaction was not begun through the user's pool")
	}
	if got, err := tx.DB(); err != nil || got != sqlDB {
		t.Fatalf("tx.DB() = %p, %v; want %p", got, err, sqlDB)
	}
	if err := tx.Model(&Account{ID: 3}).Update("balance", 333).Error; err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	var inside Account
	if err := tx.First(&inside, 3).Error; err != nil || inside.Balance != 333 {
		tx.Rollback()
		t.Fatalf("inside the transaction: %+v, %v; want 333", inside, err)
	}
	for i := 0; i < 2; i++ {
		if b := balanceOf(t, db, 3); b != 30 {
			tx.Rollback()
			t.Fatalf("outside the open transaction: balance %d, want the old 30", b)
		}
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, db, 3); b != 333 {
		t.Fatalf("right after commit: balance %d, want 333", b)
	}
	hits = p.Stats().Hits
	if b := balanceOf(t, db, 3); b != 333 || p.Stats().Hits != hits+1 {
		t.Fatalf("after commit: balance %d, hits %d→%d; want 333 from the cache", b, hits, p.Stats().Hits)
	}

	// A rolled-back transaction changes nothing, cached or not.
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Account{ID: 4}).Update("balance", 444).Error; err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatalf("Transaction: %v", err)
	}
	if b := balanceOf(t, db, 4); b != 40 {
		t.Fatalf("after a rollback: balance %d, want 40", b)
	}
	if got, err := db.DB(); err != nil || got != sqlDB || got.PingContext(ctx) != nil {
		t.Fatalf("db.DB() at the end: %p, %v", got, err)
	}
}

// Regression (fixed): with PrepareStmt, GORM needs a
// transaction that implements gorm.Tx (StmtContext binds a statement
// prepared earlier to the transaction); when the user's ConnPoolBeginner
// returns one that does not, GORM refuses to begin (ErrInvalidTransaction;
// its default transactions then run without one). With the plugin, txPool
// always claims StmtContext and, when the pool's transaction lacks it,
// returns the statement unbound: Begin succeeds, and then a statement
// prepared earlier on the pool runs outside the transaction (a rollback
// does not undo it), and one prepared in an earlier, committed transaction
// fails with "sql: statement is closed".
func TestPreparedStmtUserTxWithoutStmtContext(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, cached := range []bool{false, true} {
			for _, skipDefaultTx := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/cached=%v/SkipDefaultTransaction=%v", dialect, cached, skipDefaultTx), func(t *testing.T) {
					t.Parallel()
					driverName, dsn := freshDSN(t, dialect)
					sqlDB := openSQL(t, driverName, dsn)
					db, err := gorm.Open(connDialector(dialect, &userPool{db: sqlDB, bareTx: true}),
						&gorm.Config{Logger: logger.Discard, PrepareStmt: true, SkipDefaultTransaction: skipDefaultTx})
					if err != nil {
						t.Fatal(err)
					}
					seedAccounts(t, db)
					if cached {
						p := plugin.New(plugin.Config{Logger: quiet})
						if err := db.Use(p); err != nil {
							t.Fatal(err)
						}
						defer p.Close()
					}
					// Prepared before the transaction, as an application's hot
					// statement is.
					if err := db.Model(&Account{ID: 1}).Update("balance", 11).Error; err != nil {
						t.Fatal(err)
					}
					tx := db.Begin()
					if tx.Error != nil {
						return // GORM's behaviour: no transaction, nothing wrong
					}
					if err := tx.Model(&Account{ID: 1}).Update("balance", 12).Error; err != nil {
						tx.Rollback()
						t.Fatalf("Begin succeeded, but the transaction's update failed: %v", err)
					}
					if err := tx.Rollback().Error; err != nil {
						t.Fatalf("rollback: %v", err)
					}
					var b int64
					if err := sqlDB.QueryRow("SELECT balance FROM accounts WHERE id = 1").Scan(&b); err != nil {
						t.Fatal(err)
					}
					if b != 11 {
						t.Errorf("balance %d after the transaction rolled back, want 11: its update ran outside the transaction", b)
					}
				})
			}
		}
	}
}
