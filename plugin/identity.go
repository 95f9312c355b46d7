package plugin

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gormcache/gormcache/invalidation"
	"gorm.io/gorm"
)

// One Plugin serves one database. Its identity (in every key) and its
// catalog (foreign keys, views, triggers; the pool whose reads need no
// replica window) are the first database's, read by the first Initialize.
// Installing the same Plugin on a *gorm.DB of another database would serve
// the first database's rows for the second, so Initialize refuses it with
// ErrOtherDatabase. Initialize still accepts, and stays idempotent for:
//
//   - a *gorm.DB it has already wrapped (Initialize again);
//   - a *gorm.DB over the very pool it was first installed on, or over a
//     database that tells the same identity (a second *gorm.DB opened on the
//     same database, user and search_path);
//   - the *gorm.DB that dbresolver opens for each source and replica: GORM
//     runs Initialize on them because they are opened with a copy of the
//     first *gorm.DB's Config, whose Plugins holds this plugin. A replica is
//     another server (its own address, server UUID) with the same data: its
//     reads are keyed by the source's identity and stored only after
//     Config.ReplicaWindow (replica.go). Such a *gorm.DB is recognised by
//     its Config carrying the plugin while dbresolver is registered on the
//     first *gorm.DB; the plugin cannot tell it from an application that
//     opens another database with a copy of that Config, which it must not.

// ErrOtherDatabase is returned by Initialize (that is, by db.Use or
// gorm.Open) when the plugin, already installed on one database, is
// installed on a *gorm.DB of another one, or of one whose identity cannot be
// read to tell. Use one Plugin per database.
var ErrOtherDatabase = errors.New("gormcache: the plugin already serves another database")

// home is the database the plugin serves: the first *gorm.DB it was
// installed on.
type home struct {
	mu   sync.Mutex
	db   *gorm.DB
	pool gorm.ConnPool // db's pool as it was before the plugin wrapped it
	// the identity the database tells, read when a second *gorm.DB asks to
	// be served
	id     string
	idErr  error
	idRead bool
}

// checkDatabase reports whether db is on the database the plugin serves
// (see above); the first db it sees becomes that database.
func (p *Plugin) checkDatabase(db *gorm.DB) error {
	if db.ConnPool == nil || db.DryRun {
		return nil // nothing is read or cached through it
	}
	pool := db.ConnPool
	if ps, ok := pool.(*gorm.PreparedStmtDB); ok {
		pool = ps.ConnPool
	}
	if rp, ok := pool.(*rootPool); ok && rp.p == p {
		return nil // wrapped already: Initialize again
	}
	h := &p.home
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		h.db, h.pool = db, pool
		return nil
	}
	if pool == h.pool {
		return nil
	}
	if _, carried := db.Config.Plugins[pluginName]; carried && h.db.Callback().Query().Get("gorm:db_resolver") != nil {
		return nil // dbresolver's source or replica
	}
	name := ""
	if db.Dialector != nil {
		name = db.Dialector.Name()
	}
	if name != p.dialName {
		return fmt.Errorf("%w (%s), not this %s database", ErrOtherDatabase, p.dialName, name)
	}
	if !h.idRead {
		h.id, h.idErr = readIdentity(context.Background(), p.dialect, h.pool)
		h.idRead = true
	}
	theirs, err := readIdentity(context.Background(), p.dialect, pool)
	switch {
	case h.idErr != nil || err != nil:
		return fmt.Errorf("%w: cannot tell whether this is the same database: %w", ErrOtherDatabase, errors.Join(h.idErr, err))
	case h.id == "" || theirs == "":
		return fmt.Errorf("%w: cannot tell whether this is the same database (no identity to compare on %s)", ErrOtherDatabase, name)
	case h.id != theirs:
		return fmt.Errorf("%w (%s), not this one (%s)", ErrOtherDatabase, h.id, theirs)
	}
	return nil
}

// askIdentity returns the identity for db's keys: what the database tells
// (readIdentity), or, when it tells nothing, one of our own.
func (p *Plugin) askIdentity(db *gorm.DB) string {
	if db.ConnPool != nil && !db.DryRun {
		id, err := readIdentity(context.Background(), p.dialect, db.ConnPool)
		if err == nil && id != "" {
			return p.dialName + ":" + id
		}
		if err != nil {
			p.log.Warn("gormcache: cannot read the database identity; entries will not be shared with other processes", "error", err)
		}
	}
	// An identity of our own: safe (nobody else shares our entries), never wrong.
	var b [12]byte
	_, _ = rand.Read(b[:])
	return p.dialName + ":private:" + hex.EncodeToString(b[:])
}

// readIdentity reads who and where the database is, so that entries of two
// databases sharing one store never mix: "" when the database cannot say
// (an in-memory SQLite database, an unknown dialect).
//
//   - PostgreSQL: server address and port ("local" over a Unix socket),
//     database, user, search_path, primary or standby, and the cluster's
//     system identifier where the user may read it (superuser or pg_monitor),
//     else the server's start time (so that two clusters behind the same
//     socket path or container address differ; a restart changes it).
//   - MySQL: host name, port, database, user and @@server_uuid; MariaDB,
//     which has no server_uuid: @@server_uid.
//   - SQLite: this machine's host name and the database file's path. A file
//     is local to its host; hosts that share a store and whose files have the
//     same path and host name must set Config.Identity.
func readIdentity(ctx context.Context, dialect invalidation.Dialect, pool gorm.ConnPool) (string, error) {
	var base, sys sql.NullString
	switch dialect {
	case invalidation.Postgres:
		var canSys bool
		err := queryRow(ctx, pool, `SELECT concat_ws('/', coalesce(host(inet_server_addr()), 'local'), coalesce(inet_server_port(), 0)::text, current_database(), current_user, current_setting('search_path'), CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END), has_function_privilege('pg_control_system()', 'EXECUTE')`, &base, &canSys)
		if err != nil {
			return "", err
		}
		if canSys {
			err = queryRow(ctx, pool, `SELECT 'system:' || system_identifier::text FROM pg_control_system()`, &sys)
		}
		if !canSys || err != nil {
			err = queryRow(ctx, pool, `SELECT 'started:' || pg_postmaster_start_time()::text`, &sys)
		}
		if err != nil {
			return "", err
		}
	case invalidation.MySQL:
		var version string
		err := queryRow(ctx, pool, `SELECT CONCAT_WS('/', @@hostname, @@port, IFNULL(DATABASE(), ''), CURRENT_USER()), VERSION()`, &base, &version)
		if err == nil {
			if strings.Contains(strings.ToLower(version), "mariadb") {
				err = queryRow(ctx, pool, `SELECT @@server_uid`, &sys) // MariaDB has no server_uuid
			} else {
				err = queryRow(ctx, pool, `SELECT @@server_uuid`, &sys)
			}
		}
		if err != nil {
			return "", err
		}
	case invalidation.SQLite:
		err := queryRow(ctx, pool, `SELECT file FROM pragma_database_list WHERE name = 'main'`, &base)
		if err != nil {
			return "", err
		}
		if base.String == "" {
			return "", nil // in memory
		}
		host, err := os.Hostname()
		if err != nil {
			return "", err
		}
		return host + ":" + base.String, nil
	default:
		return "", nil
	}
	if base.String == "" {
		return "", nil
	}
	return base.String + "/" + sys.String, nil
}

// queryRow scans the first row of query into dest. (Not QueryRowContext:
// gorm.PreparedStmtDB answers a statement that fails to prepare with an
// empty *sql.Row, whose Scan panics.)
func queryRow(ctx context.Context, pool gorm.ConnPool, query string, dest ...any) error {
	rows, err := pool.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}
