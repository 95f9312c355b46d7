package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/pgnotify"
	"github.com/gormcache/gormcache/pgrepl"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

const pgDSNHelp = "the PostgreSQL database (`DSN`): 'host=… port=5432 user=… dbname=…' or postgres://user@host/db (default $GORMCACHE_DSN)"

var pgInstallCommand = &command{
	name:    "pg install-triggers",
	args:    "TABLE…",
	summary: "make every write to TABLE notify its commit (PostgreSQL LISTEN/NOTIFY)",
	help: `
Adds to each table the statement-level trigger gormcache_notify (AFTER INSERT
OR UPDATE OR DELETE OR TRUNCATE … FOR EACH STATEMENT), which sends the table's
name on the channel when the writing transaction commits; 'gormcache pg
listen' (or pgnotify.Listen in the application) then bumps the table in the
store, so that writes made outside the application (psql, cron jobs, other
services) invalidate the cache within milliseconds instead of at the TTL.

Names are SQL names, optionally schema-qualified (articles, shop.articles,
"Shop"."Articles"). It is idempotent, all or nothing, and touches only the
tables named. It needs the TRIGGER privilege on the tables and CREATE on their
schemas. Writes made through the plugin bump already: open the application's
connections with options='-c gormcache.skip_notify=on' to spare them the
notification (see package pgnotify).`,
	examples: `  gormcache pg install-triggers --dsn "host=127.0.0.1 user=app dbname=app" articles products
  gormcache pg install-triggers --dsn postgres://app@db.internal/app shop.orders`,
	setup: func(fs *flag.FlagSet) runFunc {
		dsn := fs.String("dsn", "", pgDSNHelp)
		channel := fs.String("channel", pgnotify.DefaultChannel, "the `CHANNEL` the triggers notify")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("name at least one table")
			}
			db, err := openPG(ctx, e, envDefault(*dsn, "GORMCACHE_DSN"))
			if err != nil {
				return err
			}
			defer db.Close()
			if err := pgnotify.InstallTriggersOn(ctx, db, *channel, args...); err != nil {
				return pgErr("install the triggers", err)
			}
			fmt.Fprintf(e.stdout, "installed trigger gormcache_notify (channel %q) on %s\n", *channel, strings.Join(args, ", "))
			return nil
		}
	},
}

var pgRemoveCommand = &command{
	name:    "pg remove-triggers",
	args:    "TABLE…",
	summary: "remove the notification triggers from TABLE",
	help: `
Removes the trigger gormcache_notify from each table, and its function from a
schema when no trigger uses it any more. Tables that do not exist or carry no
such trigger are skipped; it touches only the tables named.`,
	examples: `  gormcache pg remove-triggers --dsn "host=127.0.0.1 user=app dbname=app" articles products`,
	setup: func(fs *flag.FlagSet) runFunc {
		dsn := fs.String("dsn", "", pgDSNHelp)
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("name at least one table")
			}
			db, err := openPG(ctx, e, envDefault(*dsn, "GORMCACHE_DSN"))
			if err != nil {
				return err
			}
			defer db.Close()
			if err := pgnotify.RemoveTriggers(ctx, db, args...); err != nil {
				return pgErr("remove the triggers", err)
			}
			fmt.Fprintf(e.stdout, "removed trigger gormcache_notify from %s\n", strings.Join(args, ", "))
			return nil
		}
	},
}

var pgListenCommand = &command{
	name:    "pg listen",
	args:    "[TABLE…]",
	summary: "bump tables in the store as their notifications arrive, until interrupted",
	help: `
Listens on the channel on a connection of its own and bumps, in --store, each
table named by a notification (pgnotify.Listen with pgnotify.StoreInvalidator):
a sidecar for applications that do not run the listener themselves. Prints a
line per bump and, every --stats-every and at the end, the listener's health
(connected, notifications, bumps, reconnects, losses). Runs until interrupted
(Ctrl-C, SIGTERM), then exits 0.

On connecting, and again after every reconnection, it bumps every watched
table (TABLE…; none means every table carrying the trigger), since
notifications sent while nobody listened are lost. Give a direct DSN to
PostgreSQL: behind PgBouncer in transaction mode LISTEN hears nothing.
Only the tables named are bumped: the CLI does not know the views and foreign
keys the plugin follows.`,
	examples: `  gormcache pg listen --store redis://127.0.0.1:6379 --dsn "host=127.0.0.1 user=app dbname=app" articles products
  gormcache pg listen --stats-every 1m --store memcache://127.0.0.1:11211 --dsn postgres://app@db/app`,
	setup: func(fs *flag.FlagSet) runFunc {
		dsn := fs.String("dsn", "", pgDSNHelp)
		channel := fs.String("channel", pgnotify.DefaultChannel, "the `CHANNEL` to listen on (the triggers')")
		every := fs.Duration("stats-every", 30*time.Second, "print the listener's stats this often (`D`; 0: only at the end)")
		return func(ctx context.Context, e *env, args []string) error {
			if *every < 0 {
				return usagef("--stats-every must not be negative")
			}
			d := envDefault(*dsn, "GORMCACHE_DSN")
			db, err := openPG(ctx, e, d) // a clear error before the listener's retries
			if err != nil {
				return err
			}
			db.Close()
			t, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			defer t.Close()
			return listen(ctx, e, t, d, *channel, args, *every)
		}
	},
}

// pgErr says what a pgnotify error means for the operator.
func pgErr(op string, err error) error {
	switch {
	case errors.Is(err, pgnotify.ErrNotTable):
		return fmt.Errorf("%s: %v — check the names (schema-qualify tables that are not on the search_path)", op, err)
	case errors.Is(err, pgnotify.ErrInvalidConfig):
		return usagef("%v", err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// syncWriter serialises the lines of the listener's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}

func listen(ctx context.Context, e *env, t *target, dsn, channel string, tables []string, every time.Duration) error {
	out := &syncWriter{w: e.stdout}
	bump := pgnotify.StoreInvalidator(t.Store)
	inv := pgnotify.InvalidatorFunc(func(ctx context.Context, tables ...string) error {
		err := bump.Invalidate(ctx, tables...)
		now := time.Now().Format("15:04:05.000")
		if err != nil {
			out.printf("%s bump of %s failed (retried): %v\n", now, strings.Join(tables, ", "), err)
			return err
		}
		out.printf("%s invalidated %s\n", now, strings.Join(tables, ", "))
		return nil
	})
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := pgnotify.Listen(ctx, dsn, inv, pgnotify.Config{Tables: tables, Channel: channel, Logger: logger})
	if err != nil {
		if errors.Is(err, pgnotify.ErrInvalidConfig) {
			return usagef("%v", err)
		}
		return fmt.Errorf("cannot listen on %s: %w — check --dsn", describePG(dsn), err)
	}
	watched := "every table with the trigger"
	if len(tables) > 0 {
		watched = strings.Join(tables, ", ")
	}
	out.printf("listening on channel %q of %s for %s; bumping in %s; Ctrl-C to stop\n", channel, describePG(dsn), watched, t.describe())

	return untilInterrupted(ctx, out, every, func() string { return statsLine(l.Stats()) }, l.Close)
}

// untilInterrupted prints a listener's stats every every (0: never) and,
// when ctx ends, closes it and prints them a last time.
func untilInterrupted(ctx context.Context, out *syncWriter, every time.Duration, stats func() string, closeListener func() error) error {
	var tick <-chan time.Time
	if every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-tick:
			out.printf("%s\n", stats())
		case <-ctx.Done():
			err := closeListener()
			out.printf("stopped; %s\n", stats())
			if err != nil {
				return fmt.Errorf("close the listener: %w", err)
			}
			return nil
		}
	}
}

func statsLine(s pgnotify.Stats) string {
	last := "never"
	if !s.LastNotification.IsZero() {
		last = s.LastNotification.Format("15:04:05.000")
	}
	heard := "never"
	if !s.LastHeard.IsZero() {
		heard = s.LastHeard.Format("15:04:05.000")
	}
	return fmt.Sprintf("stats: connected=%t notifications=%d bumps=%d reconnects=%d lost=%d errors=%d last_notification=%s last_heard=%s backend_pid=%d",
		s.Connected, s.Notifications, s.Bumps, s.Reconnects, s.Lost, s.Errors, last, heard, s.BackendPID)
}

var pgReplicateCommand = &command{
	name:    "pg replicate",
	args:    "[TABLE…]",
	summary: "bump the rows changed by every commit, read from PostgreSQL's logical replication, until interrupted",
	help: `
Streams the changes of the watched tables from a logical replication slot
(pgoutput; package pgrepl) and, at each commit, bumps in --store the tables
and the row tags of the keys the commit's rows had and have: a sidecar that
sees every committed write — psql, cron jobs, other services, triggers,
cascades — with nothing on the write path (no trigger, no setting).

It opens the database with the plugin (on --store, with --prefix) to read the
catalog the application's plugin reads: the keyed columns, views, foreign keys
and partitions, so that it bumps what the application's own writes would.
The publication (--publication, with TABLE…; none: the tables the publication
has) and the slot (--slot) are created if missing. A commit is confirmed to
the server only once its bump has landed; after a restart (of this command or
of PostgreSQL) it resumes from the last confirmed position. When it cannot
(a new slot, or one invalidated by max_slot_wal_keep_size), it bumps every
watched table first.

While it does not run, the slot keeps the WAL from its position: bound it
with max_slot_wal_keep_size, and drop a slot no longer used with
SELECT pg_drop_replication_slot('gormcache'). The DSN's user needs the
REPLICATION attribute (or superuser) and the server wal_level = logical; give
a direct DSN, not PgBouncer's. Prints a line per bump (with --verbose) and,
every --stats-every and at the end, the listener's health. Runs until
interrupted (Ctrl-C, SIGTERM), then exits 0.`,
	examples: `  gormcache pg replicate --store redis://127.0.0.1:6379 --dsn "host=127.0.0.1 user=app dbname=app" articles products
  gormcache pg replicate --slot cache_sidecar --stats-every 1m --store redis://cache:6379 --dsn postgres://app@db/app`,
	setup: func(fs *flag.FlagSet) runFunc {
		dsn := fs.String("dsn", "", pgDSNHelp)
		slot := fs.String("slot", pgrepl.DefaultSlot, "the replication `SLOT` (created if missing)")
		pub := fs.String("publication", pgrepl.DefaultPublication, "the `PUBLICATION` (created with TABLE… if missing)")
		every := fs.Duration("stats-every", 30*time.Second, "print the listener's stats this often (`D`; 0: only at the end)")
		verbose := fs.Bool("verbose", false, "print a line per bump")
		return func(ctx context.Context, e *env, args []string) error {
			if *every < 0 {
				return usagef("--stats-every must not be negative")
			}
			d := envDefault(*dsn, "GORMCACHE_DSN")
			sqlDB, err := openPG(ctx, e, d) // a clear error before the listener's retries
			if err != nil {
				return err
			}
			defer sqlDB.Close()
			t, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			defer t.Close()
			cfg := pgrepl.Config{Tables: args, Slot: *slot, Publication: *pub}
			return replicate(ctx, e, t, sqlDB, d, cfg, *every, *verbose)
		}
	},
}

func replicate(ctx context.Context, e *env, t *target, sqlDB *sql.DB, dsn string, cfg pgrepl.Config, every time.Duration, verbose bool) error {
	out := &syncWriter{w: e.stdout}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{Logger: gormlogger.Discard})
	if err != nil {
		return fmt.Errorf("open %s: %w", describePG(dsn), err)
	}
	p := plugin.New(plugin.Config{Store: t.Store, Prefix: e.g.prefix, Logger: logger})
	if err := db.Use(p); err != nil {
		return fmt.Errorf("the plugin on %s: %w", describePG(dsn), err)
	}
	defer p.Close()
	inv := pgrepl.InvalidatorFunc(func(ctx context.Context, changes ...plugin.Change) error {
		err := p.InvalidateRows(ctx, changes...)
		if err != nil || verbose {
			names := make([]string, len(changes))
			for i, c := range changes {
				names[i] = invalidation.TableName(c.Table)
				if !c.AllRows {
					names[i] += fmt.Sprintf(" (%d rows)", len(c.Rows))
				}
			}
			now := time.Now().Format("15:04:05.000")
			if err != nil {
				out.printf("%s bump of %s failed (retried): %v\n", now, strings.Join(names, ", "), err)
			} else {
				out.printf("%s invalidated %s\n", now, strings.Join(names, ", "))
			}
		}
		return err
	})
	cfg.Logger = logger
	l, err := pgrepl.Listen(ctx, dsn, inv, cfg)
	if err != nil {
		switch {
		case errors.Is(err, pgrepl.ErrInvalidConfig):
			return usagef("%v", err)
		case errors.Is(err, pgrepl.ErrNotTable):
			return fmt.Errorf("%v — check the names (schema-qualify tables that are not on the search_path)", err)
		}
		return fmt.Errorf("cannot replicate from %s: %w", describePG(dsn), err)
	}
	watched := "the tables of publication " + cfg.Publication
	if len(cfg.Tables) > 0 {
		watched = strings.Join(cfg.Tables, ", ")
	}
	out.printf("replicating slot %q of %s for %s; bumping in %s; Ctrl-C to stop\n", cfg.Slot, describePG(dsn), watched, t.describe())
	return untilInterrupted(ctx, out, every, func() string { return replStatsLine(l.Stats()) }, l.Close)
}

func replStatsLine(s pgrepl.Stats) string {
	last := "never"
	if !s.LastCommit.IsZero() {
		last = s.LastCommit.Format("15:04:05.000")
	}
	return fmt.Sprintf("stats: connected=%t commits=%d rows=%d bumps=%d position=%s lag_bytes=%d lag=%s reconnects=%d resyncs=%d malformed=%d errors=%d last_commit=%s backend_pid=%d",
		s.Connected, s.Commits, s.Rows, s.Bumps, s.Position, s.LagBytes, s.Lag.Round(time.Millisecond), s.Reconnects, s.Resyncs, s.Malformed, s.Errors, last, s.BackendPID)
}
