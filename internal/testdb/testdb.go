// Package testdb gives tests fresh, empty databases on the three dialects the
// project supports: SQLite in a temporary directory, and PostgreSQL and
// MariaDB on this machine's servers (127.0.0.1:5432, 127.0.0.1:3306).
//
// A server that cannot be reached skips the test, except under CI=true,
// where it fails it: CI must never pass by skipping ([Unavailable]).
//
// On the shared Redis and Memcached, a test's keys go under a prefix of its
// own ([KeyPrefix]), and its Redis keys are deleted when it ends
// ([CleanRedis]). What the tests share beside servers is in package
// testsupport.
package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	_ "github.com/go-sql-driver/mysql" // MariaDB admin connection
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL admin connection
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Dialects lists the dialects every dialect-wide test runs on.
var Dialects = []string{"sqlite", "postgres", "mysql"}

// Env variables override the servers' addresses.
var (
	PostgresAdmin = env("GORMCACHE_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable")
	MySQLAdmin    = env("GORMCACHE_MYSQL_ADMIN", "root:@tcp(127.0.0.1:3306)/")
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Unavailable fails the test under CI=true and skips it otherwise.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unavailable under CI=true: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

// RandomName returns prefix followed by twelve random hex digits: a name
// no other test uses (a database, a channel, a client).
func RandomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Fresh returns a dialector for a new, empty database of the dialect, dropped
// when the test ends.
func Fresh(t testing.TB, dialect string) gorm.Dialector {
	t.Helper()
	switch dialect {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "test.db")
		return sqlite.Open("file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	case "postgres":
		return postgres.Open(FreshPostgres(t))
	case "mysql":
		name := createDB(t, "mysql", MySQLAdmin, "`", "")
		return mysql.Open("root:@tcp(127.0.0.1:3306)/" + name + "?parseTime=true&loc=Local&charset=utf8mb4")
	}
	t.Fatalf("testdb: unknown dialect %q", dialect)
	return nil
}

// FreshPostgres creates a new PostgreSQL database and returns its DSN.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	name := createDB(t, "pgx", PostgresAdmin, `"`, "")
	return "host=127.0.0.1 port=5432 user=postgres dbname=" + name + " sslmode=disable"
}

func createDB(t testing.TB, driverName, admin, quote, _ string) string {
	t.Helper()
	db, err := sql.Open(driverName, admin)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		Unavailable(t, driverName, err)
	}
	name := RandomName("gctest_")
	if _, err := db.Exec("CREATE DATABASE " + quote + name + quote); err != nil {
		db.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		drop := "DROP DATABASE IF EXISTS " + quote + name + quote
		if driverName == "pgx" {
			drop += " WITH (FORCE)"
		}
		if _, err := db.Exec(drop); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return name
}

// Open opens a fresh database of the dialect with cfg.
func Open(t testing.TB, dialect string, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(Fresh(t, dialect), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return db
}

// Describe names a dialect's server for messages.
func Describe(dialect string) string { return fmt.Sprintf("%s test database", dialect) }
