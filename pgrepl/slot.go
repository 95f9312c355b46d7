package pgrepl

import (
	"context"
	"fmt"
	"strings"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// setupResult is what prepare found and did.
type setupResult struct {
	watched []string // every table of the publication, and Config.Tables (SQL names)
	added   []string // tables added to the publication now: their earlier changes were never streamed
	gap     string   // why the stream does not go on from where the listener stopped ("" when it does)
	start   pglogrepl.LSN
}

// prepare checks the server, makes sure the publication has the watched
// tables and the slot exists (re-creating one the server invalidated),
// on an ordinary connection, and says where to start streaming.
func (l *Listener) prepare(ctx context.Context, conn *pgconn.PgConn) (setupResult, error) {
	var res setupResult
	rows, err := queryRows(ctx, conn, `SELECT current_setting('wal_level'), current_setting('server_version_num')::int >= 150000`)
	if err != nil {
		return res, err
	}
	if rows[0][0] != "logical" {
		return res, fmt.Errorf("%w: wal_level is %s (set wal_level = logical and restart PostgreSQL)", ErrServer, rows[0][0])
	}
	pg15 := rows[0][1] == "t"

	// The tables: existing, and publishable without breaking their writes.
	type table struct{ oid, name string }
	var tables []table
	for _, t := range l.cfg.Tables {
		rows, err := queryRows(ctx, conn, `SELECT c.oid::text, c.oid::regclass::text, c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)`, t)
		if err != nil {
			return res, fmt.Errorf("table %s: %w", t, err)
		}
		if len(rows) == 0 || (rows[0][2] != "r" && rows[0][2] != "p") {
			return res, fmt.Errorf("%w: %s", ErrNotTable, t)
		}
		bad, err := queryRows(ctx, conn, `SELECT c.oid::regclass::text FROM (SELECT $1::oid AS relid UNION SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass)) p
JOIN pg_catalog.pg_class c ON c.oid = p.relid
WHERE c.relkind = 'r' AND (c.relreplident = 'n'
  OR c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
  OR c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))`, rows[0][0])
		if err != nil {
			return res, fmt.Errorf("replica identity of %s: %w", t, err)
		}
		if len(bad) > 0 {
			return res, fmt.Errorf("%w: %s (add a primary key, or ALTER TABLE %s REPLICA IDENTITY FULL: in a publication without one, its UPDATEs and DELETEs would fail)", ErrNoReplicaIdentity, bad[0][0], bad[0][0])
		}
		tables = append(tables, table{rows[0][0], rows[0][1]})
	}

	// The publication: created, or given the tables it lacks.
	pub := l.cfg.Publication
	rows, err = queryRows(ctx, conn, `SELECT oid::text, puballtables, pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1`, pub)
	if err != nil {
		return res, fmt.Errorf("publication: %w", err)
	}
	created := false
	switch {
	case len(rows) == 0 && len(tables) == 0:
		return res, fmt.Errorf("%w: publication %s does not exist: name the tables to watch", ErrInvalidConfig, pub)
	case len(rows) == 0:
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.name
		}
		if err := execSQL(ctx, conn, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(names, ", ")); err != nil {
			return res, fmt.Errorf("create publication %s: %w", pub, err)
		}
		created = true
		l.log.Always(slogInfo, "pgrepl: created publication", "publication", pub, "tables", strings.Join(names, ", "))
	default:
		if rows[0][2] != "t" {
			return res, fmt.Errorf("%w: publication %s does not publish every INSERT, UPDATE, DELETE and TRUNCATE (drop it, or ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate'))", ErrServer, pub, pub)
		}
		if pg15 {
			filtered, err := queryRows(ctx, conn, `SELECT prrelid::regclass::text FROM pg_catalog.pg_publication_rel WHERE prpubid = $1::oid AND prqual IS NOT NULL`, rows[0][0])
			if err != nil {
				return res, fmt.Errorf("publication %s: %w", pub, err)
			}
			if len(filtered) > 0 {
				return res, fmt.Errorf("%w: publication %s has a row filter on %s: the changes it leaves out would never invalidate", ErrServer, pub, filtered[0][0])
			}
		}
		if rows[0][1] != "t" {
			for _, t := range tables {
				in, err := queryRows(ctx, conn, `SELECT 1 FROM pg_catalog.pg_publication_rel WHERE prpubid = $1::oid AND prrelid = $2::oid`, rows[0][0], t.oid)
				if err != nil {
					return res, fmt.Errorf("publication %s: %w", pub, err)
				}
				if len(in) > 0 {
					continue
				}
				if err := execSQL(ctx, conn, "ALTER PUBLICATION "+pub+" ADD TABLE "+t.name); err != nil {
					return res, fmt.Errorf("add %s to publication %s: %w", t.name, pub, err)
				}
				res.added = append(res.added, t.name)
			}
			if len(res.added) > 0 {
				l.log.Always(slogInfo, "pgrepl: added tables to the publication; bumping them, since their earlier changes were not streamed", "publication", pub, "tables", strings.Join(res.added, ", "))
			}
		}
	}

	// What is watched: the publication's tables (their partitions, as the
	// stream names them) and those configured.
	rows, err = queryRows(ctx, conn, `SELECT DISTINCT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_catalog.pg_publication_tables WHERE pubname = $1 ORDER BY 1`, pub)
	if err != nil {
		return res, fmt.Errorf("publication %s tables: %w", pub, err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if tag := invalidation.TableName(r[0]); !seen[tag] {
			seen[tag] = true
			res.watched = append(res.watched, r[0])
		}
	}
	for _, t := range tables {
		if tag := invalidation.TableName(t.name); !seen[tag] {
			seen[tag] = true
			res.watched = append(res.watched, t.name)
		}
	}

	// The slot.
	slot := l.cfg.Slot
	rows, err = queryRows(ctx, conn, `SELECT coalesce(plugin, ''), slot_type, database IS NOT DISTINCT FROM current_database(), coalesce(wal_status, ''),
  coalesce(active_pid::text, ''), coalesce(confirmed_flush_lsn::text, '')
FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot)
	if err != nil {
		return res, fmt.Errorf("slot %s: %w", slot, err)
	}
	create := len(rows) == 0
	if create {
		res.gap = "a new replication slot (writes made before it are not in the stream)"
	} else {
		r := rows[0]
		recreate := false
		switch {
		case r[1] != "logical" || r[0] != "pgoutput" || r[2] != "t":
			return res, fmt.Errorf("%w: slot %s exists but is not a pgoutput logical slot of this database (name another Config.Slot)", ErrServer, slot)
		case r[4] != "":
			return res, fmt.Errorf("%w: slot %s is streamed by backend %s", ErrSlotActive, slot, r[4])
		case r[3] == "lost":
			res.gap, recreate = "the replication slot was invalidated (it held more WAL than max_slot_wal_keep_size allows)", true
		case created:
			// (decoding the WAL from before the publication existed fails)
			res.gap, recreate = "the publication was created after the slot", true
		default:
			confirmed, err := pglogrepl.ParseLSN(r[5])
			if err != nil {
				return res, fmt.Errorf("%w: slot %s: confirmed_flush_lsn %q: %v", ErrServer, slot, r[5], err)
			}
			if mine := l.position(); mine != 0 && confirmed > mine {
				res.gap = fmt.Sprintf("the slot was moved past the listener's position (%s > %s)", confirmed, mine)
			}
			res.start = max(confirmed, l.position())
		}
		if recreate {
			if err := execSQL(ctx, conn, "SELECT pg_catalog.pg_drop_replication_slot("+quoteLiteral(slot)+")"); err != nil {
				return res, fmt.Errorf("drop slot %s: %w", slot, err)
			}
			create = true
		}
	}
	if create {
		if err := execSQL(ctx, conn, "SELECT pg_catalog.pg_create_logical_replication_slot("+quoteLiteral(slot)+", 'pgoutput')"); err != nil {
			return res, fmt.Errorf("create slot %s: %w", slot, err)
		}
		l.log.Always(slogInfo, "pgrepl: created replication slot", "slot", slot, "why", res.gap)
	}
	return res, nil
}

// queryRows runs query with text arguments and returns its rows as text.
func queryRows(ctx context.Context, conn *pgconn.PgConn, query string, args ...string) ([][]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	rr := conn.ExecParams(ctx, query, params, nil, nil, nil)
	var out [][]string
	for rr.NextRow() {
		vals := rr.Values()
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = string(v)
		}
		out = append(out, row)
	}
	if _, err := rr.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

func execSQL(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	_, err := conn.Exec(ctx, sql).ReadAll()
	return err
}

// quoteLiteral quotes an SQL string literal (E” so that backslashes are
// literal whatever standard_conforming_strings says).
func quoteLiteral(s string) string {
	return "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}
