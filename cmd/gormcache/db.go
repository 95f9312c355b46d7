package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Dialect names, as GORM's dialectors name themselves.
const (
	dialectPostgres = "postgres"
	dialectMySQL    = "mysql"
	dialectSQLite   = "sqlite"
)

// dialectOf tells which database a --dsn names and returns the DSN its
// driver takes:
//
//	mysql://user:pass@tcp(host:3306)/db?parseTime=true   MySQL, MariaDB (or any DSN with "@tcp(")
//	sqlite:/path/to/file.db                              SQLite
//	anything else                                        PostgreSQL (key=value or postgres:// URL)
func dialectOf(dsn string) (dialect, driverDSN string) {
	switch {
	case strings.HasPrefix(dsn, "mysql://"):
		return dialectMySQL, strings.TrimPrefix(dsn, "mysql://")
	case strings.Contains(dsn, "@tcp(") || strings.Contains(dsn, "@unix("):
		return dialectMySQL, dsn
	case strings.HasPrefix(dsn, "sqlite:"):
		return dialectSQLite, strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	}
	return dialectPostgres, dsn
}

// dialectorFor returns the GORM dialector of a --dsn.
func dialectorFor(dsn string) (gorm.Dialector, string, error) {
	name, d := dialectOf(dsn)
	switch name {
	case dialectMySQL:
		return mysql.Open(d), name, nil
	case dialectSQLite:
		if d == "" {
			return nil, name, usagef("--dsn sqlite: needs a file: sqlite:/path/to/app.db")
		}
		return sqlite.Open(d), name, nil
	}
	if _, err := pgconn.ParseConfig(d); err != nil {
		return nil, name, usagef("--dsn is not a PostgreSQL DSN (%v); write 'host=… port=5432 user=… dbname=…' or postgres://user@host/db", err)
	}
	return postgres.Open(d), name, nil
}

// describePG names a PostgreSQL DSN's server and database for messages,
// without its password.
func describePG(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "PostgreSQL"
	}
	return fmt.Sprintf("PostgreSQL at %s:%d (database %s, user %s)", cfg.Host, cfg.Port, cfg.Database, cfg.User)
}

// openPG opens and pings a PostgreSQL database through database/sql.
func openPG(ctx context.Context, e *env, dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, usagef("give --dsn (or set GORMCACHE_DSN): the PostgreSQL database, as 'host=127.0.0.1 port=5432 user=app dbname=app' or postgres://app@127.0.0.1/app")
	}
	if name, _ := dialectOf(dsn); name != dialectPostgres {
		return nil, usagef("--dsn names a %s database: LISTEN/NOTIFY triggers and logical replication are PostgreSQL's (on MySQL and MariaDB, writes made outside the application are bounded by the TTL)", name)
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return nil, usagef("--dsn is not a PostgreSQL DSN: %v", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, usagef("--dsn: %v", err)
	}
	cctx, cancel := e.withTimeout(ctx)
	defer cancel()
	if err := db.PingContext(cctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot connect to %s: %s — is the server running? check --dsn", describePG(dsn), pgReason(err, e))
	}
	return db, nil
}

// pgReason says briefly why a PostgreSQL connection failed.
func pgReason(err error, e *env) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	return netReason(err, e.g.timeout)
}
