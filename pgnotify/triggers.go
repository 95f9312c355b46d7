package pgnotify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// DefaultChannel is the channel the triggers notify and the listener
// listens on when none is given.
const DefaultChannel = "gormcache"

// SkipSetting is the session setting that silences the triggers: a
// transaction that runs with it "on" notifies nobody. The application's own
// connections set it, since the plugin bumps their writes already; see
// [AppRuntimeParams].
const SkipSetting = "gormcache.skip_notify"

// triggerName names the trigger on every table, and funcName the trigger
// function, one per schema that holds a watched table.
const (
	triggerName = "gormcache_notify"
	funcName    = "gormcache_notify"
)

// installLock is the advisory lock that serialises installs and removals
// (application instances may all install at start-up).
const installLock = 0x676f726d63616368 // "gormcach"

// tgtype of AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT
// (INSERT 1<<2, DELETE 1<<3, UPDATE 1<<4, TRUNCATE 1<<5).
const triggerType = 60

// Errors of this package, wrapped with detail; check them with errors.Is.
var (
	// ErrInvalidConfig reports a Config or an argument that cannot work.
	ErrInvalidConfig = errors.New("pgnotify: invalid configuration")
	// ErrNotTable reports a name that is not an existing table (or
	// partitioned table) of the database.
	ErrNotTable = errors.New("pgnotify: not a table")
)

// AppRuntimeParams returns the session settings of the application's own
// connections: with them, the triggers stay silent for writes the plugin
// bumps already. Use them as a pgx ConnConfig's RuntimeParams (add, do not
// replace), or write the equivalent in a DSN:
//
//	options='-c gormcache.skip_notify=on'            (key/value DSN)
//	options=-c%20gormcache.skip_notify%3Don          (URL DSN)
//
// Do not use them on connections whose writes the plugin does not see.
func AppRuntimeParams() map[string]string {
	return map[string]string{SkipSetting: "on"}
}

// functionBody is the trigger function. TG_ARGV[0] is the channel. The
// payload is the table's name lower-cased: the tag invalidation.TableName
// gives it (the listener completes the folding of characters PostgreSQL's
// lower() leaves alone under the C collation).
//
// SELECT … INTO rather than PERFORM: the plugin reads trigger bodies from
// the catalog, and takes a body that may write (PERFORM, EXECUTE, …) for a
// trigger with unknown effects, which would make every write to the table
// invalidate everything. This body writes no table, and reads as such.
const functionBody = `
DECLARE
	sent record;
BEGIN
	IF COALESCE(pg_catalog.current_setting('` + SkipSetting + `', true), '') NOT IN ('on', 'true', 'yes', '1') THEN
		SELECT pg_catalog.pg_notify(TG_ARGV[0], pg_catalog.lower(TG_TABLE_NAME)) INTO sent;
	END IF;
	RETURN NULL;
END
`

// InstallTriggers makes every write to the named tables notify
// [DefaultChannel] when it commits. It is [InstallTriggersOn] with the
// default channel.
func InstallTriggers(ctx context.Context, db *sql.DB, tables ...string) error {
	return InstallTriggersOn(ctx, db, DefaultChannel, tables...)
}

// InstallTriggersOn adds to each named table the statement-level trigger
// gormcache_notify (AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE … FOR EACH
// STATEMENT), which calls the function gormcache_notify created in the
// table's schema; the function sends the table's name on channel unless the
// session set [SkipSetting].
//
// Names are SQL names, optionally schema-qualified, resolved through the
// search_path as PostgreSQL resolves them: articles, shop.articles,
// "Shop"."Articles". A name written without quotes that matches no table as
// folded to lower case is tried as written (GORM's "Articles"). A name that
// is not a table or a partitioned table fails with [ErrNotTable]; statement
// triggers on a partitioned table fire for statements naming it, not for
// statements naming a partition directly.
//
// It is idempotent (a trigger already in place is left alone, without
// locking its table), all or nothing (one transaction), and touches only the
// named tables. It needs the TRIGGER privilege on the tables and CREATE on
// their schemas.
func InstallTriggersOn(ctx context.Context, db *sql.DB, channel string, tables ...string) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	return inTx(ctx, db, func(tx *sql.Tx) error {
		rels, err := resolveAll(ctx, tx, tables, true)
		if err != nil {
			return err
		}
		done := map[string]bool{}
		for _, r := range rels {
			if !done[r.schema] {
				done[r.schema] = true
				if err := ensureFunction(ctx, tx, r.schema); err != nil {
					return err
				}
			}
			if err := ensureTrigger(ctx, tx, r, channel); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemoveTriggers removes the trigger gormcache_notify from the named tables,
// and the trigger function from their schemas when no trigger uses it any
// more. Names are resolved as by [InstallTriggersOn]; a table that does not
// exist, or has no such trigger, is skipped. It is idempotent and touches
// only the named tables.
func RemoveTriggers(ctx context.Context, db *sql.DB, tables ...string) error {
	return inTx(ctx, db, func(tx *sql.Tx) error {
		rels, err := resolveAll(ctx, tx, tables, false)
		if err != nil {
			return err
		}
		done := map[string]bool{}
		for _, r := range rels {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_catalog.pg_trigger
				WHERE tgrelid = $1::regclass AND tgname = $2`, r.qualified(), triggerName).Scan(&n)
			if err != nil {
				return fmt.Errorf("pgnotify: read triggers of %s: %w", r.qualified(), err)
			}
			if n > 0 {
				q := "DROP TRIGGER IF EXISTS " + quoteIdent(triggerName) + " ON " + r.qualified()
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("pgnotify: drop trigger on %s: %w", r.qualified(), err)
				}
			}
			done[r.schema] = true
		}
		// Drop the functions last, once no named table uses them.
		for schema := range done {
			if err := dropUnusedFunction(ctx, tx, schema); err != nil {
				return err
			}
		}
		return nil
	})
}

func checkChannel(channel string) error {
	switch {
	case channel == "":
		return fmt.Errorf("%w: empty channel", ErrInvalidConfig)
	case len(channel) > 63:
		return fmt.Errorf("%w: channel %q is longer than 63 bytes", ErrInvalidConfig, channel)
	case strings.ContainsRune(channel, 0):
		return fmt.Errorf("%w: channel contains a NUL byte", ErrInvalidConfig)
	}
	return nil
}

func inTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	if db == nil {
		return fmt.Errorf("%w: nil *sql.DB", ErrInvalidConfig)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgnotify: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", int64(installLock)); err != nil {
		return fmt.Errorf("pgnotify: lock: %w", err)
	}
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgnotify: commit: %w", err)
	}
	return nil
}

// relation is a resolved table.
type relation struct {
	schema, name string
}

func (r relation) qualified() string { return quoteIdent(r.schema) + "." + quoteIdent(r.name) }

// resolveAll resolves names to tables, without duplicates. With mustExist,
// a name that is not a table is an error; otherwise it is skipped.
func resolveAll(ctx context.Context, tx *sql.Tx, names []string, mustExist bool) ([]relation, error) {
	var rels []relation
	seen := map[relation]bool{}
	for _, name := range names {
		r, kind, err := resolve(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		if kind != "r" && kind != "p" {
			if !mustExist {
				continue
			}
			if kind == "" {
				return nil, fmt.Errorf("%w: %q does not exist", ErrNotTable, name)
			}
			return nil, fmt.Errorf("%w: %q is a relation of kind %q", ErrNotTable, name, kind)
		}
		if !seen[r] {
			seen[r] = true
			rels = append(rels, r)
		}
	}
	return rels, nil
}

// resolve finds the relation name designates, and its relkind ("" when
// there is none).
func resolve(ctx context.Context, tx *sql.Tx, name string) (relation, string, error) {
	parts, err := splitName(name)
	if err != nil {
		return relation{}, "", err
	}
	folded := make([]string, len(parts))
	exact := make([]string, len(parts))
	for i, p := range parts {
		exact[i] = quoteIdent(p.text)
		if p.quoted {
			folded[i] = exact[i]
		} else {
			folded[i] = quoteIdent(foldIdent(p.text))
		}
	}
	candidates := []string{strings.Join(folded, ".")}
	if e := strings.Join(exact, "."); e != candidates[0] {
		candidates = append(candidates, e)
	}
	for _, c := range candidates {
		var r relation
		var kind string
		err := tx.QueryRowContext(ctx, `SELECT n.nspname, c.relname, c.relkind::text
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = pg_catalog.to_regclass($1)`, c).Scan(&r.schema, &r.name, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return relation{}, "", fmt.Errorf("pgnotify: resolve %q: %w", name, err)
		}
		return r, kind, nil
	}
	return relation{}, "", nil
}

type namePart struct {
	text   string
	quoted bool
}

// splitName splits a table name into its schema and table parts, as
// PostgreSQL parses them ("a.b"."C" is two parts; doubled quotes are one).
func splitName(name string) ([]namePart, error) {
	bad := func(why string) error { return fmt.Errorf("%w: table name %q: %s", ErrInvalidConfig, name, why) }
	var parts []namePart
	s := strings.TrimSpace(name)
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		var p namePart
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; ; i++ {
				if i >= len(s) {
					return nil, bad("unterminated quote")
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			p = namePart{text: b.String(), quoted: true}
			s = strings.TrimLeft(s[i+1:], " \t\n\r")
		} else {
			i := strings.IndexAny(s, `."`)
			if i < 0 {
				i = len(s)
			}
			p = namePart{text: strings.TrimSpace(s[:i])}
			s = s[i:]
		}
		if p.text == "" {
			return nil, bad("empty part")
		}
		parts = append(parts, p)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, bad("unexpected text after a quoted part")
		}
		s = s[1:]
	}
	if len(parts) > 2 {
		return nil, bad("name a table as table or schema.table")
	}
	return parts, nil
}

// foldIdent folds an unquoted identifier as PostgreSQL does in a
// multi-byte encoding: ASCII letters only.
func foldIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes an SQL string literal, whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `'`, `''`)
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return `'` + s + `'`
}

func functionRef(schema string) string { return quoteIdent(schema) + "." + quoteIdent(funcName) }

// ensureFunction creates or updates the trigger function of schema, unless
// it is already as it should be.
func ensureFunction(ctx context.Context, tx *sql.Tx, schema string) error {
	var src string
	err := tx.QueryRowContext(ctx, `SELECT p.prosrc FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0`, schema, funcName).Scan(&src)
	switch {
	case err == nil && src == functionBody:
		return nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("pgnotify: read function %s: %w", functionRef(schema), err)
	}
	q := "CREATE OR REPLACE FUNCTION " + functionRef(schema) + "() RETURNS trigger LANGUAGE plpgsql AS $gormcache$" +
		functionBody + "$gormcache$"
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("pgnotify: create function %s: %w", functionRef(schema), err)
	}
	return nil
}

// ensureTrigger creates the trigger on r, or replaces one of that name that
// differs from it.
func ensureTrigger(ctx context.Context, tx *sql.Tx, r relation, channel string) error {
	var ok bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
		WHERE t.tgrelid = $1::regclass AND t.tgname = $2
		  AND t.tgfoid = $3::regprocedure AND t.tgtype = $4 AND t.tgenabled = 'O'
		  AND t.tgqual IS NULL AND pg_catalog.cardinality(t.tgattr::int2[]) = 0
		  AND t.tgnargs = 1
		  AND t.tgargs = pg_catalog.convert_to($5, pg_catalog.current_setting('server_encoding')) || '\x00'::bytea)`,
		r.qualified(), triggerName, functionRef(r.schema)+"()", triggerType, channel).Scan(&ok)
	if err != nil {
		return fmt.Errorf("pgnotify: read triggers of %s: %w", r.qualified(), err)
	}
	if ok {
		return nil
	}
	stmts := []string{
		"DROP TRIGGER IF EXISTS " + quoteIdent(triggerName) + " ON " + r.qualified(),
		"CREATE TRIGGER " + quoteIdent(triggerName) +
			" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + r.qualified() +
			" FOR EACH STATEMENT EXECUTE FUNCTION " + functionRef(r.schema) + "(" + quoteLiteral(channel) + ")",
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("pgnotify: install trigger on %s: %w", r.qualified(), err)
		}
	}
	return nil
}

// dropUnusedFunction drops the trigger function of schema if no trigger
// calls it.
func dropUnusedFunction(ctx context.Context, tx *sql.Tx, schema string) error {
	var unused bool
	err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgfoid = p.oid)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0`, schema, funcName).Scan(&unused)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgnotify: read function %s: %w", functionRef(schema), err)
	}
	if !unused {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "DROP FUNCTION IF EXISTS "+functionRef(schema)+"()"); err != nil {
		return fmt.Errorf("pgnotify: drop function %s: %w", functionRef(schema), err)
	}
	return nil
}
