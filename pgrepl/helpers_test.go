package pgrepl

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// testPrefix starts the names of the tests' slots and publications; a
// slot's name carries its creation time, so that one a crashed run left
// behind can be told from one a running test uses.
const testPrefix = "gctest_repl_"

// names returns a new slot and publication name for a test, and drops
// them when it ends (slot first: a database with a slot cannot be
// dropped, and the test's database cleanup runs after this one).
func names(t testing.TB, adminDSN string) Config {
	t.Helper()
	name := testdb.RandomName(testPrefix + strconv.FormatInt(time.Now().Unix(), 10) + "_")
	dropLeftovers(t, adminDSN)
	t.Cleanup(func() { dropSlot(t, adminDSN, name) })
	return Config{Slot: name, Publication: name, Logger: quiet(), ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second}
}

// dropSlot drops a slot, waiting for the walsender of a closed listener
// to let it go.
func dropSlot(t testing.TB, dsn, name string) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Logf("drop slot %s: %v", name, err)
		return
	}
	defer db.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
		if err == nil || time.Now().After(deadline) {
			break
		}
		_, _ = db.Exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, name)
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Logf("drop slot %s: %v", name, err)
	}
}

var leftovers sync.Once

// dropLeftovers drops, once per test binary, the inactive slots of this
// package's tests older than ten minutes: a crashed run's, which hold WAL
// on the shared server.
func dropLeftovers(t testing.TB, dsn string) {
	leftovers.Do(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		rows, err := db.Query(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active`, testPrefix+"%")
		if err != nil {
			return
		}
		var old []string
		for rows.Next() {
			var name string
			if rows.Scan(&name) != nil {
				continue
			}
			parts := strings.Split(strings.TrimPrefix(name, testPrefix), "_")
			if sec, err := strconv.ParseInt(parts[0], 10, 64); err == nil && time.Since(time.Unix(sec, 0)) > 10*time.Minute {
				old = append(old, name)
			}
		}
		rows.Close()
		for _, name := range old {
			if _, err := db.Exec(`SELECT pg_drop_replication_slot($1)`, name); err == nil {
				t.Logf("dropped %s, left behind by an earlier run", name)
			}
		}
	})
}

// quiet is the logger of tests: verbose runs show the listener's log.
func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fresh creates a database with setup run in it and returns its DSN.
func fresh(t testing.TB, setup ...string) string {
	t.Helper()
	dsn := testdb.FreshPostgres(t)
	db := openSQL(t, dsn)
	for _, q := range setup {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return dsn
}

func openSQL(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openGORM opens dsn with the plugin (on its own in-process store).
func openGORM(t testing.TB, dsn string) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{Logger: quiet()})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return db, p
}

// listen starts a listener closed at the end of the test, and waits for
// its first bump when the slot is new.
func listen(t testing.TB, dsn string, inv Invalidator, cfg Config) *Listener {
	t.Helper()
	l, err := Listen(context.Background(), dsn, inv, cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect opens a pgx connection, closed at the end of the test: the
// "psql session" of the tests, outside GORM and the plugin.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// outside runs a statement on conn and returns the WAL position after its
// commit: once a listener's Position reaches it, the write is bumped.
func outside(t testing.TB, conn *pgx.Conn, sql string, args ...any) pglogrepl.LSN {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return walPosition(t, conn)
}

func walPosition(t testing.TB, conn *pgx.Conn) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// bumped waits until the listener has bumped every commit up to lsn.
func bumped(t testing.TB, l *Listener, lsn pglogrepl.LSN) {
	t.Helper()
	testsupport.EventuallyWithin(t, fmt.Sprintf("position %s", lsn), 30*time.Second, func() bool { return l.Stats().Position >= lsn })
}
