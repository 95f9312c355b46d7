package plugin_test

import (
	"testing"

	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
)

// Transaction control sent as SQL, which the pools never see: nothing read
// inside such a transaction is cached, and the tables it wrote stay held
// until it ends, then are bumped.

// execAll runs statements through db (or a session of it).
func execAll(t *testing.T, db *gorm.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestRawTransactionOneConnection: SQLite's usual setup, one connection:
// BEGIN, an UPDATE, a read (it sees the uncommitted row), ROLLBACK: the
// rolled-back row must never be served.
func TestRawTransactionOneConnection(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	readID(t, db, 1)
	execAll(t, db, "BEGIN", "UPDATE accounts SET balance = 99 WHERE id = 1")
	for range 2 {
		if got := readID(t, db, 1); got != 99 {
			t.Fatalf("inside the transaction: %d, want its own write 99", got)
		}
	}
	execAll(t, db, "ROLLBACK")
	for range 2 {
		if got := readID(t, db, 1); got != 10 {
			t.Fatalf("after ROLLBACK: %d, want 10 (the rolled-back row was served)", got)
		}
	}
	if p.Stats().Bypasses["transaction"] < 2 {
		t.Fatalf("reads inside the transaction were not bypassed: %v", p.Stats().Bypasses)
	}
	// And a COMMIT bumps.
	execAll(t, db, "BEGIN", "UPDATE accounts SET balance = 98 WHERE id = 1", "COMMIT")
	if got := readID(t, db, 1); got != 98 {
		t.Fatalf("after COMMIT: %d, want 98", got)
	}
}

// TestRawTransactionOnConnection: BEGIN … COMMIT (PostgreSQL, MariaDB),
// SET autocommit = 0 … COMMIT (MariaDB) and XA (MariaDB) on a dedicated
// connection, with reads through the pool meanwhile: what those reads
// store before the commit must not be served after it.
func TestRawTransactionOnConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, dialect string
		begin, end    []string
	}{
		{"postgres begin", "postgres", []string{"BEGIN"}, []string{"COMMIT"}},
		{"postgres start transaction", "postgres", []string{"START TRANSACTION"}, []string{"END"}},
		{"mysql begin", "mysql", []string{"BEGIN"}, []string{"COMMIT"}},
		{"mysql autocommit", "mysql", []string{"SET autocommit = 0"}, []string{"SET autocommit = 1"}},
		{"mysql xa", "mysql", []string{"XA START 'gc1'"}, []string{"XA END 'gc1'", "XA PREPARE 'gc1'", "XA COMMIT 'gc1'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := cachedDB(t, tc.dialect, plugin.Config{})
			err := db.Connection(func(conn *gorm.DB) error {
				execAll(t, conn, tc.begin...)
				execAll(t, conn, "UPDATE accounts SET balance = 99 WHERE id = 1")
				for range 2 {
					if got := readID(t, db, 1); got != 10 {
						t.Fatalf("read through the pool during the transaction: %d, want 10", got)
					}
				}
				for i, q := range tc.end {
					execAll(t, conn, q)
					if i < len(tc.end)-1 {
						if got := readID(t, db, 1); got != 10 {
							t.Fatalf("after %s: %d, want 10", q, got)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readID(t, db, 1); got != 99 {
				t.Fatalf("after the commit: %d (the row read before it), want 99", got)
			}
		})
	}
}

// TestRawAutocommitOff: with autocommit off, each COMMIT ends one
// transaction and the next begins at once: writes after the first COMMIT
// are held until the next one.
func TestRawAutocommitOff(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "mysql", plugin.Config{})
	err := db.Connection(func(conn *gorm.DB) error {
		execAll(t, conn, "SET autocommit = 0", "UPDATE accounts SET balance = 99 WHERE id = 1", "COMMIT")
		if got := readID(t, db, 1); got != 99 {
			t.Fatalf("after the first COMMIT: %d, want 99", got)
		}
		execAll(t, conn, "UPDATE accounts SET balance = 98 WHERE id = 1")
		for range 2 {
			if got := readID(t, db, 1); got != 99 {
				t.Fatalf("during the second transaction: %d, want 99", got)
			}
		}
		execAll(t, conn, "COMMIT")
		if got := readID(t, db, 1); got != 98 {
			t.Fatalf("after the second COMMIT: %d, want 98", got)
		}
		execAll(t, conn, "SET autocommit = 1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
