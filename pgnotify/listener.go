package pgnotify

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/jackc/pgx/v5/pgconn"
)

// Config configures [Listen]. A zero Config consists entirely of defaults.
type Config struct {
	// Tables are the watched tables, as SQL names them (articles,
	// shop.articles): the tables bumped when the listener (re)connects,
	// since notifications sent while it was not listening are lost. Empty
	// means every table carrying the gormcache_notify trigger for Channel,
	// read from the catalog at each connection. Notifications for tables
	// not listed are honoured all the same.
	Tables []string

	// Channel is the channel to LISTEN on; blank means [DefaultChannel].
	// It must be the channel the triggers were installed with.
	Channel string

	// ReconnectMin and ReconnectMax bound the wait before each attempt to
	// reconnect, which doubles from ReconnectMin up to ReconnectMax (with a
	// little jitter, never outside those bounds). Zero means 100ms and 10s.
	// The same backoff spaces the retries of a bump the store refused.
	ReconnectMin, ReconnectMax time.Duration

	// HealthInterval is how often the listener checks that its connection
	// still delivers notifications: when none arrived since the last check,
	// it notifies itself, and when that message has not come back by the
	// next check, it reconnects. A dead connection is so found within two
	// intervals, even one that fails silently (a half-open TCP connection,
	// a pooler that never passes notifications on). Zero means 15s;
	// negative disables the check.
	HealthInterval time.Duration

	// Logger receives losses, recoveries and failed bumps; nil means
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c, checked, with the defaults for its zero fields
// (the module's one convention for a Config).
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	c.setDefaults()
	return c, nil
}

func (c *Config) validate() error {
	if problem := core.BackoffProblem(c.ReconnectMin, c.ReconnectMax); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, problem)
	}
	for _, t := range c.Tables {
		if invalidation.TableName(t) == "" {
			return fmt.Errorf("%w: empty table name in Tables", ErrInvalidConfig)
		}
	}
	if c.Channel != "" {
		return checkChannel(c.Channel)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(10*time.Second, c.ReconnectMin)
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats describe a listener's health and work since [Listen].
type Stats struct {
	// Connected reports whether the listener is connected and listening.
	Connected bool
	// BackendPID is the process id of the listener's PostgreSQL backend
	// (pg_stat_activity.pid; application_name gormcache-pgnotify unless
	// the DSN names another), or of its last one.
	BackendPID uint32
	// LastNotification is when a table's notification last arrived (zero:
	// never).
	LastNotification time.Time
	// LastHeard is when the connection last proved alive: a notification,
	// the listener's own health check coming back, or a (re)connection.
	// Older than twice Config.HealthInterval means a dead listener.
	LastHeard time.Time
	// Notifications counts the tables' notifications received.
	Notifications uint64
	// Bumps counts the Invalidate calls that succeeded (one per burst of
	// notifications, plus one per (re)connection).
	Bumps uint64
	// Reconnects counts the connections re-established after a loss.
	Reconnects uint64
	// Lost counts the times the watched tables were bumped on reconnecting
	// because notifications may have been lost while the listener was down.
	Lost uint64
	// Errors counts lost connections, failed attempts to reconnect, health
	// checks that did not come back, and failed bumps (which are retried).
	Errors uint64
}

// Listener bumps the tables named by notifications. Create it with
// [Listen]; stop it with Close.
type Listener struct {
	cfg     Config
	inv     Invalidator
	pgcfg   *pgconn.Config
	log     *slog.Logger
	watched []string // Config.Tables, as tags
	current []string // the watched tables' tags of the current connection
	ping    string   // this listener's health-check payload

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Owned by the goroutine that uses the connection (Listen's caller,
	// then run).
	queue           []*pgconn.Notification
	pingOutstanding bool
	traffic         time.Time // when a table's notification last arrived

	mu      sync.Mutex
	pending map[string]struct{} // tags waiting for a bump
	kick    chan struct{}

	connected                                       atomic.Bool
	pid                                             atomic.Uint32
	lastNotification, lastHeard                     atomic.Int64 // unix nanoseconds
	notifications, bumps, reconnects, lost, nErrors atomic.Uint64
	closeOnce                                       sync.Once
}

// Timing constants.
const (
	connectTimeout = 10 * time.Second // one attempt to connect and LISTEN
	bumpTimeout    = 10 * time.Second // one Invalidate call
	closeTimeout   = 5 * time.Second  // the last bump, at Close
	// gatherWait bounds the time spent reading notifications already on
	// the wire before bumping them together.
	gatherWait = 2 * time.Millisecond
)

// pingPrefix starts health-check payloads. They are longer than any table
// name can be (63 bytes), so they never name a table.
const pingPrefix = "gormcache-pgnotify-ping:"

var errNoPing = errors.New("pgnotify: the listener's own health-check notification did not come back (is the DSN going through PgBouncer in transaction mode? LISTEN needs a direct connection)")

// Listen connects to dsn on a connection of its own (not a pool's: give it a
// direct DSN to PostgreSQL, not PgBouncer's in transaction mode), LISTENs on
// cfg.Channel and calls inv.Invalidate with the tables named by the
// notifications that arrive, those that arrive together in one call.
// Once listening it bumps the watched tables (see [Config.Tables]), and
// again after every reconnection.
//
// Listen fails if the DSN is invalid or the first connection fails; later
// losses are retried for ever, with backoff. The listener runs until ctx is
// done or Close is called.
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
		pgcfg.RuntimeParams["application_name"] = "gormcache-pgnotify"
	}
	var token [24]byte
	_, _ = crand.Read(token[:])
	l := &Listener{
		cfg:     cfg,
		inv:     inv,
		pgcfg:   pgcfg,
		log:     cfg.Logger,
		ping:    pingPrefix + hex.EncodeToString(token[:]),
		pending: map[string]struct{}{},
		kick:    make(chan struct{}, 1),
	}
	pgcfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { l.queue = append(l.queue, n) }
	for _, t := range cfg.Tables {
		l.watched = append(l.watched, invalidation.TableName(t))
	}

	conn, watched, err := l.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: listen: %w", err)
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.enqueue(watched)
	l.log.Info("pgnotify: listening", "channel", cfg.Channel, "pid", conn.PID(), "watched", len(watched))
	l.wg.Add(2)
	go l.run(conn)
	go l.bumpLoop()
	return l, nil
}

// Stats returns the listener's health and counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Connected:        l.connected.Load(),
		BackendPID:       l.pid.Load(),
		LastNotification: unixTime(l.lastNotification.Load()),
		LastHeard:        unixTime(l.lastHeard.Load()),
		Notifications:    l.notifications.Load(),
		Bumps:            l.bumps.Load(),
		Reconnects:       l.reconnects.Load(),
		Lost:             l.lost.Load(),
		Errors:           l.nErrors.Load(),
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Close stops the listener: it closes the connection, then makes one last
// attempt (bounded to a few seconds) at the bumps still pending. It is safe
// to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	return nil
}

// connect opens a connection, LISTENs, and returns the watched tables' tags
// (read from the catalog when Config.Tables is empty).
func (l *Listener) connect(ctx context.Context) (*pgconn.PgConn, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, l.pgcfg.Copy())
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*pgconn.PgConn, []string, error) {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
		return nil, nil, err
	}
	if err := conn.Exec(ctx, "LISTEN "+quoteIdent(l.cfg.Channel)).Close(); err != nil {
		return fail(fmt.Errorf("LISTEN: %w", err))
	}
	watched := l.watched
	if len(watched) == 0 {
		if watched, err = l.discover(ctx, conn); err != nil {
			return fail(fmt.Errorf("read the triggers: %w", err))
		}
	}
	l.current = watched
	l.pid.Store(conn.PID())
	l.heard()
	l.connected.Store(true)
	return conn, watched, nil
}

// discover returns the tags of the tables whose trigger notifies the channel.
func (l *Listener) discover(ctx context.Context, conn *pgconn.PgConn) ([]string, error) {
	rr := conn.ExecParams(ctx, `SELECT DISTINCT pg_catalog.lower(c.relname::text)
		FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
		WHERE t.tgname = $1 AND t.tgnargs = 1
		  AND t.tgargs = pg_catalog.convert_to($2, pg_catalog.current_setting('server_encoding')) || '\x00'::bytea`,
		[][]byte{[]byte(triggerName), []byte(l.cfg.Channel)}, nil, nil, nil)
	var tags []string
	for rr.NextRow() {
		tags = append(tags, payloadTag(string(rr.Values()[0])))
	}
	_, err := rr.Close()
	return tags, err
}

// run serves one connection after another until the listener stops.
func (l *Listener) run(conn *pgconn.PgConn) {
	defer l.wg.Done()
	for {
		err := l.serve(conn)
		l.connected.Store(false)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		if l.ctx.Err() != nil {
			return
		}
		l.nErrors.Add(1)
		l.log.Warn("pgnotify: listener connection lost; notifications sent until it is back are lost, so the watched tables will be bumped on reconnecting",
			"channel", l.cfg.Channel, "pid", conn.PID(), "err", err)
		if conn = l.reconnect(); conn == nil {
			return
		}
	}
}

// reconnect connects again, with backoff, and bumps the watched tables. It
// returns nil when the listener stops first.
func (l *Listener) reconnect() *pgconn.PgConn {
	down := time.Now()
	delay := l.cfg.ReconnectMin
	for attempt := 1; ; attempt++ {
		if !core.Sleep(l.ctx, l.backoff().Jitter(delay)) {
			return nil
		}
		conn, watched, err := l.connect(l.ctx)
		if err == nil {
			l.reconnects.Add(1)
			l.lost.Add(1)
			l.enqueue(watched)
			l.log.Info("pgnotify: listener reconnected; bumping the watched tables for the notifications lost meanwhile",
				"channel", l.cfg.Channel, "pid", conn.PID(), "attempts", attempt,
				"down", time.Since(down).Round(time.Millisecond), "tables", len(watched))
			return conn
		}
		if l.ctx.Err() != nil {
			return nil
		}
		l.nErrors.Add(1)
		delay = l.backoff().Next(delay)
		l.log.Warn("pgnotify: listener reconnect failed", "channel", l.cfg.Channel, "attempt", attempt,
			"retry_in", delay, "err", err)
	}
}

// serve reads notifications from conn and hands them to the bump loop
// until the connection fails or the listener stops.
func (l *Listener) serve(conn *pgconn.PgConn) error {
	l.pingOutstanding = false
	check := l.cfg.HealthInterval
	checked := time.Now()
	nextCheck := checked.Add(check)
	for {
		l.deliver()
		wait, cancel := l.ctx, context.CancelFunc(func() {})
		if check > 0 {
			wait, cancel = context.WithDeadline(l.ctx, nextCheck)
		}
		err := conn.WaitForNotification(wait)
		cancel()
		if err == nil {
			l.gather(conn)
			continue
		}
		if l.ctx.Err() != nil {
			return l.ctx.Err()
		}
		if conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Health check due. Anything heard since the last one proves the
		// connection delivers; otherwise notify ourselves, and give up on
		// the connection if the previous check has not come back.
		if l.pingOutstanding {
			return errNoPing
		}
		if !l.traffic.After(checked) {
			if err := l.sendPing(conn); err != nil {
				return fmt.Errorf("health check: %w", err)
			}
		}
		checked = time.Now()
		nextCheck = checked.Add(check)
	}
}

// gather reads the notifications already received behind the first one, so
// that a burst is bumped with one call. It waits for the network at most
// gatherWait in all.
func (l *Listener) gather(conn *pgconn.PgConn) {
	deadline := time.Now().Add(gatherWait)
	for conn.Frontend().ReadBufferLen() > 0 && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(l.ctx, deadline)
		err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			return // a real failure shows again at the next wait
		}
	}
}

func (l *Listener) sendPing(conn *pgconn.PgConn) error {
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HealthInterval)
	defer cancel()
	rr := conn.ExecParams(ctx, "SELECT pg_catalog.pg_notify($1, $2)",
		[][]byte{[]byte(l.cfg.Channel), []byte(l.ping)}, nil, nil, nil)
	if _, err := rr.Close(); err != nil {
		return err
	}
	l.pingOutstanding = true
	return nil
}

func (l *Listener) heard() { l.lastHeard.Store(time.Now().UnixNano()) }

// deliver turns the queued notifications into pending bumps.
func (l *Listener) deliver() {
	if len(l.queue) == 0 {
		return
	}
	l.heard()
	var tags []string
	for i, n := range l.queue {
		l.queue[i] = nil
		switch {
		case n.Payload == l.ping:
			l.pingOutstanding = false
		case strings.HasPrefix(n.Payload, pingPrefix):
			// another listener's health check
		case n.Payload == "":
			// a bare NOTIFY: everything watched
			tags = append(tags, l.current...)
			l.notifications.Add(1)
		default:
			tags = append(tags, payloadTag(n.Payload))
			l.notifications.Add(1)
		}
	}
	l.queue = l.queue[:0]
	if len(tags) > 0 {
		l.traffic = time.Now()
		l.lastNotification.Store(l.traffic.UnixNano())
		l.enqueue(tags)
	}
}

// payloadTag returns the tag of a table named by a trigger's payload (a
// table name, not an SQL name: it may hold dots or quotes).
func payloadTag(payload string) string { return invalidation.TableName(quoteIdent(payload)) }

// tableArg names the table of tag for Invalidate, which normalises its
// arguments with invalidation.TableName: quoted when it would change.
func tableArg(tag string) string {
	if invalidation.TableName(tag) == tag {
		return tag
	}
	return quoteIdent(tag)
}

func (l *Listener) enqueue(tags []string) {
	if len(tags) == 0 {
		return
	}
	l.mu.Lock()
	for _, t := range tags {
		l.pending[t] = struct{}{}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Listener) takePending() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil
	}
	tables := make([]string, 0, len(l.pending))
	for t := range l.pending {
		tables = append(tables, tableArg(t))
	}
	clear(l.pending)
	sort.Strings(tables)
	return tables
}

// bumpLoop calls Invalidate with every table pending, retrying with backoff
// when it fails, until the listener stops; then it tries once more.
func (l *Listener) bumpLoop() {
	defer l.wg.Done()
	retry := l.cfg.ReconnectMin
	for {
		select {
		case <-l.kick:
		case <-l.ctx.Done():
		}
		if l.ctx.Err() != nil {
			if tables := l.takePending(); len(tables) > 0 {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), closeTimeout)
				if err := l.inv.Invalidate(ctx, tables...); err != nil {
					l.nErrors.Add(1)
					l.log.Error("pgnotify: bump failed at close", "tables", tables, "err", err)
				} else {
					l.bumps.Add(1)
				}
				cancel()
			}
			return
		}
		for {
			tables := l.takePending()
			if len(tables) == 0 {
				retry = l.cfg.ReconnectMin
				break
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), bumpTimeout)
			err := l.inv.Invalidate(ctx, tables...)
			cancel()
			if err == nil {
				l.bumps.Add(1)
				retry = l.cfg.ReconnectMin
				continue
			}
			l.nErrors.Add(1)
			l.log.Error("pgnotify: bump failed; retrying", "tables", tables, "retry_in", retry, "err", err)
			l.enqueueArgs(tables)
			if !core.Sleep(l.ctx, retry) {
				break // the listener stops: the last attempt is made above
			}
			retry = l.backoff().Next(retry)
		}
	}
}

// enqueueArgs puts tables taken by takePending back.
func (l *Listener) enqueueArgs(tables []string) {
	tags := make([]string, len(tables))
	for i, t := range tables {
		tags[i] = invalidation.TableName(t)
	}
	l.enqueue(tags)
}

func (l *Listener) backoff() core.Backoff {
	return core.Backoff{Min: l.cfg.ReconnectMin, Max: l.cfg.ReconnectMax}
}
