package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

const slogInfo = slog.LevelInfo

// Invalidator makes the cached results that read changed rows stale.
// *plugin.Plugin implements it (see [plugin.Plugin.InvalidateRows]: it
// chooses the row tags from its catalog, and follows views and foreign
// keys). InvalidateRows must be safe for concurrent use, and return an
// error when the bump did not land (the listener retries it before it
// confirms the commits).
type Invalidator interface {
	InvalidateRows(ctx context.Context, changes ...plugin.Change) error
}

// InvalidatorFunc adapts a function to [Invalidator].
type InvalidatorFunc func(ctx context.Context, changes ...plugin.Change) error

// InvalidateRows calls f.
func (f InvalidatorFunc) InvalidateRows(ctx context.Context, changes ...plugin.Change) error {
	return f(ctx, changes...)
}

var (
	_ Invalidator = InvalidatorFunc(nil)
	_ Invalidator = (*plugin.Plugin)(nil)
)

// Stats describe a listener's health and work since [Listen].
type Stats struct {
	// Connected reports whether the listener is streaming.
	Connected bool
	// BackendPID is the process id of the listener's walsender
	// (pg_stat_replication.pid; application_name gormcache-pgrepl unless
	// the DSN names another), or of its last one.
	BackendPID uint32
	// Position is the WAL position up to which every commit has been
	// bumped: what the listener confirms to the server (at most
	// Config.StatusInterval later), and where a restarted one resumes.
	Position pglogrepl.LSN
	// ServerWALEnd is the server's WAL position, as it last said.
	ServerWALEnd pglogrepl.LSN
	// LagBytes is ServerWALEnd - Position: the WAL the slot holds for
	// the listener (an idle listener's is the WAL written since the
	// server last reported its position, usually a few kilobytes).
	LagBytes uint64
	// Lag is how long ago the oldest commit received but not yet bumped
	// committed (by the server's clock); zero when every commit received
	// has been bumped.
	Lag time.Duration
	// LastCommit is when the last commit bumped committed (zero: none).
	LastCommit time.Time
	// Commits counts the transactions received (with changes to
	// published tables), and Rows the row changes in them.
	Commits, Rows uint64
	// Bumps counts the InvalidateRows calls that succeeded (one for all
	// the commits that arrived while the previous one ran, and, when
	// commits come in quick succession, for those that follow the first
	// within a millisecond).
	Bumps uint64
	// Reconnects counts the streams re-established after a loss.
	Reconnects uint64
	// Resyncs counts the times every watched table was bumped because
	// the stream could not go on from where the listener stopped (a new
	// or invalidated slot), or a transaction could not be read.
	Resyncs uint64
	// Malformed counts the messages that could not be decoded (see
	// ErrMalformed).
	Malformed uint64
	// Errors counts lost connections, failed attempts to reconnect,
	// health checks that were not answered, and failed bumps (which are
	// retried).
	Errors uint64
}

// Listener streams a publication's changes from a replication slot and
// bumps the rows they change. Create it with [Listen]; stop it with Close.
type Listener struct {
	cfg     Config
	inv     Invalidator
	pgcfg   *pgconn.Config // the ordinary connection's (setup)
	replcfg *pgconn.Config // the replication connection's
	log     *core.Log

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	bumpDone chan struct{}

	// owned by the goroutine reading the stream
	dec         decoder
	watched     []string
	lastArrival time.Time // when the last commit was received

	window time.Duration // see batchWindow

	mu      sync.Mutex
	pending batch // received, not yet bumped
	flight  time.Time
	kick    chan struct{}

	connected                                             atomic.Bool
	pid                                                   atomic.Uint32
	bumped, serverEnd                                     atomic.Uint64 // LSNs
	lastCommit, lastHeard                                 atomic.Int64  // unix nanoseconds
	commits, rows, bumps, reconnects, resyncs, nMalformed atomic.Uint64
	nErrors                                               atomic.Uint64
	closeOnce                                             sync.Once
	closeErr                                              error
	streams                                               atomic.Uint64 // streams started
	snapshots                                             atomic.Uint64 // taken by visible (for the measurements)

	// the bump loop's, for visible
	side     *pgconn.PgConn
	last     snapshot  // the side connection's last snapshot
	lastOpen uint64    // l.streams when it was asked for (0: none)
	lastAt   time.Time // when
}

// batch is what a bump covers: the changes of the commits up to end.
type batch struct {
	changes map[string]*plugin.Change // by table tag
	end     pglogrepl.LSN             // every commit ending at or before it is in the batch, or was bumped
	oldest  time.Time                 // commit time of the oldest commit in it (zero: none)
	latest  time.Time                 // of the newest
	xids    []uint32                  // its transactions, until seen visible (see visible)
	first   time.Time                 // when its first commit was received (zero: none)
	busy    bool                      // that commit came soon after the one before (see batchWindow)
}

func (b *batch) empty() bool { return len(b.changes) == 0 }

// merge adds c's rows to b (a table's rows beyond maxRows: all of them).
func (b *batch) merge(c *plugin.Change) { b.mergeTag(invalidation.TableName(c.Table), c) }

// mergeTag is merge, given the tag of c's table.
func (b *batch) mergeTag(tag string, c *plugin.Change) {
	if b.changes == nil {
		b.changes = map[string]*plugin.Change{}
	}
	have := b.changes[tag]
	switch {
	case have == nil:
		cp := *c
		cp.Rows = slices.Clone(c.Rows)
		b.changes[tag] = &cp
	case have.AllRows:
	case c.AllRows || len(have.Rows)+len(c.Rows) > maxRows:
		have.AllRows, have.Rows = true, nil
	default:
		have.Rows = append(have.Rows, c.Rows...)
	}
}

// absorb merges o into b; o is not to be used after (b may take over its
// changes).
func (b *batch) absorb(o *batch) {
	if b.changes == nil {
		b.changes, o.changes = o.changes, nil
	}
	for tag, c := range o.changes {
		b.mergeTag(tag, c)
	}
	b.end = max(b.end, o.end)
	b.xids = append(b.xids, o.xids...)
	if !o.oldest.IsZero() && (b.oldest.IsZero() || o.oldest.Before(b.oldest)) {
		b.oldest = o.oldest
	}
	if o.latest.After(b.latest) {
		b.latest = o.latest
	}
	if !o.first.IsZero() && (b.first.IsZero() || o.first.Before(b.first)) {
		b.first = o.first
	}
	b.busy = b.busy || o.busy
}

// list returns the batch's changes in table order.
func (b *batch) list() []plugin.Change {
	tags := make([]string, 0, len(b.changes))
	for t := range b.changes {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	out := make([]plugin.Change, len(tags))
	for i, t := range tags {
		out[i] = *b.changes[t]
	}
	return out
}

// Timing constants.
const (
	connectTimeout = 30 * time.Second // one attempt to set up and start streaming
	bumpTimeout    = 10 * time.Second // one InvalidateRows call
	closeTimeout   = 5 * time.Second  // the last bump, at Close

	// batchWindow: when a commit is received within half of it after the
	// one before (commits are coming fast), its bump waits until the
	// window has passed since it was received, so that the commits that
	// follow share its visibility check and its bump. At thousands of
	// commits a second that is a few commits a bump instead of one; a lone
	// commit is bumped at once.
	batchWindow = time.Millisecond
)

var errNoReply = errors.New("pgrepl: the server did not answer the listener's health check")

// Listen makes sure the publication (with cfg.Tables) and the slot exist,
// starts streaming from the slot on a replication connection of its own
// (give it a direct DSN to PostgreSQL, not PgBouncer's: replication needs
// its own session, and the REPLICATION attribute or a superuser), and
// calls inv.InvalidateRows with the changes of every commit; those that
// arrive while a call runs go together in the next. A commit is confirmed
// to the server only once its bump has landed.
//
// When the stream does not go on from where a listener stopped (the slot
// is new, or was invalidated and made again), it first bumps every
// watched table (see [Config.Tables]).
//
// Listen fails if cfg or the DSN is invalid, or the first setup fails
// (errors wrap ErrInvalidConfig, ErrNotTable, ErrNoReplicaIdentity,
// ErrServer, ErrSlotActive, or the server's); later losses are retried for
// ever, with backoff. The listener runs until ctx is done or Close is
// called.
func Listen(ctx context.Context, dsn string, inv Invalidator, cfg Config) (*Listener, error) {
	if inv == nil {
		return nil, fmt.Errorf("%w: nil Invalidator", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pgcfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: dsn: %v", ErrInvalidConfig, err)
	}
	if _, ok := pgcfg.RuntimeParams["application_name"]; !ok {
		pgcfg.RuntimeParams["application_name"] = "gormcache-pgrepl"
	}
	replcfg := pgcfg.Copy()
	replcfg.RuntimeParams["replication"] = "database"
	l := &Listener{
		cfg: cfg, inv: inv, pgcfg: pgcfg, replcfg: replcfg, log: core.NewLog(cfg.Logger),
		kick: make(chan struct{}, 1), bumpDone: make(chan struct{}), window: batchWindow,
	}
	conn, err := l.connect(ctx)
	// A slot still held by the walsender of a listener that just stopped
	// is let go within moments (or at the server's wal_sender_timeout, when
	// that listener's connection died silently).
	for wait, until := l.cfg.ReconnectMin, time.Now().Add(connectTimeout); errors.Is(err, ErrSlotActive) && time.Now().Before(until); wait = min(2*wait, l.cfg.ReconnectMax) {
		if !core.Sleep(ctx, wait) {
			break
		}
		conn, err = l.connect(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("pgrepl: listen: %w", err)
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.wg.Add(2)
	go l.run(conn)
	go l.bumpLoop()
	return l, nil
}

// Stats returns the listener's health and counters.
func (l *Listener) Stats() Stats {
	pos, end := pglogrepl.LSN(l.bumped.Load()), pglogrepl.LSN(l.serverEnd.Load())
	s := Stats{
		Connected:    l.connected.Load(),
		BackendPID:   l.pid.Load(),
		Position:     pos,
		ServerWALEnd: end,
		LastCommit:   unixTime(l.lastCommit.Load()),
		Commits:      l.commits.Load(),
		Rows:         l.rows.Load(),
		Bumps:        l.bumps.Load(),
		Reconnects:   l.reconnects.Load(),
		Resyncs:      l.resyncs.Load(),
		Malformed:    l.nMalformed.Load(),
		Errors:       l.nErrors.Load(),
	}
	if end > pos {
		s.LagBytes = uint64(end - pos)
	}
	l.mu.Lock()
	oldest := l.flight
	if oldest.IsZero() || !l.pending.oldest.IsZero() && l.pending.oldest.Before(oldest) {
		oldest = l.pending.oldest
	}
	l.mu.Unlock()
	if !oldest.IsZero() {
		s.Lag = max(time.Since(oldest), 0)
	}
	return s
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Close stops the listener: it makes one last attempt (bounded to a few
// seconds) at the bumps still pending, confirms what has been bumped, and
// closes the connection. Commits not bumped are streamed again to the next
// listener on the slot. It is safe to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	return l.closeErr
}

func (l *Listener) position() pglogrepl.LSN { return pglogrepl.LSN(l.bumped.Load()) }

// connect sets up the publication and the slot, starts streaming, and
// queues the resynchronisation bump when the stream does not go on from
// where the listener stopped.
func (l *Listener) connect(ctx context.Context) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	setup, err := pgconn.ConnectConfig(ctx, l.pgcfg.Copy())
	if err != nil {
		return nil, err
	}
	res, err := l.prepare(ctx, setup)
	closeQuietly(setup)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, l.replcfg.Copy())
	if err != nil {
		return nil, err
	}
	// (the replication grammar takes no E'' strings; the name is simple)
	err = pglogrepl.StartReplication(ctx, conn, l.cfg.Slot, res.start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + l.cfg.Publication + "'"},
	})
	if err != nil {
		closeQuietly(conn)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return nil, fmt.Errorf("%w: %v", ErrSlotActive, err)
		}
		return nil, fmt.Errorf("start replication: %w", err)
	}
	l.streams.Add(1)
	l.watched = res.watched
	l.dec = decoder{rels: map[uint32]*relation{}}
	switch {
	case res.gap != "":
		l.resyncs.Add(1)
		l.log.Always(slog.LevelWarn, "pgrepl: the stream does not go on from where the listener stopped; bumping every watched table", "why", res.gap, "tables", len(res.watched))
		l.enqueueAll(res.watched)
	case len(res.added) > 0:
		l.enqueueAll(res.added)
	}
	l.pid.Store(conn.PID())
	l.heard()
	l.connected.Store(true)
	return conn, nil
}

func closeQuietly(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// run serves one stream after another until the listener stops.
func (l *Listener) run(conn *pgconn.PgConn) {
	defer l.wg.Done()
	for {
		err := l.serve(conn)
		l.connected.Store(false)
		if l.ctx.Err() != nil {
			// The last bump, then confirm it before leaving.
			<-l.bumpDone
			_ = l.sendStatus(conn, false)
			closeQuietly(conn)
			return
		}
		closeQuietly(conn)
		l.nErrors.Add(1)
		l.log.Always(slog.LevelWarn, "pgrepl: replication stream lost; it resumes from the last confirmed position",
			"slot", l.cfg.Slot, "pid", conn.PID(), "position", l.position(), "err", err)
		if conn = l.reconnect(); conn == nil {
			<-l.bumpDone
			return
		}
	}
}

// reconnect connects again, with backoff. It returns nil when the
// listener stops first.
func (l *Listener) reconnect() *pgconn.PgConn {
	down := time.Now()
	delay := l.cfg.ReconnectMin
	for attempt := 1; ; attempt++ {
		if !core.Sleep(l.ctx, l.backoff().Jitter(delay)) {
			return nil
		}
		conn, err := l.connect(l.ctx)
		if err == nil {
			l.reconnects.Add(1)
			l.log.Always(slogInfo, "pgrepl: replication stream back", "slot", l.cfg.Slot, "pid", conn.PID(),
				"attempts", attempt, "down", time.Since(down).Round(time.Millisecond), "position", l.position())
			return conn
		}
		if l.ctx.Err() != nil {
			return nil
		}
		l.nErrors.Add(1)
		delay = l.backoff().Next(delay)
		l.log.Limited(slog.LevelWarn, "pgrepl: reconnect failed", "slot", l.cfg.Slot, "attempt", attempt, "retry_in", delay, "err", err)
	}
}

func (l *Listener) heard() { l.lastHeard.Store(time.Now().UnixNano()) }

// serve reads the stream until it fails or the listener stops, sending
// the bumped position every StatusInterval and when the server asks.
func (l *Listener) serve(conn *pgconn.PgConn) error {
	now := time.Now()
	nextStatus := now.Add(l.cfg.StatusInterval)
	check := l.cfg.HealthInterval
	nextCheck := now.Add(check)
	checked, asked := now, false
	reads := watchReads(l.ctx, conn.Conn())
	defer reads.release()
	for {
		deadline := nextStatus
		if check > 0 && nextCheck.Before(deadline) {
			deadline = nextCheck
		}
		reads.until(deadline)
		msg, err := conn.ReceiveMessage(context.Background())
		reply := false
		if err != nil {
			if l.ctx.Err() != nil {
				return l.ctx.Err()
			}
			if !pgconn.Timeout(err) || conn.IsClosed() {
				return err
			}
		} else {
			asked = false
			if reply, err = l.receive(msg); err != nil {
				return err
			}
		}
		now = time.Now()
		if reply || !now.Before(nextStatus) {
			if err := l.sendStatus(conn, false); err != nil {
				return fmt.Errorf("standby status: %w", err)
			}
			nextStatus = now.Add(l.cfg.StatusInterval)
		}
		if check > 0 && !now.Before(nextCheck) {
			if asked {
				return errNoReply
			}
			if unixTime(l.lastHeard.Load()).Before(checked) {
				if err := l.sendStatus(conn, true); err != nil {
					return fmt.Errorf("health check: %w", err)
				}
				asked = true
			}
			checked, nextCheck = now, now.Add(check)
		}
	}
}

// readDeadline bounds the stream's reads by the connection's read
// deadline, moved only when the next status or health check is due and
// set to now when the listener stops. (A context for each message instead
// costs a timer and a watch a message: as much CPU as decoding it.)
type readDeadline struct {
	conn    net.Conn
	at      time.Time // the reading goroutine's
	mu      sync.Mutex
	stopped bool
	release func() bool
}

// watchReads ends the reads on conn once ctx is done.
func watchReads(ctx context.Context, conn net.Conn) *readDeadline {
	rd := &readDeadline{conn: conn}
	rd.release = context.AfterFunc(ctx, func() {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		rd.stopped = true
		_ = conn.SetReadDeadline(time.Now())
	})
	return rd
}

// until sets the deadline of the reads (at a stop: left as it is).
func (rd *readDeadline) until(at time.Time) {
	if at.Equal(rd.at) {
		return
	}
	rd.at = at
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.stopped {
		_ = rd.conn.SetReadDeadline(at)
	}
}

// sendStatus tells the server the bumped position (and asks for a reply).
func (l *Listener) sendStatus(conn *pgconn.PgConn, ask bool) error {
	pos := l.position()
	if pos == 0 {
		return nil // (the server keeps the slot's position)
	}
	return pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos, ReplyRequested: ask,
	})
}

// receive handles one message from the server; reply reports that the
// server asked for a status update now.
func (l *Listener) receive(msg pgproto3.BackendMessage) (reply bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		l.heard()
		if len(msg.Data) == 0 {
			return false, l.malformed(fmt.Errorf("%w: empty CopyData", ErrMalformed))
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return false, l.malformed(fmt.Errorf("%w: keepalive: %v", ErrMalformed, err))
			}
			l.sawServerEnd(ka.ServerWALEnd)
			// Every commit before this position has been received: once
			// they are bumped, it may be confirmed.
			l.advance(ka.ServerWALEnd)
			return ka.ReplyRequested, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return false, l.malformed(fmt.Errorf("%w: XLogData: %v", ErrMalformed, err))
			}
			l.sawServerEnd(xld.ServerWALEnd)
			d, err := l.dec.handle(xld.WALData)
			if err != nil {
				_ = l.malformed(err)
			}
			if d.commit {
				l.commit(d)
			}
		}
		return false, nil
	case *pgproto3.ErrorResponse:
		return false, pgconn.ErrorResponseToPgError(msg)
	case *pgproto3.CopyDone:
		return false, errors.New("pgrepl: the server ended the stream")
	}
	return false, nil
}

// malformed counts and logs a message that could not be decoded, and
// queues a bump of every watched table, before any position past the
// message can be confirmed (it may have been a commit). It returns nil:
// the stream goes on.
func (l *Listener) malformed(err error) error {
	l.nMalformed.Add(1)
	l.resyncs.Add(1)
	l.log.Limited(slog.LevelError, "pgrepl: could not decode a replication message; bumping every watched table", "err", err)
	l.enqueueAll(l.watched)
	return nil
}

func (l *Listener) sawServerEnd(end pglogrepl.LSN) {
	for {
		cur := l.serverEnd.Load()
		if uint64(end) <= cur || l.serverEnd.CompareAndSwap(cur, uint64(end)) {
			return
		}
	}
}

// commit queues a transaction's changes for the bump loop.
func (l *Listener) commit(d decoded) {
	l.commits.Add(1)
	l.rows.Add(uint64(d.tx.rows))
	b := batch{changes: d.tx.tables} // (the transaction's, done with)
	if d.tx.unclear {
		l.resyncs.Add(1)
		for _, t := range l.watched {
			b.merge(&plugin.Change{Table: t, AllRows: true})
		}
	}
	b.end, b.oldest, b.latest = d.end, d.commitTime, d.commitTime
	now := time.Now()
	b.first, b.busy = now, now.Sub(l.lastArrival) < l.window/2
	l.lastArrival = now
	if d.tx.xid != 0 {
		b.xids = []uint32{d.tx.xid}
	} else {
		// No Begin, so no xid whose visibility to wait for: everything
		// watched again once it is surely visible.
		w := l.watched
		time.AfterFunc(time.Second, func() { l.enqueueAll(w) })
	}
	l.mu.Lock()
	l.pending.absorb(&b)
	l.mu.Unlock()
	l.wake()
}

// advance lets the position reach end once what is pending is bumped.
func (l *Listener) advance(end pglogrepl.LSN) {
	l.mu.Lock()
	l.pending.end = max(l.pending.end, end)
	l.mu.Unlock()
	l.wake()
}

// enqueueAll queues a bump of every row of tables.
func (l *Listener) enqueueAll(tables []string) {
	l.mu.Lock()
	for _, t := range tables {
		l.pending.merge(&plugin.Change{Table: t, AllRows: true})
	}
	l.mu.Unlock()
	l.wake()
}

func (l *Listener) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// linger waits, when the pending batch's commits are coming fast (one of
// them was received soon after the commit before it), until the batch
// window has passed since its first was received (or the listener stops),
// so that the commits that follow join it.
func (l *Listener) linger() {
	l.mu.Lock()
	var wait time.Duration
	if l.pending.busy {
		wait = l.window - time.Since(l.pending.first)
	}
	l.mu.Unlock()
	if wait > 0 {
		core.Sleep(l.ctx, wait)
	}
}

// take hands the pending batch to the bump loop.
func (l *Listener) take() batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.pending
	l.pending = batch{}
	l.flight = b.oldest
	return b
}

// putBack returns a batch whose bump failed.
func (l *Listener) putBack(b *batch) {
	l.mu.Lock()
	b.absorb(&l.pending)
	l.pending = *b
	l.flight = time.Time{}
	l.mu.Unlock()
}

// bumpLoop bumps what is pending, retrying with backoff when the store
// refuses, and advances the position past what has landed, until the
// listener stops; then it tries once more.
func (l *Listener) bumpLoop() {
	defer l.wg.Done()
	defer close(l.bumpDone)
	defer func() {
		if l.side != nil {
			closeQuietly(l.side)
		}
	}()
	retry := l.cfg.ReconnectMin
	for {
		select {
		case <-l.kick:
		case <-l.ctx.Done():
		}
		if l.ctx.Err() != nil {
			b := l.take()
			if err := l.bump(&b, closeTimeout); err != nil {
				l.nErrors.Add(1)
				l.closeErr = fmt.Errorf("pgrepl: the last bump failed at close (the next listener on the slot streams those commits again): %w", err)
				l.log.Always(slog.LevelError, "pgrepl: bump failed at close; the commits stay unconfirmed", "err", err)
			}
			return
		}
		for {
			l.linger()
			b := l.take()
			if b.empty() && b.end <= l.position() {
				l.mu.Lock()
				l.flight = time.Time{}
				l.mu.Unlock()
				retry = l.cfg.ReconnectMin
				break
			}
			if err := l.bump(&b, bumpTimeout); err != nil {
				l.nErrors.Add(1)
				l.log.Limited(slog.LevelError, "pgrepl: bump failed; retrying before confirming", "tables", len(b.changes), "retry_in", retry, "err", err)
				l.putBack(&b)
				if !core.Sleep(l.ctx, retry) {
					break // the listener stops: the last attempt is made above
				}
				retry = l.backoff().Next(retry)
				continue
			}
			retry = l.cfg.ReconnectMin
		}
	}
}

// bump invalidates a batch's changes, once its transactions are visible,
// and moves the position to its end.
func (l *Listener) bump(b *batch, timeout time.Duration) error {
	if !b.empty() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), timeout)
		defer cancel()
		if err := l.visible(ctx, b); err != nil {
			return err
		}
		if err := l.inv.InvalidateRows(ctx, b.list()...); err != nil {
			return err
		}
		l.bumps.Add(1)
	}
	for {
		cur := l.bumped.Load()
		if uint64(b.end) <= cur || l.bumped.CompareAndSwap(cur, uint64(b.end)) {
			break
		}
	}
	if !b.latest.IsZero() {
		l.lastCommit.Store(b.latest.UnixNano())
	}
	l.mu.Lock()
	l.flight = time.Time{}
	l.mu.Unlock()
	return nil
}

// visible waits until the transactions of b are visible to new snapshots.
//
// The walsender may decode a commit as soon as its record is flushed,
// before the committing backend has left the proc array: for a moment
// other sessions still see the rows as they were. A read that missed in
// that moment, after the bump, would store the old rows under the new
// versions. So the bump waits for every transaction of the batch to be
// visible in a snapshot, taken on an ordinary connection of the bump
// loop's own.
//
// A snapshot that shows a committed transaction completed proves it
// visible to every later one, so the last snapshot is looked at first
// (under load, the walsender's lag often lets it settle the batch). It
// counts when it was asked for after the stream that brought the batch
// started, and less than a second ago. (A snapshot from before a crash
// could call an xid of after it completed: one that the server had given
// to a transaction whose WAL the crash lost, and gave again after it. And
// the 32-bit xids are placed within 2^31 of the snapshot's.)
func (l *Listener) visible(ctx context.Context, b *batch) error {
	if len(b.xids) > 0 && l.lastOpen != 0 && l.lastOpen == l.streams.Load() && time.Since(l.lastAt) < time.Second {
		b.xids = slices.DeleteFunc(b.xids, l.last.visible)
	}
	for pause := 100 * time.Microsecond; len(b.xids) > 0; pause = min(2*pause, 10*time.Millisecond) {
		if l.side == nil || l.side.IsClosed() {
			conn, err := pgconn.ConnectConfig(ctx, l.pgcfg.Copy())
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "57P03" && strings.Contains(pgErr.Message, "shutting down") {
				// A shutdown has ended every session but the walsenders,
				// which wait for the listener to confirm the WAL before
				// they let the server stop: the transactions are
				// visible, and no read can run before the restart.
				b.xids = nil
				return nil
			}
			if err != nil {
				return fmt.Errorf("visibility check: connect: %w", err)
			}
			// (prepared: half the backend's CPU of a parsed and planned query)
			if _, err := conn.Prepare(ctx, snapshotStmt, `SELECT pg_catalog.pg_current_snapshot()::text`, nil); err != nil {
				closeQuietly(conn)
				return fmt.Errorf("visibility check: prepare: %w", err)
			}
			l.side = conn
		}
		open, at := l.streams.Load(), time.Now()
		text, err := l.currentSnapshot(ctx)
		if err != nil {
			closeQuietly(l.side)
			l.side = nil
			return fmt.Errorf("visibility check: %w", err)
		}
		snap, err := parseSnapshot(text)
		if err != nil {
			return err
		}
		l.snapshots.Add(1)
		l.last, l.lastOpen, l.lastAt = snap, open, at
		b.xids = slices.DeleteFunc(b.xids, snap.visible)
		if len(b.xids) == 0 {
			return nil
		}
		if !core.Sleep(ctx, pause) {
			return ctx.Err()
		}
	}
	return nil
}

// snapshotStmt is the side connection's prepared pg_current_snapshot().
const snapshotStmt = "gormcache_pgrepl_snapshot"

// currentSnapshot returns pg_current_snapshot() as text, from the side
// connection.
func (l *Listener) currentSnapshot(ctx context.Context) (string, error) {
	rr := l.side.ExecPrepared(ctx, snapshotStmt, nil, nil, nil)
	var text string
	for rr.NextRow() {
		text = string(rr.Values()[0])
	}
	_, err := rr.Close()
	return text, err
}

// snapshot is a pg_snapshot: xmin:xmax:xip,….
type snapshot struct {
	xmin, xmax uint64
	xip        []uint64
}

func parseSnapshot(s string) (snapshot, error) {
	var snap snapshot
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return snap, fmt.Errorf("%w: snapshot %q", ErrServer, s)
	}
	var err1, err2 error
	snap.xmin, err1 = strconv.ParseUint(parts[0], 10, 64)
	snap.xmax, err2 = strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return snap, fmt.Errorf("%w: snapshot %q", ErrServer, s)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			n, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return snap, fmt.Errorf("%w: snapshot %q", ErrServer, s)
			}
			snap.xip = append(snap.xip, n)
		}
	}
	return snap, nil
}

// visible reports whether the committed transaction xid (32 bits, as the
// stream gives it) is visible in the snapshot: it completed before xmax
// and is not among those in progress. A decoded transaction is recent
// (PostgreSQL keeps every xid in use within 2^31 of the newest), so xid is
// placed within 2^31 of xmax.
func (s snapshot) visible(xid uint32) bool {
	d := int32(xid - uint32(s.xmax))
	if d >= 0 || uint64(-int64(d)) > s.xmax {
		return false // not completed when the snapshot was taken
	}
	full := s.xmax - uint64(-int64(d))
	return full < s.xmin || !slices.Contains(s.xip, full)
}

func (l *Listener) backoff() core.Backoff {
	return core.Backoff{Min: l.cfg.ReconnectMin, Max: l.cfg.ReconnectMax}
}
