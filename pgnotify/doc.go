// Package pgnotify makes writes that bypass the application — a psql session,
// a cron job, another service — invalidate the cache within milliseconds on
// PostgreSQL, through LISTEN/NOTIFY. Without it such writes are seen only when
// cached entries reach their TTL.
//
// Two halves:
//
//   - [InstallTriggers] adds, to each named table, a statement-level trigger
//     (AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE … FOR EACH STATEMENT)
//     that sends the table's name on the channel "gormcache" when the
//     writing transaction commits. [RemoveTriggers] takes it away. Both are
//     idempotent and touch only the tables they are given.
//   - [Listen] opens its own connection, LISTENs on the channel and bumps the
//     tables named in notifications through an [Invalidator]: a
//     *plugin.Plugin, or [StoreInvalidator] for a bare store.
//
// Usage:
//
//	cache := plugin.New(plugin.Config{Store: shared})
//	db.Use(cache)
//	if err := pgnotify.InstallTriggers(ctx, sqlDB, "articles", "products"); err != nil { … }
//	l, err := pgnotify.Listen(ctx, directDSN, cache, pgnotify.Config{
//		Tables: []string{"articles", "products"},
//	})
//	if err != nil { … }
//	defer l.Close()
//
// # Timing
//
// PostgreSQL delivers a notification when the transaction that sent it
// commits, which is exactly when a bump must happen. The listener bumps
// notifications that arrive together with one Invalidate call, and never
// waits more than a couple of milliseconds to gather them. On loopback the
// delay from commit to bump is well under a millisecond at the median (see
// TestCommitToBumpDelay and BenchmarkCommitToBump). Until the bump has
// landed, a read may still be served the old entry: the guarantee for
// writers outside the application is "bounded by the NOTIFY delay where the
// listener runs, by the TTL elsewhere".
//
// # Lost notifications
//
// Notifications sent while the listener's connection is down are lost
// (PostgreSQL keeps them only for sessions that are listening). So when it
// reconnects the listener LISTENs again and then bumps every watched table
// ([Config.Tables]; when empty, every table that carries the trigger for
// its channel), and only then resumes. [Listen] does the same when it first
// connects, since writes may have happened while no listener ran.
// Reconnects back off from [Config.ReconnectMin] to [Config.ReconnectMax];
// each loss and recovery is logged and counted in [Stats]. A bump that the
// store refuses is retried with the same backoff: it is not dropped.
//
// Several application instances may each run a listener on the same
// channel: every one of them bumps, which costs at most one extra miss.
//
// # The application's own writes
//
// Writes made through the plugin bump their tables already. To spare them
// the notification (and its cost, below), open the application's connection
// with the session setting [SkipSetting] on; the trigger checks it:
//
//	dsn := "host=… dbname=app options='-c gormcache.skip_notify=on'"
//	// or, with a pgx config: cfg.RuntimeParams = pgnotify.AppRuntimeParams()
//	// or, for one transaction: SET LOCAL gormcache.skip_notify = on
//
// # Cost
//
// PostgreSQL serialises the commits of transactions that sent a notification
// (one lock, cluster-wide), so a watched table's write throughput under
// concurrency falls. BenchmarkWriteThroughput and TestWriteThroughput measure
// no trigger, a notifying trigger, and a trigger skipped by [SkipSetting];
// the figures of this machine are in README.
//
// # Health, and PgBouncer
//
// LISTEN needs a session of its own. Behind PgBouncer in transaction (or
// statement) pooling mode it silently hears nothing, so give [Listen] a
// direct DSN to PostgreSQL, not the pooler's. The listener notifies itself
// every [Config.HealthInterval] and reconnects when its own message does
// not come back, which also catches a pooler in the way and half-open TCP
// connections; [Listener.Stats] tells whether it is connected and when it
// last heard anything, so that an operator can see a dead listener.
//
// # MariaDB and MySQL
//
// They have no LISTEN/NOTIFY. There, writes made outside the application
// are seen when cached entries reach their TTL (a binlog reader could do
// what this package does; none is provided).
package pgnotify
