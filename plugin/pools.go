package plugin

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gormcache/gormcache/invalidation"
	"gorm.io/gorm"
)

// rootPool sits under *gorm.DB: it passes everything through, and begins
// transactions whose end the plugin sees.
type rootPool struct {
	p     *Plugin
	inner gorm.ConnPool
}

var (
	_ gorm.ConnPool         = (*rootPool)(nil)
	_ gorm.ConnPoolBeginner = (*rootPool)(nil)
	_ gorm.GetDBConnector   = (*rootPool)(nil)
)

func (r *rootPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return r.inner.PrepareContext(ctx, query)
}

func (r *rootPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.inner.ExecContext(ctx, query, args...)
}

func (r *rootPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.inner.QueryContext(ctx, query, args...)
}

func (r *rootPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.inner.QueryRowContext(ctx, query, args...)
}

// BeginTx begins a transaction through the pool underneath and returns it
// wrapped, so that its commit bumps the tables it wrote.
func (r *rootPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	// A catalog marked stale (a migration) is read again now, outside the
	// transaction: its writes' tags depend on it.
	r.p.depsGraph()
	var (
		tx  gorm.ConnPool
		err error
	)
	switch b := r.inner.(type) {
	case gorm.TxBeginner:
		var sqlTx *sql.Tx
		sqlTx, err = b.BeginTx(ctx, opts)
		if err == nil {
			tx = sqlTx
		}
	case gorm.ConnPoolBeginner:
		tx, err = b.BeginTx(ctx, opts)
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	if err != nil {
		return nil, err
	}
	committer, ok := tx.(gorm.TxCommitter)
	if !ok {
		return tx, nil
	}
	tp := &txPool{p: r.p, root: r, inner: tx, committer: committer, ctx: ctx}
	if _, ok := tx.(stmtContexter); ok {
		return &stmtTxPool{tp}, nil // a full gorm.Tx: PrepareStmt sessions may use it
	}
	return tp, nil // as the transaction underneath: no StmtContext (GORM then refuses PrepareStmt in it)
}

type stmtContexter interface {
	StmtContext(context.Context, *sql.Stmt) *sql.Stmt
}

// stmtTxPool is a txPool over a transaction that can bind prepared
// statements (a *sql.Tx, or a user's gorm.Tx).
type stmtTxPool struct{ *txPool }

var _ gorm.Tx = (*stmtTxPool)(nil)

// StmtContext lets PrepareStmt sessions use the transaction.
func (t *stmtTxPool) StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	return t.inner.(stmtContexter).StmtContext(ctx, stmt)
}

// GetDBConn lets db.DB() find the *sql.DB underneath.
func (r *rootPool) GetDBConn() (*sql.DB, error) {
	switch in := r.inner.(type) {
	case *sql.DB:
		return in, nil
	case gorm.GetDBConnector:
		return in.GetDBConn()
	}
	return nil, gorm.ErrInvalidDB
}

// Ping pings the pool underneath, when it can.
func (r *rootPool) Ping() error {
	if p, ok := r.inner.(interface{ Ping() error }); ok {
		return p.Ping()
	}
	return nil
}

// txPool is a transaction begun through the root pool. It implements gorm.Tx
// (but not BeginTx, so GORM nests with savepoints), records the tables
// written inside, holds them while it is open, and bumps them when it ends.
//
// On PostgreSQL and SQLite, where no other session sees a transaction's
// writes before it commits (neither has dirty reads), the holds are placed
// when it commits instead (late): until then the entries of what it wrote
// are as fresh as the database, so they are served, and reads stamped
// before the hold that read the rows before the commit are stored under
// versions the hold replaces. A transaction that rolls back has changed
// nothing: it bumps nothing. On MySQL, whose READ UNCOMMITTED readers see
// uncommitted rows, a write is held from when it runs, as outside a
// transaction.
type txPool struct {
	p         *Plugin
	root      *rootPool
	inner     gorm.ConnPool
	committer gorm.TxCommitter
	ctx       context.Context // the transaction's: database/sql rolls back when it is done

	mu     sync.Mutex
	writes writeSet
	// late: tags written, to hold when it commits (lateHolds), as written
	// (each once when held); now: held as written from now on
	// (transaction control was sent as SQL: what follows may commit on
	// its own)
	late []string
	now  bool
	ddl  atomic.Bool // the transaction may have changed the schema
}

// lateBatch bounds the tags of one hold placed at commit (a store call
// each, within StoreTimeout).
const lateBatch = 256

// lateHolds reports whether transactions on dialect d hold what they
// write when they commit (see txPool).
func lateHolds(d invalidation.Dialect) bool {
	return d == invalidation.Postgres || d == invalidation.SQLite
}

var _ gorm.TxCommitter = (*txPool)(nil)

func (t *txPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.inner.PrepareContext(ctx, query)
}

func (t *txPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.inner.ExecContext(ctx, query, args...)
}

func (t *txPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.inner.QueryContext(ctx, query, args...)
}

func (t *txPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.inner.QueryRowContext(ctx, query, args...)
}

// GetDBConn lets db.DB() work inside a transaction.
func (t *txPool) GetDBConn() (*sql.DB, error) { return t.root.GetDBConn() }

// Commit commits, then bumps every table written in the transaction and
// releases their holds. A commit that fails with a context or connection
// error may still have committed: the tables stay held for WriteLease.
func (t *txPool) Commit() error {
	// A context done before the commit: database/sql does not send it (it
	// returns ErrTxDone or the context's error) and rolls back.
	rolledBack := t.ctx != nil && t.ctx.Err() != nil
	if !rolledBack {
		if err := t.holdLate(); err != nil {
			// (refused, FailWrite: nothing of it may commit)
			rerr := t.committer.Rollback()
			t.end(false)
			return errors.Join(err, rerr)
		}
	}
	err := t.committer.Commit()
	t.end(!rolledBack && !errors.Is(err, sql.ErrTxDone) && outcomeUnknown(err))
	return err
}

// Rollback rolls back, then bumps and releases like Commit (cheap, and
// safe). It releases even when the transaction was already over
// (sql.ErrTxDone: database/sql rolled it back when its context was done).
func (t *txPool) Rollback() error {
	err := t.committer.Rollback()
	t.end(false)
	return err
}

// hold records tags as written by the transaction (see writeSet.add), to
// hold now or, late, when it commits. now: the statement may take effect
// before the transaction commits (transaction control sent as SQL, a write
// of everything such as a function that may commit on its own): it, and
// what was written before it, are held at once.
func (t *txPool) hold(ctx context.Context, tags []string, now bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now {
		t.now = true
		if err := t.holdLateLocked(ctx); err != nil {
			return err
		}
	}
	if !lateHolds(t.p.dialect) || t.now {
		return t.writes.add(ctx, t.p, tags)
	}
	if t.late == nil {
		t.late = make([]string, 0, len(tags)+8)
	}
	t.late = append(t.late, tags...)
	return nil
}

// holdLate places the holds of the tags recorded late, before the commit
// is sent; an error (Config.BumpFailure) means it must not commit.
func (t *txPool) holdLate() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx := context.Background()
	if t.ctx != nil {
		ctx = context.WithoutCancel(t.ctx) // (the commit is sent whatever the context: so is its bump)
	}
	return t.holdLateLocked(ctx)
}

// holdLateLocked is holdLate with t.mu held: each tag once, in batches of
// lateBatch tags.
func (t *txPool) holdLateLocked(ctx context.Context) error {
	slices.Sort(t.late)
	t.late = slices.Compact(t.late)
	for len(t.late) > 0 {
		n := min(len(t.late), lateBatch)
		if err := t.writes.add(ctx, t.p, t.late[:n]); err != nil {
			// (refused: the rest stays to hold, so that a later Commit
			// tries again, and rolls back if it cannot)
			return err
		}
		t.late = t.late[n:]
	}
	t.late = nil
	return nil
}

// controlSent is told of transaction control sent as SQL inside the
// transaction (a raw COMMIT): what it wrote is held at once, and so is
// what it writes from now on.
func (t *txPool) controlSent(ctx context.Context) error {
	return t.hold(ctx, nil, true)
}

// end ends the holds of the transaction's writes, once it is over (when
// its outcome is unknown, they stay held for WriteLease). A second call
// does nothing.
func (t *txPool) end(unknown bool) {
	t.mu.Lock()
	holds := t.writes.take()
	t.late = nil // (rolled back: nothing changed)
	t.mu.Unlock()
	for _, h := range holds {
		h.End(context.Background(), unknown)
	}
	if t.ddl.Load() {
		t.p.schemaChanged() // read the catalog again now that it is committed
	}
}

// ourTx finds the plugin's transaction under a statement's pool, looking
// through PrepareStmt's wrapper.
func ourTx(pool gorm.ConnPool) *txPool {
	switch t := pool.(type) {
	case *txPool:
		return t
	case *stmtTxPool:
		return t.txPool
	case *gorm.PreparedStmtTX:
		return ourTx(t.Tx)
	}
	return nil
}
