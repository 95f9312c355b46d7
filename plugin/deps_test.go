package plugin_test

import (
	"context"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
)

// Parent is the parent of the dependency tests' foreign keys.
type Parent struct {
	ID   int64
	Name string
}

// depSchema creates, per dialect: kids (ON DELETE CASCADE from parents),
// grandkids (cascading from kids), nullkids (ON DELETE SET NULL), a view
// over parents and kids, an audit table written by a trigger on parents, a
// harmless trigger on kids, and an unrelated table.
var depSchema = map[string][]string{
	"postgres": {
		`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
		`CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents(id) ON DELETE CASCADE, name text)`,
		`CREATE TABLE grandkids (id bigint PRIMARY KEY, kid_id bigint REFERENCES kids(id) ON DELETE CASCADE)`,
		`CREATE TABLE nullkids (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents(id) ON DELETE SET NULL)`,
		`CREATE VIEW parent_kids AS SELECT p.id, p.name, k.name AS kid FROM parents p JOIN kids k ON k.parent_id = p.id`,
		`CREATE TABLE audit (id bigserial PRIMARY KEY, msg text)`,
		`CREATE FUNCTION audit_parent() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (msg) VALUES ('updated ' || NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents FOR EACH ROW EXECUTE FUNCTION audit_parent()`,
		`CREATE FUNCTION upper_kid() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$`,
		`CREATE TRIGGER kids_upper BEFORE INSERT ON kids FOR EACH ROW EXECUTE FUNCTION upper_kid()`,
		`CREATE TABLE others (id bigint PRIMARY KEY)`,
	},
	"mysql": {
		`CREATE TABLE parents (id bigint PRIMARY KEY, name varchar(64)) ENGINE=InnoDB`,
		`CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint, name varchar(64), FOREIGN KEY (parent_id) REFERENCES parents(id) ON DELETE CASCADE) ENGINE=InnoDB`,
		`CREATE TABLE grandkids (id bigint PRIMARY KEY, kid_id bigint, FOREIGN KEY (kid_id) REFERENCES kids(id) ON DELETE CASCADE) ENGINE=InnoDB`,
		`CREATE TABLE nullkids (id bigint PRIMARY KEY, parent_id bigint NULL, FOREIGN KEY (parent_id) REFERENCES parents(id) ON DELETE SET NULL) ENGINE=InnoDB`,
		`CREATE VIEW parent_kids AS SELECT p.id, p.name, k.name AS kid FROM parents p JOIN kids k ON k.parent_id = p.id`,
		`CREATE TABLE audit (id bigint AUTO_INCREMENT PRIMARY KEY, msg varchar(64))`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents FOR EACH ROW INSERT INTO audit (msg) VALUES (CONCAT('updated ', NEW.id))`,
		`CREATE TRIGGER kids_upper BEFORE INSERT ON kids FOR EACH ROW SET NEW.name = UPPER(NEW.name)`,
		`CREATE TABLE others (id bigint PRIMARY KEY)`,
	},
	"sqlite": {
		`CREATE TABLE parents (id integer PRIMARY KEY, name text)`,
		`CREATE TABLE kids (id integer PRIMARY KEY, parent_id integer REFERENCES parents(id) ON DELETE CASCADE, name text)`,
		`CREATE TABLE grandkids (id integer PRIMARY KEY, kid_id integer REFERENCES kids(id) ON DELETE CASCADE)`,
		`CREATE TABLE nullkids (id integer PRIMARY KEY, parent_id integer REFERENCES parents(id) ON DELETE SET NULL)`,
		`CREATE VIEW parent_kids AS SELECT p.id, p.name, k.name AS kid FROM parents p JOIN kids k ON k.parent_id = p.id`,
		`CREATE TABLE audit (id integer PRIMARY KEY AUTOINCREMENT, msg text)`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents BEGIN INSERT INTO audit (msg) VALUES ('updated ' || NEW.id); END`,
		`CREATE TABLE others (id integer PRIMARY KEY)`,
	},
}

var depSeed = []string{
	`INSERT INTO parents (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')`,
	`INSERT INTO kids (id, parent_id, name) VALUES (1, 1, 'k1'), (2, 1, 'k2'), (3, 2, 'k3'), (4, 3, 'k4')`,
	`INSERT INTO grandkids (id, kid_id) VALUES (1, 3), (2, 4)`,
	`INSERT INTO nullkids (id, parent_id) VALUES (1, 1), (2, 2)`,
	`INSERT INTO others (id) VALUES (1)`,
}

// depReads are counted both through the cache and, as the truth, inside a
// transaction (which always reads the database).
var depReads = []string{
	`SELECT count(*) FROM kids`,
	`SELECT count(*) FROM grandkids`,
	`SELECT count(*) FROM nullkids WHERE parent_id IS NULL`,
	`SELECT count(*) FROM parent_kids`,
	`SELECT count(*) FROM parent_kids WHERE name = 'z'`,
	`SELECT count(*) FROM audit`,
}

func depSetup(t *testing.T, dialect string, cfg plugin.Config) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db, p := cachedDB(t, dialect, cfg)
	for _, q := range append(append([]string(nil), depSchema[dialect]...), depSeed...) {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, p
}

func countOf(t *testing.T, db *gorm.DB, q string) int64 {
	t.Helper()
	var n int64
	if err := db.Raw(q).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func truthOf(t *testing.T, db *gorm.DB, q string) int64 {
	t.Helper()
	var n int64
	err := db.Transaction(func(tx *gorm.DB) error { return tx.Raw(q).Scan(&n).Error })
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestCascadesViewsTriggers: writes that change other tables through
// foreign-key cascades, views and triggers invalidate those tables' cached
// reads, on every dialect.
func TestCascadesViewsTriggers(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := depSetup(t, dialect, plugin.Config{})
			check := func(after string) {
				t.Helper()
				for _, q := range depReads {
					want := truthOf(t, db, q)
					for i := 0; i < 2; i++ {
						if got := countOf(t, db, q); got != want {
							t.Errorf("after %s: %s = %d through the cache, %d in the database", after, q, got, want)
						}
					}
				}
			}
			check("seed")
			hits := p.Stats().Hits
			check("seed, cached")
			if p.Stats().Hits-hits < uint64(len(depReads)) {
				t.Fatalf("the reads are not served from the cache: %d hits", p.Stats().Hits-hits)
			}
			steps := []struct {
				name string
				run  func() error
			}{
				{"delete parent 2 (cascade to kids, grandkids; SET NULL on nullkids)", func() error { return db.Delete(&Parent{}, 2).Error }},
				{"rename parent 1 (trigger writes audit; the view changes)", func() error {
					return db.Model(&Parent{ID: 1}).Update("name", "z").Error
				}},
				{"raw delete of parent 3", func() error { return db.Exec("DELETE FROM parents WHERE id = ?", 3).Error }},
				{"delete in a transaction", func() error {
					return db.Transaction(func(tx *gorm.DB) error { return tx.Delete(&Parent{}, 1).Error })
				}},
			}
			for _, s := range steps {
				if err := s.run(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				check(s.name)
			}
		})
	}
}

// TestDeclaredTriggerDependency: a trigger whose writes cannot be read from
// its body makes writes to its table invalidate everything, unless
// Config.Dependencies names where they go; a trigger that writes nothing
// else changes nothing.
func TestDeclaredTriggerDependency(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			for _, declared := range []bool{false, true} {
				cfg := plugin.Config{}
				if declared {
					cfg.Dependencies = map[string][]string{"audit": {"parents"}}
				}
				db, p := depSetup(t, dialect, cfg)
				const other = `SELECT count(*) FROM others`
				countOf(t, db, other)
				countOf(t, db, `SELECT count(*) FROM audit`)
				if err := db.Model(&Parent{ID: 1}).Update("name", "y").Error; err != nil {
					t.Fatal(err)
				}
				if got, want := countOf(t, db, `SELECT count(*) FROM audit`), truthOf(t, db, `SELECT count(*) FROM audit`); got != want || want != 1 {
					t.Errorf("declared=%v: audit = %d through the cache, %d in the database (want 1)", declared, got, want)
				}
				hits := p.Stats().Hits
				countOf(t, db, other)
				stayed := p.Stats().Hits > hits
				// PostgreSQL's trigger is PL/pgSQL: unknown unless declared.
				// MySQL's and SQLite's are plain statements naming audit.
				wantStayed := declared || dialect != "postgres"
				if stayed != wantStayed {
					t.Errorf("declared=%v: an unrelated table's entry survived the write: %v, want %v", declared, stayed, wantStayed)
				}
				// A harmless trigger (BEFORE INSERT setting NEW.name) does not widen writes.
				if dialect != "sqlite" {
					countOf(t, db, other)
					if err := db.Exec(`INSERT INTO kids (id, parent_id, name) VALUES (10, 1, 'x')`).Error; err != nil {
						t.Fatal(err)
					}
					hits := p.Stats().Hits
					countOf(t, db, other)
					if p.Stats().Hits == hits {
						t.Errorf("declared=%v: a write to kids (harmless trigger) invalidated an unrelated table", declared)
					}
				}
			}
		})
	}
}

// TestPartitions: on PostgreSQL, a write to a partition invalidates reads of
// the partitioned table, and a write through the parent invalidates reads of
// its partitions.
func TestPartitions(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	for _, q := range []string{
		`CREATE TABLE measures (id bigint, y int) PARTITION BY RANGE (y)`,
		`CREATE TABLE measures_a PARTITION OF measures FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE measures_b PARTITION OF measures FOR VALUES FROM (100) TO (200)`,
		`INSERT INTO measures (id, y) VALUES (1, 10), (2, 150)`,
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	reads := []string{`SELECT count(*) FROM measures`, `SELECT count(*) FROM measures_a`, `SELECT count(*) FROM measures_b`}
	check := func(after string) {
		for _, q := range reads {
			want := truthOf(t, db, q)
			for i := 0; i < 2; i++ {
				if got := countOf(t, db, q); got != want {
					t.Errorf("after %s: %s = %d through the cache, %d in the database", after, q, got, want)
				}
			}
		}
	}
	check("seed")
	for _, w := range []string{
		`INSERT INTO measures_a (id, y) VALUES (3, 20)`,
		`INSERT INTO measures (id, y) VALUES (4, 160)`,
		`DELETE FROM measures WHERE y = 10`,
		`UPDATE measures_b SET y = 120 WHERE id = 2`,
		`UPDATE measures SET y = 50 WHERE id = 2`, // moves the row to measures_a
	} {
		if err := db.Exec(w).Error; err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		check(w)
	}
}

// TestCatalogReadAgainAfterDDL: a foreign key added after the plugin was
// installed (AutoMigrate usually runs after db.Use) is followed.
func TestCatalogReadAgainAfterDDL(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
		`CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint, name text)`,
		`INSERT INTO parents VALUES (1, 'a')`, `INSERT INTO kids VALUES (1, 1, 'k')`,
	} {
		if err := db.WithContext(ctx).Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	countOf(t, db, `SELECT count(*) FROM kids`)
	if err := db.Exec(`ALTER TABLE kids ADD FOREIGN KEY (parent_id) REFERENCES parents(id) ON DELETE CASCADE`).Error; err != nil {
		t.Fatal(err)
	}
	countOf(t, db, `SELECT count(*) FROM kids`) // cached again after the DDL's global bump
	if err := db.Delete(&Parent{}, 1).Error; err != nil {
		t.Fatal(err)
	}
	if got := countOf(t, db, `SELECT count(*) FROM kids`); got != 0 {
		t.Errorf("kids = %d after the cascade, want 0", got)
	}
}

// A PL/pgSQL trigger whose body writes through a function call in an
// expression (x := log_parent(...)) contains none of the "write words"
// addTrigger looks for, so deps.go records it as writing nothing: a write to
// parents then does not invalidate cached reads of audit.
func TestTriggerWritingThroughFunctionCall(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	for _, q := range []string{
		`CREATE TABLE parents (id bigint PRIMARY KEY, name text)`,
		`CREATE TABLE audit (id bigserial PRIMARY KEY, msg text)`,
		`CREATE FUNCTION log_parent(pid bigint) RETURNS bigint LANGUAGE sql AS $$ INSERT INTO audit (msg) VALUES ('updated ' || pid) RETURNING id $$`,
		`CREATE FUNCTION audit_parent() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE x bigint; BEGIN x := log_parent(NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER parents_audit AFTER UPDATE ON parents FOR EACH ROW EXECUTE FUNCTION audit_parent()`,
		`INSERT INTO parents (id, name) VALUES (1, 'a')`,
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const q = `SELECT count(*) FROM audit`
	countOf(t, db, q)
	countOf(t, db, q) // cached
	if err := db.Exec(`UPDATE parents SET name = 'b' WHERE id = 1`).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := countOf(t, db, q), truthOf(t, db, q); got != want {
		t.Errorf("audit count = %d after the trigger wrote to it, database has %d (stale)", got, want)
	}
}
