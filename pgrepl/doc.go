// Package pgrepl makes every committed change to PostgreSQL tables — made
// by the application, psql, a cron job, another service, a trigger, a
// cascade — invalidate the cache within milliseconds, by reading the
// write-ahead log through logical replication (the pgoutput plugin), with
// nothing on the write path: no trigger, no setting, no extra work in the
// writing transaction. Package pgnotify does the same with triggers and
// LISTEN/NOTIFY; README compares the two.
//
// Usage:
//
//	cache := plugin.New(plugin.Config{Store: shared})
//	db.Use(cache)
//	l, err := pgrepl.Listen(ctx, directDSN, cache, pgrepl.Config{
//		Tables: []string{"articles", "products"},
//	})
//	if err != nil { … }
//	defer l.Close()
//
// [Listen] creates the publication ([Config.Publication], with
// [Config.Tables]) and the replication slot ([Config.Slot]) when they are
// missing, and streams from the slot on a connection of its own. At each
// commit it calls [plugin.Plugin.InvalidateRows] with the rows the commit
// changed: the plugin bumps the tables (and what depends on them: views,
// foreign keys, partitions) and the row tags of the keys the rows had and
// have, so that cached results of other rows stay. The DSN's user needs the
// REPLICATION attribute (or to be a superuser), CREATE on the database for
// the publication, and ownership of the tables it adds; the server needs
// wal_level = logical.
//
// # What the stream tells
//
// An INSERT gives its rows' values; an UPDATE its new values and, under
// the default REPLICA IDENTITY, the old values of the primary key only
// (when it changed); a DELETE the primary key. So a row moving from one
// user's posts to another's (an UPDATE of posts.user_id) bumps the new
// user's tag and the column tag of posts.user_id: every cached list keyed
// on user_id goes. With ALTER TABLE posts REPLICA IDENTITY FULL the old
// values come too (at the cost of logging them) and only the two users'
// lists go. A TRUNCATE bumps its tables whole.
//
// # The slot
//
// A commit is confirmed to the server (the slot's confirmed_flush_lsn)
// only once its bump has landed in the store; a bump the store refuses is
// retried, with backoff, and nothing after it is confirmed meanwhile. A
// listener that restarts, or loses its connection, or whose server
// restarts, resumes from the last confirmed position: the commits it had
// not bumped are streamed again (bumping twice is harmless). When the
// stream cannot go on from there — the slot is new, was dropped, or was
// invalidated because it held more WAL than max_slot_wal_keep_size — the
// listener bumps every watched table once, and makes a new slot if needed,
// before it confirms anything.
//
// While no listener runs, the slot keeps the WAL from its position on:
// bound it with max_slot_wal_keep_size, and drop a slot no longer used
// (SELECT pg_drop_replication_slot('gormcache')).
//
// # Timing
//
// The delay from a commit to its bump is the server's decoding, the check
// that the commit is visible, and one store round trip; while commits come
// fast (within half a millisecond of one another), a commit's bump also
// waits about a millisecond for the next ones to share it. See README for
// the figures (TestCommitToBumpDelay, TestWriteThroughput). Until the bump has landed, a read may still be served the
// old entry: the guarantee for writers outside the application is
// "bounded by the replication delay where the listener runs, by the TTL
// elsewhere". [Listener.Stats] tells the lag, in bytes and in time.
package pgrepl
