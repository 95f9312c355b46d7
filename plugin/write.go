package plugin

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
)

// startWrite is called before a statement that may change data runs. It
// returns the function to call once the statement is over, with its error.
//
// Outside a transaction: bump the tables and hold them (reads of them go to
// the database and nothing is stored for them) until the statement is over,
// then bump again and release. Inside one of our transactions: hold the
// tables until the transaction ends (txPool.end). Inside a transaction we
// cannot see end (begun outside GORM's pool): bump now and hold for
// WriteLease, and again when the statement is over.
//
// A statement whose outcome is unknown (it ended with a context or
// connection error: the database may still commit it) keeps its tables
// held for WriteLease, and bumps them again then (see linger).
//
// When the first bump cannot be placed and Config.BumpFailure is FailWrite,
// it returns an error wrapping store.ErrUnavailable instead: the statement
// must not run.
//
// learn are the keyed columns whose values the statement will return
// (learnable; see execLearning).
func (s *stmtPool) startWrite(ctx context.Context, pl *plan, args []any, learn *learning) (func(error), error) {
	p := s.p
	tags := pl.writeTags
	if s.db != nil && len(tags) > 0 && tags[0] != store.GlobalTag {
		tags = withTables(tags, s.db.Statement.Table)
		if sch := s.db.Statement.Schema; sch != nil {
			tags = withTables(tags, sch.Table)
		}
	}
	if pl.temp != "" {
		p.shadow(pl.temp)
	}
	g := p.currentDeps()
	tags = g.writeTags(tags)                              // cascades, partitions, triggers
	tags = p.rowWriteTags(pl, args, tags, g, true, learn) // the rows it names, or each table's rows tag
	if tx := ourTx(s.inner); tx != nil {
		// (transaction control sent as SQL has made the transaction hold
		// at once already: stmtPool.controlSent)
		now := slices.Contains(tags, store.GlobalTag)
		if err := tx.hold(ctx, tags, now); err != nil {
			return nil, err
		}
		if pl.ddl {
			tx.ddl.Store(true)
			return func(error) { p.schemaChanged() }, nil
		}
		return func(error) {}, nil
	}
	if raw := s.rawScope(); raw.inTx() || raw != nil && opensTx(pl.tx) {
		if err := raw.hold(ctx, p, tags); err != nil {
			return nil, err
		}
		return func(error) {
			if pl.ddl {
				p.schemaChanged()
			}
		}, nil
	}
	if _, foreign := s.inner.(gorm.TxCommitter); foreign {
		end, err := p.inv.HoldForeign(ctx, tags)
		if err != nil {
			return nil, err
		}
		return func(error) {
			end()
			if pl.ddl {
				p.schemaChanged()
			}
		}, nil
	}
	h, err := p.inv.HoldWrite(ctx, tags)
	if err != nil {
		return nil, err
	}
	// A context already done when the statement starts: database/sql
	// returns its error without running the statement.
	done := ctx.Err() != nil
	return func(err error) {
		h.End(ctx, !done && outcomeUnknown(err))
		if pl.ddl {
			p.schemaChanged()
		}
	}, nil
}

// execLearning runs a write of plan pl in transaction tx with a RETURNING
// clause of cols added (learnable), and holds the row tags of the values
// it returns before the transaction can commit. When they cannot be read,
// it holds the columns' tags. When the hold is refused (FailWrite), the
// error is the statement's, so that the transaction rolls back; the
// refusal began an outage (nothing is served until the epoch bump lands),
// so a transaction committed anyway leaves nothing stale.
func (s *stmtPool) execLearning(ctx context.Context, tx *txPool, pl *plan, query string, args []any, learn *learning) (sql.Result, error) {
	rows, err := s.inner.QueryContext(ctx, returning(query, pl.shape.Tail, learn.cols), args...)
	if err != nil {
		return nil, err
	}
	table := pl.shape.Table
	tags, n, err := learned(table, learn, rows)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tags = wideTags(table, learn)
	} else {
		// (the columns learned for their row tags are never SET: an
		// UPDATE's member tags by the columns it SETs, a DELETE's member
		// tags)
		tags = append(tags, memberTags(*pl.shape, "", tags)...)
	}
	if len(tags) > 0 {
		if herr := tx.hold(ctx, tags, false); herr != nil {
			return nil, herr
		}
	}
	if err != nil {
		return nil, err
	}
	return learnedResult{n}, nil
}

// opensTx tells whether a statement leaves a transaction open ("BEGIN;
// UPDATE …" in one Exec): its writes are held until that ends.
func opensTx(c invalidation.TxControl) bool {
	return c == invalidation.TxBegin || c == invalidation.TxChain || c == invalidation.TxAutocommitOff
}

// outcomeUnknown tells whether a statement or a commit that ended with err
// may still have taken effect: the caller's context ended it (pgx stops
// reading at the deadline without cancelling the statement;
// go-sql-driver/mysql closes the connection) or the connection failed
// under it. An error the database returned is not such an error.
func outcomeUnknown(err error) bool {
	if err == nil || errors.Is(err, ErrWriteRefused) {
		return false
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"invalid connection", "bad connection", "conn closed", "connection reset", "broken pipe", "timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// A writeSet is the holds of a transaction's writes: a table is bumped
// and held the first time the transaction writes it, until it ends. Its
// owner locks it.
type writeSet struct {
	held  map[string]bool
	holds []*core.Hold
}

// add holds the tags not held yet. An error (Config.BumpFailure) means the
// write must not run; nothing is recorded then.
func (w *writeSet) add(ctx context.Context, p *Plugin, tags []string) error {
	var fresh []string
	for _, t := range tags {
		if !w.held[t] {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	h, err := p.inv.HoldWrite(ctx, fresh)
	if err != nil {
		return err
	}
	if w.held == nil {
		w.held = make(map[string]bool, len(fresh))
	}
	for _, t := range fresh {
		w.held[t] = true
	}
	w.holds = append(w.holds, h)
	return nil
}

// take returns the holds and empties the set (the transaction is over).
func (w *writeSet) take() []*core.Hold {
	holds := w.holds
	w.held, w.holds = nil, nil
	return holds
}
