package plugin_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// What the catalog tells about views, triggers and rules, followed against
// the real servers.

// logBuffer collects a plugin's logs for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// secondIsHit reads q twice and reports whether the second read was a hit.
func secondIsHit(t *testing.T, db *gorm.DB, p *plugin.Plugin, q string) bool {
	t.Helper()
	countOf(t, db, q)
	hits := p.Stats().Hits
	countOf(t, db, q)
	return p.Stats().Hits > hits
}

// TestViewOverVolatileFunction: a view whose body calls random() or reads
// the clock is not cached (plain GORM sees a new value each time), nor is a
// view over such a view; on PostgreSQL, a view calling a function the plugin
// does not know bypasses and, like a read calling it, invalidates everything.
func TestViewOverVolatileFunction(t *testing.T) {
	t.Parallel()
	random := map[string]string{"postgres": "random()", "mysql": "rand()", "sqlite": "random()"}
	recent := map[string]string{
		"postgres": "at > now() - interval '1 hour'",
		"mysql":    "at > now() - interval 1 hour",
		"sqlite":   "at > datetime('now', '-1 hour')",
	}
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			execAll(t, db,
				`CREATE TABLE pets (id int PRIMARY KEY, name varchar(20))`,
				`INSERT INTO pets VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f'), (7, 'g'), (8, 'h'), (9, 'i'), (10, 'j')`,
				`CREATE TABLE events (id int PRIMARY KEY, at timestamp NULL)`,
				`CREATE VIEW lucky AS SELECT name FROM pets ORDER BY `+random[dialect]+` LIMIT 1`,
				`CREATE VIEW luckier AS SELECT name FROM lucky`,
				`CREATE VIEW recent AS SELECT id FROM events WHERE `+recent[dialect],
				`CREATE VIEW plain_pets AS SELECT name FROM pets`,
			)
			for _, view := range []string{"lucky", "luckier"} {
				seen := map[string]bool{}
				for i := 0; i < 20; i++ {
					var name string
					if err := db.Raw(`SELECT name FROM ` + view).Scan(&name).Error; err != nil {
						t.Fatal(err)
					}
					seen[name] = true
				}
				if len(seen) < 2 {
					t.Errorf("%s: %d distinct value in 20 reads of a view ordered by %s (cached)", view, len(seen), random[dialect])
				}
			}
			before := p.Stats().Bypasses["volatile_function"]
			if secondIsHit(t, db, p, `SELECT count(*) FROM recent`) {
				t.Errorf("a view filtered by the clock (%s) is served from the cache", recent[dialect])
			}
			if got := p.Stats().Bypasses["volatile_function"]; got < before+2 {
				t.Errorf("reads of the clock view: %d volatile_function bypasses, want 2", got-before)
			}
			if !secondIsHit(t, db, p, `SELECT count(*) FROM plain_pets`) {
				t.Errorf("a plain view is not cached")
			}
		})
	}
	t.Run("postgres/unknown function", func(t *testing.T) {
		t.Parallel()
		db, p := cachedDB(t, "postgres", plugin.Config{})
		execAll(t, db,
			`CREATE TABLE pets (id int PRIMARY KEY, name text)`,
			`CREATE TABLE visits (n int)`,
			`INSERT INTO visits VALUES (0)`,
			`CREATE FUNCTION visit() RETURNS int LANGUAGE sql AS $$ UPDATE visits SET n = n + 1 RETURNING n $$`,
			`CREATE VIEW counted AS SELECT visit() AS n`,
		)
		const q = `SELECT n FROM visits`
		countOf(t, db, q)
		countOf(t, db, `SELECT n FROM counted`)
		if got, want := countOf(t, db, q), truthOf(t, db, q); got != want {
			t.Errorf("visits = %d through the cache after a view's function wrote it, %d in the database", got, want)
		}
		before := p.Stats().Bypasses["volatile_function"]
		countOf(t, db, `SELECT n FROM counted`)
		if p.Stats().Bypasses["volatile_function"] == before {
			t.Errorf("a read of a view calling an unknown function is not a volatile_function bypass")
		}
	})
}

// TestViewBodyParsed: the body of a SQLite view is found by the SQL
// tokenizer: a comment or a quoted view name that reads like "as select …
// --" does not hide the tables the view reads.
func TestViewBodyParsed(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "sqlite", plugin.Config{})
	execAll(t, db,
		`CREATE TABLE pets (id int PRIMARY KEY, name text)`,
		`CREATE TABLE companies (id int PRIMARY KEY, name text)`,
		`INSERT INTO pets VALUES (1, 'a')`,
		`CREATE VIEW pet_names /* kept as select name from companies -- for now */ AS SELECT name FROM pets`,
		`CREATE VIEW "odd as select name from companies --" AS SELECT name FROM pets`,
	)
	for _, view := range []string{`pet_names`, `"odd as select name from companies --"`} {
		q := `SELECT count(*) FROM ` + view
		countOf(t, db, q)
		countOf(t, db, q)
		if err := db.Exec(`INSERT INTO pets (id, name) SELECT max(id) + 1, 'x' FROM pets`).Error; err != nil {
			t.Fatal(err)
		}
		if got, want := countOf(t, db, q), truthOf(t, db, q); got != want {
			t.Errorf("%s = %d through the cache after an insert into pets, %d in the database (stale)", view, got, want)
		}
	}
}

// TestTriggerInCLanguage: a PostgreSQL trigger whose function is written in
// C (contrib's refint: check_foreign_key deletes the referencing rows) may
// write anything: each write to its table invalidates everything, with a
// warning, unless Config.Dependencies says where it writes. A built-in
// trigger known to change only its own row (suppress_redundant_updates_trigger)
// does not widen writes.
func TestTriggerInCLanguage(t *testing.T) {
	t.Parallel()
	for _, declared := range []bool{false, true} {
		var logs logBuffer
		cfg := plugin.Config{Logger: logs.logger()}
		if declared {
			cfg.Dependencies = map[string][]string{"kids": {"parents"}}
		}
		db, _ := cachedDB(t, "postgres", cfg)
		execAll(t, db,
			`CREATE EXTENSION refint`,
			`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
			`CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint)`,
			`INSERT INTO parents VALUES (1, 'a'), (2, 'b')`,
			`INSERT INTO kids VALUES (1, 1), (2, 1), (3, 2)`,
			`CREATE TRIGGER parents_cascade BEFORE DELETE OR UPDATE ON parents FOR EACH ROW
			 EXECUTE FUNCTION check_foreign_key(1, 'cascade', 'id', 'kids', 'parent_id')`,
		)
		const q = `SELECT count(*) FROM kids`
		countOf(t, db, q)
		countOf(t, db, q)
		if err := db.Exec(`DELETE FROM parents WHERE id = 1`).Error; err != nil {
			t.Fatal(err)
		}
		if got, want := countOf(t, db, q), truthOf(t, db, q); got != want || want != 1 {
			t.Errorf("declared=%v: kids = %d through the cache after the C trigger deleted two, %d in the database (want 1)", declared, got, want)
		}
		warned := strings.Contains(logs.String(), "parents")
		if warned == declared {
			t.Errorf("declared=%v: warned about parents' trigger: %v; logs:\n%s", declared, warned, logs.String())
		}
	}
	db, p := cachedDB(t, "postgres", plugin.Config{})
	execAll(t, db,
		`CREATE TABLE others (id bigint PRIMARY KEY, v int)`,
		`CREATE TABLE unrelated (id bigint PRIMARY KEY)`,
		`INSERT INTO others VALUES (1, 1)`,
		`CREATE TRIGGER others_same BEFORE UPDATE ON others FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`,
	)
	countOf(t, db, `SELECT count(*) FROM unrelated`)
	if err := db.Exec(`UPDATE others SET v = 2`).Error; err != nil {
		t.Fatal(err)
	}
	if !secondIsHit(t, db, p, `SELECT count(*) FROM unrelated`) {
		t.Errorf("a write to a table with suppress_redundant_updates_trigger invalidated an unrelated table")
	}
}

// TestCatalogRuleWritesElsewhere: a PostgreSQL rule (CREATE RULE … DO ALSO INSERT
// INTO audit) makes each write to its table bump the tables the rule writes;
// a rule calling a function the plugin does not know makes each write to its
// table invalidate everything.
func TestCatalogRuleWritesElsewhere(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	execAll(t, db,
		`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
		`CREATE TABLE audit (id bigserial PRIMARY KEY, msg text)`,
		`CREATE TABLE others (id bigint PRIMARY KEY)`,
		`CREATE TABLE logged (id bigint PRIMARY KEY)`,
		`CREATE TABLE unrelated (id bigint PRIMARY KEY)`,
		`INSERT INTO parents VALUES (1, 'a')`,
		`CREATE RULE parents_log AS ON UPDATE TO parents DO ALSO INSERT INTO audit (msg) VALUES ('renamed ' || NEW.id)`,
		`CREATE FUNCTION note(bigint) RETURNS bigint LANGUAGE sql AS $$ INSERT INTO audit (msg) VALUES ('logged ' || $1) RETURNING id $$`,
		`CREATE RULE logged_note AS ON INSERT TO logged DO ALSO SELECT note(NEW.id)`,
	)
	const q = `SELECT count(*) FROM audit`
	countOf(t, db, q)
	countOf(t, db, q)
	if !secondIsHit(t, db, p, `SELECT count(*) FROM others`) {
		t.Fatal("reads are not cached")
	}
	if err := db.Exec(`UPDATE parents SET name = 'b' WHERE id = 1`).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := countOf(t, db, q), truthOf(t, db, q); got != want || want != 1 {
		t.Errorf("audit = %d through the cache after the rule wrote it, %d in the database (want 1)", got, want)
	}
	if !secondIsHit(t, db, p, `SELECT count(*) FROM others`) {
		t.Errorf("the rule writing audit invalidated an unrelated table")
	}
	countOf(t, db, `SELECT count(*) FROM unrelated`)
	if err := db.Exec(`INSERT INTO logged VALUES (1)`).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := countOf(t, db, q), truthOf(t, db, q); got != want || want != 2 {
		t.Errorf("audit = %d through the cache after a rule's function wrote it, %d in the database (want 2)", got, want)
	}
	hits := p.Stats().Hits
	countOf(t, db, `SELECT count(*) FROM unrelated`)
	if p.Stats().Hits > hits {
		t.Errorf("a write through a rule calling an unknown function did not invalidate everything")
	}
}

// TestTriggerHiddenFromUser: MariaDB shows a user without the TRIGGER
// privilege a table's triggers but not their bodies (MySQL hides them
// altogether): the plugin cannot tell what they write, so each write to
// such a table invalidates everything, and one warning says how to fix it.
func TestTriggerHiddenFromUser(t *testing.T) {
	t.Parallel()
	root := testdb.Open(t, "mysql", &gorm.Config{Logger: logger.Discard})
	var dbName string
	if err := root.Raw(`SELECT DATABASE()`).Scan(&dbName).Error; err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	user := "gcapp_" + hex.EncodeToString(b[:])
	execAll(t, root,
		`CREATE TABLE parents (id bigint PRIMARY KEY, name varchar(20))`,
		`CREATE TABLE audit (id bigint AUTO_INCREMENT PRIMARY KEY, msg varchar(40))`,
		`CREATE TABLE others (id bigint PRIMARY KEY)`,
		`INSERT INTO parents VALUES (1, 'a')`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents FOR EACH ROW INSERT INTO audit (msg) VALUES (CONCAT('renamed ', NEW.id))`,
		`CREATE USER '`+user+`'@'%'`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON `+"`"+dbName+"`"+`.* TO '`+user+`'@'%'`,
	)
	t.Cleanup(func() { root.Exec(`DROP USER IF EXISTS '` + user + `'@'%'`) })

	var logs logBuffer
	db, err := gorm.Open(mysql.Open(user+":@tcp(127.0.0.1:3306)/"+dbName+"?parseTime=true"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	p := plugin.New(plugin.Config{Logger: logs.logger()})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	const q = `SELECT count(*) FROM audit`
	countOf(t, db, q)
	countOf(t, db, q)
	if err := db.Exec(`UPDATE parents SET name = 'b' WHERE id = 1`).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := countOf(t, db, q), truthOf(t, db, q); got != want || want != 1 {
		t.Errorf("audit = %d through the cache after a trigger the user cannot read wrote it, %d in the database (want 1)", got, want)
	}
	if n := strings.Count(logs.String(), "TRIGGER privilege"); n != 1 {
		t.Errorf("%d warnings naming the TRIGGER privilege, want 1; logs:\n%s", n, logs.String())
	}
	// A table without triggers keeps its entries when others are written.
	if !secondIsHit(t, db, p, `SELECT count(*) FROM parents`) {
		t.Fatal("reads are not cached")
	}
	if err := db.Exec(`INSERT INTO others VALUES (1)`).Error; err != nil {
		t.Fatal(err)
	}
	hits := p.Stats().Hits
	countOf(t, db, `SELECT count(*) FROM parents`)
	if p.Stats().Hits == hits {
		t.Errorf("a write to a table without triggers invalidated another table (MariaDB shows which tables have triggers)")
	}
}
