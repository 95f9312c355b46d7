package plugin_test

// Raw SQL that is more than one statement: several result sets in one call.

import (
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Several result sets pass through, and are not cached.
func TestMultiResultSets(t *testing.T) {
	t.Parallel()
	d := testdb.Fresh(t, "mysql").(*mysql.Dialector)
	db, err := gorm.Open(mysql.Open(d.DSN+"&multiStatements=true"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	db.AutoMigrate(&Account{})
	db.Create(&Account{Owner: "a", Balance: 1})
	sets := func() int {
		rows, err := db.Raw("SELECT id FROM accounts; SELECT owner FROM accounts").Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for {
			for rows.Next() {
			}
			n++
			if !rows.NextResultSet() {
				break
			}
		}
		return n
	}
	plain := sets()
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if miss, hit := sets(), sets(); miss != plain || hit != plain {
		t.Fatalf("result sets: plain %d, then %d and %d with the plugin", plain, miss, hit)
	}
	// a SELECT followed by a write, read through Rows: the write invalidates
	account(t, db, 1)
	rows, err := db.Raw("SELECT id FROM accounts WHERE id = 1; UPDATE accounts SET balance = 77 WHERE id = 1").Rows()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.NextResultSet()
	rows.Close()
	if a := account(t, db, 1); a.Balance != 77 {
		t.Fatalf("after SELECT; UPDATE: balance %d, want 77", a.Balance)
	}
}
