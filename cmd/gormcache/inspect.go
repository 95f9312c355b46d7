package main

import (
	"context"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/keys"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/serializer"
	"github.com/gormcache/gormcache/store"
	"github.com/vmihailenco/msgpack/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

var inspectCommand = &command{
	name:     "inspect",
	args:     "KEY",
	summary:  "decode a cached entry: SQL, arguments, columns, rows, age, TTL, freshness",
	notFound: true,
	help: `
Reads the entry stored under KEY and decodes it. KEY is the plugin's key of a
query result, as plugin.Explain prints it (Explanation.Key: "gc:1:" and a
22-character hash), or the hash alone (the prefix is then --prefix and the
format version). For a query result it shows the canonical query the entry
answers (dialect, database identity, normalised SQL, typed arguments), the
tables it depends on with the versions it was stored under and the current
ones (fresh: it is served; stale: a table was written since), its columns,
its first rows (--rows), its age and its remaining TTL (Redis tells it; other
stores do not).

A key of a low-level entry (package lowlevel: "ll:" and the caller's key)
shows its tables, versions, expiry and value as JSON.

With --sql (and --dsn), the key is computed as the plugin computes it: the
SQL exactly as the driver receives it (placeholders $1, $2 on PostgreSQL,
? on MySQL and SQLite), arguments given as JSON with --arg (42 is an int64,
4.5 a float64, "42" a string, true, null). The database identity is read from
the database as the plugin reads it; give --identity if the application sets
plugin.Config.Identity.

Exits 3 when KEY holds no live entry: none (never stored, expired, evicted or
deleted), or one the application no longer serves (stale: a table was written
since; a low-level entry past its expiry; a key that is not its query's hash),
which is printed first.`,
	examples: `  gormcache inspect gc:1:3q2-7wXQn0S5u3zB8s9aUw
  gormcache inspect --rows 50 gc:1:3q2-7wXQn0S5u3zB8s9aUw
  gormcache inspect --json gc:1:3q2-7wXQn0S5u3zB8s9aUw | jq .sql
  gormcache inspect ll:report:daily
  gormcache inspect --dsn "host=127.0.0.1 dbname=app" \
      --sql 'SELECT * FROM "users" WHERE "users"."id" = $1 ORDER BY "users"."id" LIMIT $2' --arg 42 --arg 1`,
	setup: func(fs *flag.FlagSet) runFunc {
		rows := fs.Int("rows", 10, "`N` rows to print (-1: all)")
		asJSON := fs.Bool("json", false, "print the entry as JSON")
		sqlText := fs.String("sql", "", "compute the key of this `SQL` (with --dsn and --arg) instead of giving KEY")
		var sqlArgs stringList
		fs.Var(&sqlArgs, "arg", "an argument of --sql, as `JSON` (repeat for each, in order)")
		dsn := fs.String("dsn", "", "the database of --sql: a PostgreSQL `DSN`, mysql://DSN or sqlite:PATH (default $GORMCACHE_DSN)")
		identity := fs.String("identity", "", "with --sql: the plugin's Config.Identity, if the application sets it (`ID`)")
		return func(ctx context.Context, e *env, args []string) error {
			var key string
			switch {
			case *sqlText != "":
				if len(args) > 0 {
					return usagef("give KEY or --sql, not both")
				}
				k, err := keyOfSQL(ctx, e, envDefault(*dsn, "GORMCACHE_DSN"), *sqlText, sqlArgs, *identity)
				if err != nil {
					return err
				}
				key = k
			case len(args) != 1:
				return usagef("inspect takes one KEY (got %d arguments)", len(args))
			default:
				key = args[0]
				if key == "" {
					return usagef("empty KEY")
				}
				if !strings.Contains(key, ":") {
					key = e.g.prefix + ":" + strconv.Itoa(keys.FormatVersion) + ":" + key
				}
			}
			if *rows < -1 {
				return usagef("--rows must be -1 (all) or more, got %d", *rows)
			}
			return inspect(ctx, e, key, *rows, *asJSON)
		}
	},
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// report is what inspect prints for a query result (JSON field names).
type report struct {
	Key         string            `json:"key"`
	StoreKey    string            `json:"store_key,omitempty"`
	Store       string            `json:"store"`
	Kind        string            `json:"kind"` // "query" or "lowlevel"
	Bytes       int               `json:"bytes"`
	Compressed  bool              `json:"compressed,omitempty"`
	KeyMismatch bool              `json:"key_mismatch,omitempty"`
	Query       *canonicalQuery   `json:"query,omitempty"`
	Tables      []tableState      `json:"tables"`
	Fresh       *bool             `json:"fresh,omitempty"`
	Created     *time.Time        `json:"created,omitempty"`
	AgeSeconds  float64           `json:"age_seconds,omitempty"`
	TTL         string            `json:"ttl"`
	Columns     []columnJSON      `json:"columns,omitempty"`
	RowCount    int               `json:"row_count"`
	Rows        [][]any           `json:"rows,omitempty"`
	Value       any               `json:"value,omitempty"`
	Expires     *time.Time        `json:"expires,omitempty"`
	Notes       []string          `json:"notes,omitempty"`
	entry       *serializer.Entry // for text output
}

// tableState is one tag of an entry: the version it was stored under and
// the store's current one.
type tableState struct {
	Table   string `json:"table"` // "" when the CLI cannot name it
	Stored  uint64 `json:"stored"`
	Current uint64 `json:"current,omitempty"`
	// RowLevel: the table's own tag, which a row-level entry that found
	// every row it names does not depend on (its row tags follow)
	RowLevel bool `json:"row_level,omitempty"`
	Known    bool `json:"-"`
}

// rowTagsOf names the row tags of a row-level entry of a read of tables
// (one table) with n tags: those of the one top-level key condition of its
// SQL whose values make the count (the CLI does not know the table's key;
// with several candidates it names none).
func rowTagsOf(check []byte, tables []string, n int) []string {
	q, err := keys.ParseQuery(check)
	if err != nil || len(tables) != 1 || n <= len(tables)+1 {
		return nil
	}
	sh := invalidation.RowShape(invalidation.DialectOf(q.Dialect), q.SQL)
	if !sh.OK || sh.Op != invalidation.ShapeSelect || sh.Table != tables[0] {
		return nil
	}
	var found []string
	for _, c := range sh.Where {
		rt, _, ok := core.RowTags(sh.Table, c.Column, c.Values, q.Args)
		if ok && len(tables)+len(rt)+1 == n {
			if found != nil {
				return nil
			}
			found = rt
		}
	}
	return found
}

type columnJSON struct {
	Name     string `json:"name"`
	Type     string `json:"database_type"`
	ScanType string `json:"scan_type"`
	Nullable *bool  `json:"nullable,omitempty"`
}

func inspect(ctx context.Context, e *env, key string, rows int, asJSON bool) error {
	t, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer t.Close()
	cctx, cancel := e.withTimeout(ctx)
	raw, err := t.Get(cctx, key, nil, nil)
	cancel()
	if err != nil {
		return t.fail("get", err)
	}
	if raw == nil {
		hint := "or another store prefix (?prefix= in --store) or key prefix (--prefix)"
		if _, ok := keyPrefix(key); !ok {
			hint = "plugin keys look like gc:1:<hash>; give a low-level entry's key with its cache's prefix (ll:KEY)"
		}
		return &notFoundError{msg: fmt.Sprintf("no entry under %q in %s: never stored, expired, evicted or deleted — %s", key, t.describe(), hint)}
	}
	rep := &report{Key: key, Store: t.describe(), Bytes: len(raw)}
	if t.entryKey != nil {
		rep.StoreKey = t.entryKey(key)
	}
	if lowlevel.IsEntry(raw) {
		if err := rep.lowLevel(ctx, e, t, raw); err != nil {
			return err
		}
	} else if err := rep.query(ctx, e, t, raw, rows); err != nil {
		return err
	}
	if t.ttl != nil && rep.TTL == "" {
		cctx, cancel := e.withTimeout(ctx)
		d, forever, ok, why, err := t.ttl(cctx, key)
		cancel()
		switch {
		case err != nil:
			rep.TTL = "unknown (" + err.Error() + ")"
		case !ok:
			rep.TTL = "unknown (" + why + ")"
		case forever:
			rep.TTL = "none (kept until evicted)"
		default:
			rep.TTL = d.Round(time.Millisecond).String()
		}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.text(e.stdout, rows)
	}
	if why := rep.notLive(); why != "" {
		return &notFoundError{msg: fmt.Sprintf("the entry under %q is not live: %s", key, why)}
	}
	return nil
}

// notLive says why the application would not serve the entry, or "" when
// it would.
func (rep *report) notLive() string {
	switch {
	case rep.KeyMismatch:
		return "the key is not the hash of the entry's query"
	case rep.Fresh != nil && !*rep.Fresh:
		return "it is stale (a table it depends on was written since, or is held by a write in flight)"
	case rep.Expires != nil && !rep.Expires.After(time.Now()):
		return "it is past its expiry"
	}
	return ""
}

// query fills rep from a plugin entry.
func (rep *report) query(ctx context.Context, e *env, t *target, raw []byte, rows int) error {
	rep.Kind = "query"
	rep.Compressed = raw[0]&serializer.FlagCompressed != 0
	ent, err := serializer.Decode(raw)
	if err != nil {
		return fmt.Errorf("the entry under %q does not decode: %v — it is corrupt or was written by another version of gormcache; the plugin treats it as a miss and replaces it", rep.Key, err)
	}
	rep.entry = ent
	q, err := parseCheck(ent.Check)
	if err != nil {
		rep.Notes = append(rep.Notes, "the entry's canonical query does not decode: "+err.Error())
	} else {
		rep.Query = &q
	}
	if prefix, ok := keyPrefix(rep.Key); ok && (keys.Builder{Prefix: prefix}).Key(ent.Check) != rep.Key {
		rep.KeyMismatch = true
		rep.Notes = append(rep.Notes, "the key is not the hash of the entry's query (a hash collision, or written by another program): the plugin never serves it")
	}
	created := time.Unix(0, ent.Created)
	rep.Created = &created
	rep.AgeSeconds = time.Since(created).Seconds()

	// The tags: the read's tables (sorted, as the plugin has them), then
	// the global tag. Tables a view or declared dependency adds come before
	// "*" too, and cannot be named without the plugin's catalog.
	var named []string
	if rep.Query != nil {
		st := invalidation.Classify(invalidation.DialectOf(q.Dialect), q.SQL)
		if st.Kind == invalidation.Read && st.Complete {
			named = st.Tables
		}
	}
	n := len(ent.Versions)
	// A row-level read: its row tags come between the tables and "*".
	named = append(named, rowTagsOf(ent.Check, named, n)...)
	rep.Tables = make([]tableState, n)
	var tags []string
	var idx []int
	for i := range rep.Tables {
		rep.Tables[i].Stored = ent.Versions[i]
		switch {
		case i == n-1:
			rep.Tables[i].Table = store.GlobalTag
		case i < len(named) && len(named)+1 <= n:
			rep.Tables[i].Table = named[i]
		default:
			continue
		}
		if ent.Versions[i] == core.LooseVersion(rep.Tables[i].Table) {
			// A row-level entry that found all its rows ignores its table.
			rep.Tables[i].RowLevel = true
			continue
		}
		rep.Tables[i].Known = true
		tags = append(tags, rep.Tables[i].Table)
		idx = append(idx, i)
	}
	if len(named)+1 != n {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the entry depends on %d tags; its SQL names %d tables: the others come from views or plugin.Config.Dependencies, which the CLI does not know", n, len(named)+1))
	}
	if len(tags) > 0 {
		vs, err := readVersions(ctx, e, t, tags)
		if err != nil {
			return err
		}
		fresh := true
		for j, i := range idx {
			rep.Tables[i].Current = vs[j]
			if vs[j] != rep.Tables[i].Stored || vs[j] == 0 {
				fresh = false
			}
		}
		rep.Fresh = &fresh
	}

	rep.RowCount = ent.Rows
	for _, c := range ent.Columns {
		cj := columnJSON{Name: c.Name, Type: c.DatabaseTypeName, ScanType: c.ScanType}
		if c.HasNullable {
			nullable := c.Nullable
			cj.Nullable = &nullable
		}
		rep.Columns = append(rep.Columns, cj)
	}
	show := ent.Rows
	if rows >= 0 && rows < show {
		show = rows
	}
	nc := len(ent.Columns)
	for r := 0; r < show; r++ {
		row := make([]any, nc)
		for c := 0; c < nc; c++ {
			row[c] = jsonValue(ent.Values[r*nc+c])
		}
		rep.Rows = append(rep.Rows, row)
	}
	return nil
}

// keyPrefix is the prefix part of a plugin key (prefix ":" format ":" hash).
func keyPrefix(key string) (string, bool) {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return "", false
	}
	j := strings.LastIndexByte(key[:i], ':')
	if j <= 0 || key[j+1:i] != strconv.Itoa(keys.FormatVersion) {
		return "", false
	}
	return key[:j], true
}

// jsonValue is a driver value as JSON shows it: []byte as a string when it
// is valid UTF-8, else as "\x…" hex.
func jsonValue(v driver.Value) any {
	if b, ok := v.([]byte); ok {
		if utf8.Valid(b) {
			return string(b)
		}
		return `\x` + hex.EncodeToString(b)
	}
	return v
}

// formatValue is a driver value for a table cell, at most max runes (0: no
// limit).
func formatValue(v driver.Value, max int) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return formatBytes(x, max)
	case time.Time:
		s = x.Format(time.RFC3339Nano)
	case string:
		s = x
	default:
		s = fmt.Sprint(x)
	}
	return truncate(s, max)
}

func formatBytes(b []byte, max int) string {
	if utf8.Valid(b) {
		return truncate(strconv.Quote(string(b)), max)
	}
	return truncate(`\x`+hex.EncodeToString(b), max)
}

func truncate(s string, max int) string {
	s = strings.NewReplacer("\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s)
	if max > 0 && utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return string(r[:max-1]) + "…"
	}
	return s
}

func (rep *report) text(w io.Writer, rows int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "key\t%s\n", rep.Key)
	if rep.StoreKey != "" {
		fmt.Fprintf(tw, "store key\t%s\n", rep.StoreKey)
	}
	fmt.Fprintf(tw, "store\t%s\n", rep.Store)
	kind := "query result"
	if rep.Kind == "lowlevel" {
		kind = "low-level entry (package lowlevel)"
	}
	size := fmt.Sprintf("%s, %d bytes", kind, rep.Bytes)
	if rep.Compressed {
		size += ", S2-compressed"
	}
	fmt.Fprintf(tw, "entry\t%s\n", size)
	if q := rep.Query; q != nil {
		fmt.Fprintf(tw, "dialect\t%s\n", q.Dialect)
		fmt.Fprintf(tw, "identity\t%s\n", q.Identity)
		fmt.Fprintf(tw, "SQL\t%s\n", q.SQL)
		if len(q.Args) == 0 {
			fmt.Fprintf(tw, "args\t(none)\n")
		}
		for i, a := range q.Args {
			label := ""
			if i == 0 {
				label = "args"
			}
			fmt.Fprintf(tw, "%s\t%d: %s\n", label, i+1, a.display())
		}
	}
	for i, ts := range rep.Tables {
		label := ""
		if i == 0 {
			label = "tables"
		}
		name := ts.Table
		if name == "" {
			name = "(a dependency)"
		}
		name = strings.ReplaceAll(name, "\x1f", "␟")
		state := ""
		switch {
		case ts.RowLevel:
			state = "not compared: the entry found every row it names, and depends on their row tags instead"
		case !ts.Known:
			state = "current unknown"
		case ts.Current == 0:
			state = "now held by a write in flight"
		case ts.Current == ts.Stored:
			state = "unchanged"
		default:
			state = fmt.Sprintf("now %d: written since", ts.Current)
		}
		fmt.Fprintf(tw, "%s\t%s\tstored under %d, %s\n", label, name, ts.Stored, state)
	}
	if rep.Fresh != nil {
		if *rep.Fresh && !rep.KeyMismatch {
			fmt.Fprintf(tw, "state\tfresh: served to the next identical query\n")
		} else {
			fmt.Fprintf(tw, "state\tstale: never served again; it goes at its TTL or when evicted\n")
		}
	}
	if rep.Created != nil {
		fmt.Fprintf(tw, "created\t%s (%s ago)\n", rep.Created.Format(time.RFC3339Nano), time.Duration(rep.AgeSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	if rep.Expires != nil {
		fmt.Fprintf(tw, "expires\t%s\n", rep.Expires.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "TTL\t%s\n", rep.TTL)
	for _, n := range rep.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	if rep.Kind == "lowlevel" {
		tw.Flush()
		fmt.Fprintln(w, "value:")
		if err := writeJSON(w, rep.Value); err != nil {
			fmt.Fprintf(w, "%v\n", rep.Value)
		}
		return
	}
	if ent := rep.entry; ent != nil {
		var cols []string
		for _, c := range ent.Columns {
			s := c.Name + " " + c.DatabaseTypeName
			if c.HasNullable && c.Nullable {
				s += " null"
			}
			cols = append(cols, s)
		}
		fmt.Fprintf(tw, "columns\t%d: %s\n", len(ent.Columns), strings.Join(cols, ", "))
		shown := len(rep.Rows)
		fmt.Fprintf(tw, "rows\t%d", ent.Rows)
		if shown < ent.Rows {
			fmt.Fprintf(tw, " (showing %d; --rows N for more)", shown)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if ent := rep.entry; ent != nil && len(rep.Rows) > 0 {
		fmt.Fprintln(w)
		rw := tabwriter.NewWriter(w, 0, 4, 1, ' ', tabwriter.Debug)
		for _, c := range ent.Columns {
			fmt.Fprintf(rw, " %s\t", c.Name)
		}
		fmt.Fprintln(rw)
		nc := len(ent.Columns)
		for r := range rep.Rows {
			for c := 0; c < nc; c++ {
				fmt.Fprintf(rw, " %s\t", formatValue(ent.Values[r*nc+c], 48))
			}
			fmt.Fprintln(rw)
		}
		rw.Flush()
	}
}

// lowLevel fills rep from a low-level entry.
func (rep *report) lowLevel(ctx context.Context, e *env, t *target, raw []byte) error {
	rep.Kind = "lowlevel"
	le, err := lowlevel.DecodeEntry(raw)
	if err != nil {
		return fmt.Errorf("the entry under %q does not decode: %v", rep.Key, err)
	}
	var v any
	if err := msgpack.Unmarshal(le.Payload, &v); err != nil {
		rep.Notes = append(rep.Notes, "the value does not decode: "+err.Error())
	} else {
		rep.Value = jsonable(v)
	}
	if !le.Deadline.IsZero() {
		exp := le.Deadline
		rep.Expires = &exp
		if d := time.Until(exp); d > 0 {
			rep.TTL = d.Round(time.Millisecond).String()
		} else {
			rep.TTL = "expired"
		}
	} else {
		rep.TTL = "none (plugin.Forever: until invalidated or evicted)"
	}
	vs, err := readVersions(ctx, e, t, le.Tags)
	if err != nil {
		return err
	}
	fresh := true
	var tables []string
	for i, tag := range le.Tags {
		rep.Tables = append(rep.Tables, tableState{Table: tag, Stored: le.Versions[i], Current: vs[i], Known: true})
		if vs[i] == 0 || vs[i] != le.Versions[i] {
			fresh = false
		}
		if tag != store.GlobalTag && !strings.HasPrefix(tag, "*") {
			tables = append(tables, tag)
		}
	}
	rep.Fresh = &fresh
	for _, tag := range le.Tags {
		// The cache's namespace tag names its prefix.
		llPrefix, ok := lowlevel.NamespacePrefix(tag)
		if !ok || !strings.HasPrefix(rep.Key, llPrefix+":") {
			continue
		}
		get := "gormcache get " + strings.TrimPrefix(rep.Key, llPrefix+":")
		if llPrefix != "ll" {
			get += " --ll-prefix " + llPrefix
		}
		if len(tables) > 0 {
			get += " --tables " + strings.Join(tables, ",")
		}
		rep.Notes = append(rep.Notes, "read it as the application does: "+get)
	}
	return nil
}

// keyOfSQL computes the plugin's key of a query, as plugin.Explain does.
func keyOfSQL(ctx context.Context, e *env, dsn, sqlText string, rawArgs []string, identity string) (string, error) {
	if dsn == "" {
		return "", usagef("--sql needs --dsn (or GORMCACHE_DSN): the database identity is part of the key")
	}
	args := make([]any, len(rawArgs))
	for i, a := range rawArgs {
		v, err := parseJSONValue(a)
		if err != nil {
			return "", usagef("--arg %q is not JSON (%v): write 42, 4.5, '\"text\"', true or null", a, err)
		}
		args[i] = v
	}
	dial, name, err := dialectorFor(dsn)
	if err != nil {
		return "", err
	}
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard, DisableAutomaticPing: true})
	if err != nil {
		return "", fmt.Errorf("cannot connect to the %s database: %v — is the server running? check --dsn", name, err)
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
		cctx, cancel := e.withTimeout(ctx)
		err = sqlDB.PingContext(cctx)
		cancel()
		if err != nil {
			return "", fmt.Errorf("cannot connect to the %s database: %s — is the server running? check --dsn", name, netReason(err, e.g.timeout))
		}
	}
	p := plugin.New(plugin.Config{Prefix: e.g.prefix, Identity: identity, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := db.Use(p); err != nil {
		return "", fmt.Errorf("install the plugin: %w", err)
	}
	defer p.Close()
	tx := db.Session(&gorm.Session{DryRun: true}).Raw("SELECT 1")
	tx.Statement.SQL.Reset()
	tx.Statement.SQL.WriteString(sqlText)
	tx.Statement.Vars = args
	ex, err := p.Explain(tx)
	if err != nil {
		return "", err
	}
	if !ex.Cacheable {
		what := "not cacheable"
		if ex.Write {
			what = "a write, never cached"
		}
		return "", fmt.Errorf("the plugin would not cache this statement: %s (%s)", what, ex.Reason)
	}
	fmt.Fprintf(e.stderr, "key of the query: %s\n", ex.Key)
	return ex.Key, nil
}
