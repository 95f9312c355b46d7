package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gormcache/gormcache/pgnotify"
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

	var tick <-chan time.Time
	if every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-tick:
			out.printf("%s\n", statsLine(l.Stats()))
		case <-ctx.Done():
			err := l.Close()
			out.printf("stopped; %s\n", statsLine(l.Stats()))
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
