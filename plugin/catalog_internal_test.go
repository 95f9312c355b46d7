package plugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestCatalogPostgresTriggerLanguages: only sql and plpgsql trigger bodies
// are read; a function in any other language may write anything, except
// the built-ins known to change only their row. (The server here has no
// plpython or plperl to create one with; the rows are what pg_trigger,
// pg_proc and pg_language would give.)
func TestCatalogPostgresTriggerLanguages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, lang, schema, fn, body string
		unknown                      bool
	}{
		{"plpgsql setting NEW", "plpgsql", "public", "touch", `BEGIN NEW.at := now(); RETURN NEW; END`, false},
		{"plpgsql inserting", "plpgsql", "public", "audit", `BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END`, true},
		{"temporal_tables versioning (C)", "c", "public", "versioning", `versioning`, true},
		{"pgq logutriga (C)", "c", "pgq", "logutriga", `pgq_logutriga`, true},
		{"internal outside pg_catalog", "internal", "public", "mine", `suppress_redundant_updates_trigger`, true},
		{"plpython3u", "plpython3u", "public", "audit", `plpy.execute("INSERT INTO audit VALUES (1)")`, true},
		{"plpython3u writing nothing visible", "plpython3u", "public", "quiet", `return "OK"`, true},
		{"plperl", "plperl", "public", "audit", `spi_exec_query("select 1"); return;`, true},
		{"suppress_redundant_updates_trigger", "internal", "pg_catalog", "suppress_redundant_updates_trigger", `suppress_redundant_updates_trigger`, false},
		{"tsvector_update_trigger", "internal", "pg_catalog", "tsvector_update_trigger", `tsvector_update_trigger_byid`, false},
		{"other built-in", "internal", "pg_catalog", "RI_FKey_cascade_del", `RI_FKey_cascade_del`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFacts()
			f.addPostgresTrigger("t", c.lang, c.schema, c.fn, c.body)
			if f.badTrigger["t"] != c.unknown {
				t.Errorf("%s trigger %s.%s: writes unknown = %v, want %v", c.lang, c.schema, c.fn, f.badTrigger["t"], c.unknown)
			}
		})
	}
}

// TestCatalogPostgresRuleDependencies: each pg_depend row of a rule.
func TestCatalogPostgresRuleDependencies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		rows          [][2]string // class, relation
		writes        []string
		unknown       bool
		ruleIsTracked bool
	}{
		// (every rule writes rows of its own table the statement does not
		// name: its action may write it, an INSTEAD rule replaces the
		// statement)
		{"DO INSTEAD NOTHING", [][2]string{{"", ""}}, []string{"t"}, false, true},
		{"DO ALSO INSERT INTO audit", [][2]string{{"pg_class", "t"}, {"pg_class", "audit"}, {"pg_type", ""}}, []string{"t", "audit"}, false, true},
		{"calls a function", [][2]string{{"pg_class", "t"}, {"pg_proc", ""}}, []string{"t"}, true, true},
		{"uses an operator", [][2]string{{"pg_operator", ""}}, []string{"t"}, true, true},
		{"something else", [][2]string{{"pg_foreign_server", ""}}, []string{"t"}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFacts()
			for _, r := range c.rows {
				f.addPostgresRule("t", r[0], r[1])
			}
			if got := f.triggers["t"]; !slices.Equal(got, c.writes) {
				t.Errorf("writes %v, want %v", got, c.writes)
			}
			if f.badTrigger["t"] != c.unknown {
				t.Errorf("unknown = %v, want %v", f.badTrigger["t"], c.unknown)
			}
		})
	}
}

// TestCatalogHiddenTriggers runs MySQL's check (which tables' triggers the
// user may not see) on the MariaDB server, as users with and without the
// TRIGGER privilege.
func TestCatalogHiddenTriggers(t *testing.T) {
	t.Parallel()
	root, err := sql.Open("mysql", testdb.MySQLAdmin)
	if err == nil {
		err = root.Ping()
	}
	if err != nil {
		testdb.Unavailable(t, "mysql", err)
	}
	t.Cleanup(func() { root.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	dbName := "gctest_" + suffix
	users := map[string]string{ // user → its grant of TRIGGER
		"gcnone_" + suffix:   "",
		"gctable_" + suffix:  "GRANT TRIGGER ON `" + dbName + "`.`has_grant` TO '%s'@'%%'",
		"gcschema_" + suffix: "GRANT TRIGGER ON `" + dbName + "`.* TO '%s'@'%%'",
	}
	exec := func(q string) {
		t.Helper()
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE DATABASE `" + dbName + "`")
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS `" + dbName + "`") })
	inDB, err := sql.Open("mysql", "root:@tcp(127.0.0.1:3306)/"+dbName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inDB.Close() })
	for _, q := range []string{
		"CREATE TABLE has_trigger (id int PRIMARY KEY)",
		"CREATE TABLE audit (id int AUTO_INCREMENT PRIMARY KEY)",
		"CREATE TABLE has_grant (id int PRIMARY KEY)",
		"CREATE TABLE plain (id int PRIMARY KEY)",
		"CREATE TRIGGER t_ai AFTER INSERT ON has_trigger FOR EACH ROW INSERT INTO audit VALUES ()",
		"CREATE VIEW v AS SELECT id FROM plain",
	} {
		if _, err := inDB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	want := map[string][]string{
		"gcnone_" + suffix:   {"audit", "has_grant", "plain"}, // has_trigger's trigger is listed (body NULL)
		"gctable_" + suffix:  {"audit", "plain"},
		"gcschema_" + suffix: nil,
	}
	for user, grant := range users {
		exec("CREATE USER '" + user + "'@'%'")
		t.Cleanup(func() { root.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
		exec("GRANT SELECT, INSERT, UPDATE, DELETE ON `" + dbName + "`.* TO '" + user + "'@'%'")
		if grant != "" {
			exec(strings.ReplaceAll(strings.Replace(grant, "%s", user, 1), "%%", "%"))
		}
		app, err := sql.Open("mysql", user+":@tcp(127.0.0.1:3306)/"+dbName)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Close() })
		f := newFacts()
		if err := readHiddenTriggers(context.Background(), app, f); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if got := sortedKeys(f.unseen); !slices.Equal(got, want[user]) && !(len(got) == 0 && len(want[user]) == 0) {
			t.Errorf("%s: tables whose triggers may be hidden: %v, want %v", strings.SplitN(user, "_", 2)[0], got, want[user])
		}
		// The whole MariaDB read: has_trigger's body is NULL for the users
		// without the privilege on it.
		f = newFacts()
		if err := readMySQL(context.Background(), app, f); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		wantUnseen := grant == "" || strings.Contains(grant, "has_grant")
		if f.unseen["has_trigger"] != wantUnseen {
			t.Errorf("%s: has_trigger's trigger unreadable: %v, want %v", user, f.unseen["has_trigger"], wantUnseen)
		}
	}
}

// TestCatalogUnseenTriggersGraph: tables whose triggers the user cannot
// read make their writes invalidate everything, with one warning naming
// them all, except a table Config.Dependencies names as a source.
func TestCatalogUnseenTriggersGraph(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	p := New(Config{Dependencies: map[string][]string{"audit": {"declared"}}})
	p.log = slog.New(slog.NewTextHandler(&logs, nil))
	p.dialect = invalidation.MySQL
	f := newFacts()
	for _, tb := range []string{"orders", "payments", "declared"} {
		f.unseen[tb] = true
	}
	for i := 0; i < 2; i++ { // a reload warns no more
		g := p.buildDeps(f)
		for _, tb := range []string{"orders", "payments"} {
			if got := g.writeTags([]string{tb}); !slices.Equal(got, globalOnly) {
				t.Errorf("a write to %s bumps %v, want everything", tb, got)
			}
		}
		if got := g.writeTags([]string{"declared"}); slices.Contains(got, store.GlobalTag) {
			t.Errorf("a write to a declared table bumps %v", got)
		}
	}
	if n := strings.Count(logs.String(), "TRIGGER privilege"); n != 1 || !strings.Contains(logs.String(), "orders, payments") {
		t.Errorf("want one warning naming orders and payments, got:\n%s", logs.String())
	}
}

// TestCatalogViewFunctions: a view's functions are judged as a read's, and
// the judgement follows views over views; Config.StableFunctions applies.
func TestCatalogViewFunctions(t *testing.T) {
	t.Parallel()
	p := New(Config{})
	p.dialect = invalidation.SQLite
	p.stable = map[string]bool{"my_stable": true}
	p.log = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	f := newFacts()
	for _, v := range []struct{ name, sql string }{
		{"lucky", `CREATE VIEW lucky AS SELECT name FROM pets ORDER BY random() LIMIT 1`},
		{"luckier", `CREATE VIEW luckier AS SELECT * FROM lucky`},
		{"recent", `CREATE VIEW recent AS SELECT id FROM events WHERE at > datetime('now', '-1 day')`},
		{"calls", `CREATE VIEW calls AS SELECT my_func(id) FROM pets`},
		{"over_calls", `CREATE VIEW over_calls AS SELECT * FROM calls`},
		{"declared_stable", `CREATE VIEW declared_stable AS SELECT my_stable(id) FROM pets`},
		{"names", `CREATE VIEW names /* as select name from companies -- */ AS SELECT upper(name) FROM pets`},
		{"catalog", `CREATE VIEW catalog AS SELECT name FROM sqlite_master`},
	} {
		f.addSQLiteView(v.name, v.sql)
	}
	g := p.buildDeps(f)
	cases := []struct {
		view   string
		reason Reason
		writes bool
		tags   []string
	}{
		{"lucky", ReasonVolatile, false, nil},
		{"luckier", ReasonVolatile, false, nil},
		{"recent", ReasonVolatile, false, nil},
		{"calls", ReasonVolatile, true, nil},
		{"over_calls", ReasonVolatile, true, nil},
		{"declared_stable", "", false, []string{"declared_stable", "pets", store.GlobalTag}},
		{"names", "", false, []string{"names", "pets", store.GlobalTag}},
		{"catalog", ReasonCatalog, false, nil},
	}
	for _, c := range cases {
		tags, reason, writes := g.readTags([]string{c.view})
		if reason != c.reason || writes != c.writes || !slices.Equal(tags, c.tags) {
			t.Errorf("%s: tags %v, reason %q, writes %v; want %v, %q, %v", c.view, tags, reason, writes, c.tags, c.reason, c.writes)
		}
	}
}

// FuzzCatalogSQLiteView: any CREATE VIEW text is either refused (the view
// is not cached) or yields at least one table, none of them the view.
func FuzzCatalogSQLiteView(f *testing.F) {
	for _, s := range []string{
		`CREATE VIEW v AS SELECT a FROM t`,
		`CREATE VIEW v /* as select x from y -- */ AS SELECT a FROM t`,
		`CREATE VIEW "v as select x from y --" AS SELECT a FROM t`,
		`CREATE TEMP VIEW IF NOT EXISTS v(a) AS WITH c AS (SELECT a FROM t) SELECT a FROM c`,
		`CREATE VIEW v AS VALUES (1)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, create string) {
		facts := newFacts()
		facts.addSQLiteView("v", create)
		tables := facts.views["v"]
		if facts.badViews["v"] != (len(tables) == 0) || slices.Contains(tables, "v") {
			t.Errorf("%q: bad %v, tables %v", create, facts.badViews["v"], tables)
		}
	})
}

// Tables of one name in two schemas share their tags: keyed only when both
// have the same one-column integer key.
func TestAddKeysSchemas(t *testing.T) {
	f := newFacts()
	integer := func(typ string) bool { return typ == "bigint" }
	f.addKeys([][3]string{
		{"accounts", "id", "bigint"}, {"s2.accounts", "pk", "bigint"},
		{"users", "id", "bigint"}, {"s2.users", "id", "bigint"},
		{"orders", "id", "bigint"}, {"s2.orders", "a", "bigint"}, {"s2.orders", "b", "bigint"},
		{"tags", "id", "text"}, {"s2.tags", "id", "bigint"},
		{"plain", "id", "bigint"},
	}, integer)
	want := map[string]string{"users": "id", "plain": "id"}
	if len(f.keys) != len(want) {
		t.Fatalf("keys %v, want %v", f.keys, want)
	}
	for k, v := range want {
		if f.keys[k] != v {
			t.Fatalf("keys %v, want %v", f.keys, want)
		}
	}
}

// A read planned under one catalog whose versions are read after the
// catalog was read again is served but not stored: its plan's row tags may
// key a column that is keyed no more (a dropped index), which writes under
// the new catalog do not bump.
func TestPlanOfAnOldCatalogIsNotStored(t *testing.T) {
	t.Parallel()
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	p := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := db.Exec("CREATE TABLE docs (id INTEGER PRIMARY KEY, tenant_id INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	db.Exec("SELECT 1") // (the catalog is read again before a statement)
	const q = "SELECT * FROM docs WHERE id = ?"
	pl := p.planFor(q)
	if !pl.cacheable {
		t.Fatalf("plan: %+v", pl)
	}
	old := p.deps.graph.Load()
	next := *old
	p.deps.graph.Store(&next) // the catalog read again
	pr := p.probeQuery(context.Background(), db.Statement.ConnPool, pl, q, []any{1}, nil)
	defer pr.release()
	if pr.noStore != ReasonNoCatalog {
		t.Fatalf("a read of a plan of the old catalog: noStore %q, bypass %q", pr.noStore, pr.bypass)
	}
	pr2 := p.probeQuery(context.Background(), db.Statement.ConnPool, p.planFor(q), q, []any{1}, nil)
	defer pr2.release()
	if pr2.noStore != "" || pr2.bypass != "" {
		t.Fatalf("a read of a fresh plan: noStore %q, bypass %q", pr2.noStore, pr2.bypass)
	}
}
