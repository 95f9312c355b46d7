package plugin_test

import (
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SQLite (issue 16 item 7): an FTS5 table with external content reads its
// rows' values from the content table, so a write to the content table
// reaches its reads; a TEMP trigger of the connection that reads the
// catalog is followed like a main one.
func TestSQLiteExternalContentAndTempTriggers(t *testing.T) {
	t.Parallel()
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	if s, err := db.DB(); err == nil {
		s.SetMaxOpenConns(1) // (TEMP objects belong to one connection)
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	for _, q := range []string{
		"CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT)",
		"INSERT INTO companies VALUES (1, 'acme widgets'), (2, 'globex')",
		"CREATE VIRTUAL TABLE companies_fts USING fts5(name, content='companies', content_rowid='id')",
		"INSERT INTO companies_fts (rowid, name) SELECT id, name FROM companies",
		"CREATE TABLE audit (n INTEGER)",
		"INSERT INTO audit VALUES (0)",
	} {
		must(t, db.Exec(q).Error)
	}
	found := func() (name string) {
		must(t, db.Raw("SELECT name FROM companies_fts WHERE companies_fts MATCH 'acme'").Scan(&name).Error)
		return name
	}
	found()
	if !hitOf(t, p, func() { found() }) {
		t.Fatal("the FTS read is not cached")
	}
	must(t, db.Exec("UPDATE companies SET name = 'acme gadgets' WHERE id = 1").Error)
	if got := found(); got != "acme gadgets" {
		t.Fatalf("FTS read after a write to its content table: %q", got)
	}

	// A TEMP trigger made on the catalog's connection, outside the plugin.
	sqlDB, err := db.DB()
	must(t, err)
	if _, err := sqlDB.Exec("CREATE TEMP TRIGGER count_companies AFTER UPDATE ON companies BEGIN UPDATE audit SET n = n + 1; END"); err != nil {
		t.Fatal(err)
	}
	must(t, db.Exec("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)").Error) // (DDL through the plugin: the catalog is read again)
	audit := func() (n int) {
		must(t, db.Raw("SELECT n FROM audit").Scan(&n).Error)
		return n
	}
	audit()
	if !hitOf(t, p, func() { audit() }) {
		t.Fatal("audit not cached")
	}
	must(t, db.Exec("UPDATE companies SET name = 'globex corp' WHERE id = 2").Error)
	if got := audit(); got != 1 {
		t.Fatalf("audit after an update its TEMP trigger counts: %d, want 1", got)
	}
}
