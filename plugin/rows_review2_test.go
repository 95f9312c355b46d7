package plugin_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	mysqldriver "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// A Grouped row: grp is computed from code by the database.
type Grouped struct {
	ID   int64
	Code int64
	Grp  int64
}

// groupReads caches the reads of groups 1 and 2 of table (grp = ?) and
// returns a function reading a group's ids.
func groupReads(t *testing.T, db *gorm.DB, p *plugin.Plugin, table string) func(grp int64) []int64 {
	t.Helper()
	read := func(grp int64) []int64 {
		var gs []Grouped
		must(t, db.Raw("SELECT * FROM "+table+" WHERE grp = ? ORDER BY id", grp).Scan(&gs).Error)
		ids := make([]int64, len(gs))
		for i, g := range gs {
			ids[i] = g.ID
		}
		return ids
	}
	for _, g := range []int64{1, 2} {
		read(g)
		if !hitOf(t, p, func() { read(g) }) {
			t.Fatalf("%s: group %d not cached", table, g)
		}
	}
	return read
}

// A generated column (here with a one-column index, so it is keyed) takes
// new values when the columns it is computed from change: a write that
// names the rows by it, and does not SET it, still moves them to other
// values (UPDATE gens SET code = 27 WHERE grp = 1 moves row 1 to group 2),
// and RETURNING gives its value after the write, not before.
func TestRowLevelReviewGeneratedColumn(t *testing.T) {
	t.Parallel()
	ddl := map[string]string{
		"sqlite":   `CREATE TABLE gens (id INTEGER PRIMARY KEY, code INTEGER, grp INTEGER GENERATED ALWAYS AS (code / 10) STORED)`,
		"postgres": `CREATE TABLE gens (id serial PRIMARY KEY, code int, grp int GENERATED ALWAYS AS (code / 10) STORED)`,
		"mysql":    `CREATE TABLE gens (id int AUTO_INCREMENT PRIMARY KEY, code int, grp int GENERATED ALWAYS AS (code DIV 10) STORED)`,
	}
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			must(t, db.Exec(ddl[dialect]).Error)
			must(t, db.Exec(`CREATE INDEX gens_grp ON gens (grp)`).Error)
			must(t, db.Exec(`INSERT INTO gens (id, code) VALUES (1, 15), (2, 25), (3, 35)`).Error)
			read := groupReads(t, db, p, "gens")
			must(t, db.Exec("UPDATE gens SET code = 27 WHERE grp = ?", 1).Error)
			if ids := read(2); len(ids) != 2 {
				t.Fatalf("group 2 after row 1 moved into it: %v (stale)", ids)
			}
			// By key inside a transaction (RETURNING on PostgreSQL and
			// SQLite): row 2 leaves group 2 for group 1.
			read(1)
			read(2)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				return tx.Exec("UPDATE gens SET code = 17 WHERE id = ?", 2).Error
			}))
			if ids := read(2); len(ids) != 1 {
				t.Fatalf("group 2 after row 2 left it: %v (stale)", ids)
			}
		})
	}
}

// A BEFORE trigger may change the row being written (NEW.owner_id := 2)
// while writing no table: a write that names its rows by owner_id (or
// gives it in INSERT VALUES) moves them to a value it does not name.
func TestRowLevelReviewBeforeTrigger(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			if dialect == "postgres" {
				must(t, db.Exec(`CREATE TABLE movers (id serial PRIMARY KEY, code int, grp int)`).Error)
				must(t, db.Exec(`CREATE FUNCTION movers_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.code = 99 THEN NEW.grp := 2; END IF;
  RETURN NEW;
END $$`).Error)
				must(t, db.Exec(`CREATE TRIGGER movers_move BEFORE INSERT OR UPDATE ON movers FOR EACH ROW EXECUTE FUNCTION movers_move()`).Error)
			} else {
				must(t, db.Exec(`CREATE TABLE movers (id int AUTO_INCREMENT PRIMARY KEY, code int, grp int)`).Error)
				must(t, db.Exec(`CREATE TRIGGER movers_move BEFORE UPDATE ON movers FOR EACH ROW SET NEW.grp = NEW.grp + 1`).Error)
				must(t, db.Exec(`CREATE TRIGGER movers_move_ins BEFORE INSERT ON movers FOR EACH ROW SET NEW.grp = NEW.grp + 1`).Error)
			}
			must(t, db.Exec(`CREATE INDEX movers_grp ON movers (grp)`).Error)
			if dialect == "postgres" {
				must(t, db.Exec(`INSERT INTO movers (id, code, grp) VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3)`).Error)
			} else {
				must(t, db.Exec(`INSERT INTO movers (id, code, grp) VALUES (1, 1, 0), (2, 2, 1), (3, 3, 2)`).Error)
			}
			read := groupReads(t, db, p, "movers")
			must(t, db.Exec("UPDATE movers SET code = 99 WHERE grp = ?", 1).Error)
			if ids := read(2); len(ids) != 2 {
				t.Fatalf("group 2 after the trigger moved row 1 into it: %v (stale)", ids)
			}
			read(2)
			must(t, db.Exec("INSERT INTO movers (id, code, grp) VALUES (?, 99, ?)", 4, 1).Error)
			if ids := read(2); len(ids) != 3 {
				t.Fatalf("group 2 after the trigger put row 4 into it: %v (stale)", ids)
			}
		})
	}
}

// MySQL's IGNORE turns an out-of-range value (or NULL into a NOT NULL
// column) into a warning and stores the nearest value it can: UPDATE
// IGNORE clips SET grp = 300 to 127 on a TINYINT, so the row lands in a
// group the statement does not name; INSERT IGNORE does the same.
func TestRowLevelReviewMySQLIgnoreClips(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "mysql", plugin.Config{})
	must(t, db.Exec(`CREATE TABLE clips (id int PRIMARY KEY, code int, grp tinyint NOT NULL, INDEX clips_grp (grp))`).Error)
	must(t, db.Exec(`INSERT INTO clips (id, code, grp) VALUES (1, 0, 1), (2, 0, 127), (3, 0, 0)`).Error)
	read := func(grp int64) []int64 {
		var gs []Grouped
		must(t, db.Raw("SELECT * FROM clips WHERE grp = ? ORDER BY id", grp).Scan(&gs).Error)
		ids := make([]int64, len(gs))
		for i, g := range gs {
			ids[i] = g.ID
		}
		return ids
	}
	cached := func(grp int64) {
		t.Helper()
		read(grp)
		if !hitOf(t, p, func() { read(grp) }) {
			t.Fatalf("group %d not cached", grp)
		}
	}
	cached(127)
	must(t, db.Exec("UPDATE IGNORE clips SET grp = ? WHERE grp = ?", 300, 1).Error)
	if ids := read(127); len(ids) != 2 {
		t.Fatalf("group 127 after UPDATE IGNORE clipped row 1 into it: %v (stale)", ids)
	}
	cached(127)
	must(t, db.Exec("INSERT IGNORE INTO clips (id, code, grp) VALUES (?, 0, ?)", 4, 1000).Error)
	if ids := read(127); len(ids) != 3 {
		t.Fatalf("group 127 after INSERT IGNORE clipped row 4 into it: %v (stale)", ids)
	}
	cached(0)
	must(t, db.Exec("INSERT IGNORE INTO clips (id, code, grp) VALUES (?, 0, NULL)", 5).Error)
	if ids := read(0); len(ids) != 2 {
		t.Fatalf("group 0 after INSERT IGNORE stored NULL as 0 in row 5: %v (stale)", ids)
	}
}

// MySQL: an AUTO_INCREMENT column that is not the primary key (a unique
// index keys it) takes the next value for an inserted NULL or 0: INSERT
// INTO seqs (id, seq) VALUES (1, NULL) names seq=NULL and makes seq = 1,
// which an entry keyed on the column (an empty result: it depends on no
// table tag) must see.
func TestRowLevelReviewMySQLAutoIncrementColumn(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "mysql", plugin.Config{})
	must(t, db.Exec(`CREATE TABLE seqs (id int PRIMARY KEY, seq int NOT NULL AUTO_INCREMENT, UNIQUE KEY seqs_seq (seq))`).Error)
	read := func(seq int64) int {
		var n []map[string]any
		must(t, db.Raw("SELECT * FROM seqs WHERE seq = ?", seq).Scan(&n).Error)
		return len(n)
	}
	for i, v := range []string{"NULL", "0"} {
		read(int64(i + 1))
		if !hitOf(t, p, func() { read(int64(i + 1)) }) {
			t.Fatalf("seq %d not cached", i+1)
		}
		must(t, db.Exec("INSERT INTO seqs (id, seq) VALUES (?, "+v+")", i+1).Error)
		if n := read(int64(i + 1)); n != 1 {
			t.Fatalf("seq %d after an insert of %s made it: %d rows (stale)", i+1, v, n)
		}
	}
}

// PostgreSQL refuses RETURNING on a table with an INSTEAD rule that has
// none: the RETURNING clause the plugin adds to an UPDATE by key in a
// transaction must not make a statement that works fail.
func TestRowLevelReviewPostgresInsteadRule(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{})
	movableTable(t, db, "ruled")
	must(t, db.Exec(`CREATE RULE ruled_keep AS ON UPDATE TO ruled DO INSTEAD NOTHING`).Error)
	groupReads(t, db, p, "ruled")
	if err := db.Transaction(func(tx *gorm.DB) error {
		return tx.Exec("UPDATE ruled SET code = 7 WHERE id = ?", 1).Error
	}); err != nil {
		t.Errorf("an update by key of a table with an INSTEAD rule: %v", err)
	}
	// A rule whose action writes its own table writes rows the statement
	// does not name (pg_depend lists every rule's own table: that is no
	// sign of it).
	movableTable(t, db, "ruled2")
	must(t, db.Exec(`CREATE RULE ruled2_move AS ON INSERT TO ruled2 DO ALSO UPDATE ruled2 SET grp = 2 WHERE id = 1`).Error)
	read := groupReads(t, db, p, "ruled2")
	must(t, db.Exec(`INSERT INTO ruled2 (id, code, grp) VALUES (?, 3, 3)`, 3).Error)
	if ids := read(2); len(ids) != 2 {
		t.Fatalf("group 2 after the rule moved row 1 into it: %v (stale)", ids)
	}
}

// PostgreSQL: RETURNING needs the SELECT privilege on the columns it
// returns, which an UPDATE that does not read them does not: a user who
// may update posts.code and read only id and code must still be able to
// UPDATE … WHERE id = $1 in a transaction.
func TestRowLevelReviewPostgresReturningPrivilege(t *testing.T) {
	t.Parallel()
	role := testdb.RandomName("gcrole_")
	admin, err := sql.Open("pgx", testdb.PostgresAdmin)
	must(t, err)
	t.Cleanup(func() { // (after the database is dropped: registered first)
		defer admin.Close()
		if _, err := admin.Exec("DROP ROLE IF EXISTS " + role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	dsn := testdb.FreshPostgres(t)
	owner := openPostgres(t, dsn)
	movableTable(t, owner, "ruled")
	must(t, owner.Exec(`CREATE ROLE `+role+` LOGIN`).Error)
	must(t, owner.Exec(`GRANT SELECT (id, code), UPDATE (code) ON ruled TO `+role).Error)
	db := openPostgres(t, strings.Replace(dsn, "user=postgres", "user="+role, 1))
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	var codes []int64
	must(t, db.Raw("SELECT code FROM ruled WHERE id = ?", 1).Scan(&codes).Error)
	if err := db.Transaction(func(tx *gorm.DB) error {
		return tx.Exec("UPDATE ruled SET code = 7 WHERE id = ?", 1).Error
	}); err != nil {
		t.Fatalf("an update by key of a user who may not read grp: %v", err)
	}
	if must(t, db.Raw("SELECT code FROM ruled WHERE id = ?", 1).Scan(&codes).Error); len(codes) != 1 || codes[0] != 7 {
		t.Fatalf("code after the update: %v", codes)
	}
}

// A trigger whose writes cannot be read (here: dynamic SQL) on a table the
// user named in Config.Dependencies (as the source of the table it
// writes) may still write other rows of its own table: the declaration
// names what reads depend on, not which rows the trigger changes.
func TestRowLevelReviewDeclaredUnknownTrigger(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "postgres", plugin.Config{Dependencies: map[string][]string{"audit": {"movers"}}})
	must(t, db.Exec(`CREATE TABLE audit (id serial PRIMARY KEY, note text)`).Error)
	movableTable(t, db, "movers")
	must(t, db.Exec(`CREATE FUNCTION movers_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'UPDATE movers SET grp = 2 WHERE id = 1';
  RETURN NULL;
END $$`).Error)
	must(t, db.Exec(`CREATE TRIGGER movers_after AFTER INSERT ON movers FOR EACH ROW EXECUTE FUNCTION movers_after()`).Error)
	read := groupReads(t, db, p, "movers")
	must(t, db.Exec(`INSERT INTO movers (id, code, grp) VALUES (?, 3, 3)`, 3).Error)
	if ids := read(2); len(ids) != 2 {
		t.Fatalf("group 2 after the trigger moved row 1 into it: %v (stale)", ids)
	}
}

// MySQL without a strict sql_mode stores an out-of-range value clipped
// (and NULL in a NOT NULL column of a multi-row INSERT as 0), as IGNORE
// does: UPDATE clips SET grp = 300 WHERE grp = 1 makes grp 127.
func TestRowLevelReviewMySQLLenientMode(t *testing.T) {
	t.Parallel()
	dsn := testdb.Fresh(t, "mysql").(*mysqldriver.Dialector).DSN
	db, err := gorm.Open(mysqldriver.Open(dsn+"&sql_mode=%27NO_ENGINE_SUBSTITUTION%27"), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	must(t, db.Exec(`CREATE TABLE clips (id int PRIMARY KEY, code int, grp tinyint NOT NULL, INDEX clips_grp (grp))`).Error)
	must(t, db.Exec(`INSERT INTO clips (id, code, grp) VALUES (1, 0, 1), (2, 0, 127), (3, 0, 0)`).Error)
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	read := func(grp int64) []int64 {
		var gs []Grouped
		must(t, db.Raw("SELECT * FROM clips WHERE grp = ? ORDER BY id", grp).Scan(&gs).Error)
		ids := make([]int64, len(gs))
		for i, g := range gs {
			ids[i] = g.ID
		}
		return ids
	}
	read(127)
	if !hitOf(t, p, func() { read(127) }) {
		t.Fatal("group 127 not cached")
	}
	must(t, db.Exec("UPDATE clips SET grp = ? WHERE grp = ?", 300, 1).Error)
	if ids := read(127); len(ids) != 2 {
		t.Fatalf("group 127 after a lenient UPDATE clipped row 1 into it: %v (stale)", ids)
	}
}

// movableTable creates table (id, code, grp) with an index on grp (a keyed
// column) and rows 1 and 2 in groups 1 and 2.
func movableTable(t *testing.T, db *gorm.DB, table string) {
	t.Helper()
	must(t, db.Exec(`CREATE TABLE `+table+` (id serial PRIMARY KEY, code int, grp int)`).Error)
	must(t, db.Exec(`CREATE INDEX `+table+`_grp ON `+table+` (grp)`).Error)
	must(t, db.Exec(`INSERT INTO `+table+` (id, code, grp) VALUES (1, 1, 1), (2, 2, 2)`).Error)
}
