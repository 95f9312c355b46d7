package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// cachedDB opens a fresh database of the dialect with accounts seeded and
// the plugin installed with cfg.
func cachedDB(t *testing.T, dialect string, cfg plugin.Config) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
	if err := db.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := db.Create(&Account{Owner: fmt.Sprintf("owner%d", i), Balance: int64(i * 10)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	p := plugin.New(cfg)
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return db, p
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func account(t *testing.T, db *gorm.DB, id uint) Account {
	t.Helper()
	var a Account
	if err := db.First(&a, id).Error; err != nil {
		t.Fatalf("First(%d): %v", id, err)
	}
	return a
}

// seedAccounts creates the accounts table with owner1..owner5, balances 10..50.
func seedAccounts(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := db.AutoMigrate(&Account{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := db.Create(&Account{Owner: fmt.Sprintf("owner%d", i), Balance: int64(i * 10)}).Error; err != nil {
			t.Fatal(err)
		}
	}
}

func balanceOf(t *testing.T, db *gorm.DB, id uint) int64 {
	t.Helper()
	return account(t, db, id).Balance
}

// A forced hash collision (every entry lands under the same store key) must
// never serve one query's rows for another: entries are verified against the
// query.
func TestHashCollisionNeverServesOtherRows(t *testing.T) {
	t.Parallel()
	for _, bytes := range []bool{false, true} {
		t.Run(fmt.Sprint("encoded=", bytes), func(t *testing.T) {
			t.Parallel()
			p := plugin.New(plugin.Config{Store: newOneKeyStore(bytes)})
			db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
			db.AutoMigrate(&Account{})
			db.Create(&[]Account{{Owner: "a", Balance: 1}, {Owner: "b", Balance: 2}})
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for round := 0; round < 3; round++ {
				for id, owner := range map[uint]string{1: "a", 2: "b"} {
					if got := account(t, db, id); got.Owner != owner {
						t.Fatalf("round %d: First(%d) = %q, want %q (another query's entry served)", round, id, got.Owner, owner)
					}
				}
			}
			if p.Stats().Collisions == 0 {
				t.Fatal("no collision counted though every key was the same")
			}
		})
	}
}

// A corrupt entry is a counted miss, answered from the database, and is
// overwritten by the fresh result.
func TestCorruptEntryIsACountedMiss(t *testing.T) {
	t.Parallel()
	bs := testsupport.NewRecordingStore()
	db, p := cachedDB(t, "sqlite", plugin.Config{Store: bs})
	account(t, db, 2) // stored
	keys := bs.SetKeys()
	if len(keys) != 1 {
		t.Fatalf("%d keys stored, want 1", len(keys))
	}
	for _, garbage := range [][]byte{{}, {0xff, 0x00}, []byte("not msgpack at all"), {1, 0x93}} {
		if err := bs.Store.Set(context.Background(), keys[0], garbage, time.Minute); err != nil {
			t.Fatal(err)
		}
		before := p.Stats()
		if got := account(t, db, 2); got.Owner != "owner2" || got.Balance != 20 {
			t.Fatalf("after corrupting the entry with %q: got %+v", garbage, got)
		}
		after := p.Stats()
		if after.CorruptEntries != before.CorruptEntries+1 || after.Misses != before.Misses+1 {
			t.Fatalf("corrupt %q: corrupt %d→%d, misses %d→%d; want one more of each", garbage, before.CorruptEntries, after.CorruptEntries, before.Misses, after.Misses)
		}
		if after.Stores != before.Stores+1 {
			t.Fatalf("corrupt entry not overwritten: stores %d→%d", before.Stores, after.Stores)
		}
		hits := p.Stats().Hits
		account(t, db, 2)
		if p.Stats().Hits != hits+1 {
			t.Fatal("the overwritten entry is not served")
		}
	}
}

// A store that fails every call never fails a query, a write or a
// transaction: everything is answered by the database, and errors are counted.
func TestFailingStoreFailsOpen(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{Store: &failingStore{}, BumpFailure: plugin.ProceedWrite})
	for i := 0; i < 3; i++ {
		if got := account(t, db, 3); got.Owner != "owner3" {
			t.Fatalf("got %+v", got)
		}
	}
	if err := db.Model(&Account{ID: 3}).Update("owner", "changed").Error; err != nil {
		t.Fatalf("write failed with a failing store: %v", err)
	}
	if got := account(t, db, 3); got.Owner != "changed" {
		t.Fatalf("read after write: %+v", got)
	}
	err := db.Transaction(func(tx *gorm.DB) error {
		return tx.Model(&Account{ID: 1}).Update("balance", 1).Error
	})
	if err != nil {
		t.Fatalf("transaction failed with a failing store: %v", err)
	}
	var n int64
	if err := db.Model(&Account{}).Count(&n).Error; err != nil || n != 5 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	st := p.Stats()
	if st.Hits != 0 || st.StoreErrors == 0 {
		t.Fatalf("hits %d, store errors %d", st.Hits, st.StoreErrors)
	}
	if st.Bypasses["store_error"] == 0 {
		t.Fatalf("store errors not counted as bypasses: %v", st.Bypasses)
	}
}

// Statements the cache must not serve, each counted under its reason.
func TestBypassReasons(t *testing.T) {
	t.Parallel()
	type check struct {
		name     string
		reason   plugin.Reason
		dialects []string // nil: postgres and sqlite
		run      func(db *gorm.DB) error
	}
	rawScan := func(sql string, args ...any) func(db *gorm.DB) error {
		return func(db *gorm.DB) error {
			var rows []map[string]any
			return db.Raw(sql, args...).Scan(&rows).Error
		}
	}
	checks := []check{
		{"for update", "locking", []string{"postgres", "mysql"}, rawScan("SELECT * FROM accounts WHERE id = 1 FOR UPDATE")},
		{"now()", "volatile_function", []string{"postgres", "mysql"}, rawScan("SELECT now() AS t, owner FROM accounts")},
		{"random()", "volatile_function", nil, rawScan("SELECT owner FROM accounts ORDER BY random()")},
		{"catalog", "catalog", []string{"postgres", "mysql"}, rawScan("SELECT table_name FROM information_schema.tables WHERE table_name = 'accounts'")},
		{"sqlite catalog", "catalog", []string{"sqlite"}, rawScan("SELECT name FROM sqlite_master WHERE type = 'table'")},
		{"returning", "write", []string{"postgres", "sqlite"}, rawScan("UPDATE accounts SET balance = balance WHERE id = 1 RETURNING id")},
		{"writable CTE", "write", []string{"postgres"}, rawScan("WITH d AS (UPDATE accounts SET balance = balance WHERE id = 2 RETURNING id) SELECT * FROM d")},
		{"too many rows", "too_many_rows", nil, func(db *gorm.DB) error { var as []Account; return db.Find(&as).Error }},
		{"partial read", "partial_read", nil, func(db *gorm.DB) error {
			rows, err := db.Model(&Account{}).Where("id < ?", 3).Rows()
			if err != nil {
				return err
			}
			rows.Next()
			return rows.Close()
		}},
		{"unsupported arg", "unsupported_arg", []string{"postgres"}, func(db *gorm.DB) error {
			var as []Account // pgx encodes netip.Addr as inet; the key encoder does not know it
			return db.Where("?::inet IS NOT NULL", netip.MustParseAddr("10.1.2.3")).Find(&as).Error
		}},
		{"connection", "connection", nil, func(db *gorm.DB) error {
			return db.Connection(func(tx *gorm.DB) error { var a Account; return tx.First(&a, 1).Error })
		}},
		{"transaction", "transaction", nil, func(db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error { var a Account; return tx.First(&a, 1).Error })
		}},
		{"show", "not_select", []string{"postgres"}, rawScan("SHOW search_path")},
	}
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{MaxRows: 3})
			for _, c := range checks {
				ds := c.dialects
				if ds == nil {
					ds = []string{"postgres", "sqlite"}
				}
				if !strings.Contains(strings.Join(ds, ","), dialect) {
					continue
				}
				before := p.Stats()
				for i := 0; i < 2; i++ {
					if err := c.run(db); err != nil {
						t.Errorf("%s: %v", c.name, err)
					}
				}
				after := p.Stats()
				if after.Hits != before.Hits {
					t.Errorf("%s: served from the cache", c.name)
				}
				if after.Bypasses[c.reason] < before.Bypasses[c.reason]+2 {
					t.Errorf("%s: bypass %q counted %d→%d, want +2 (all: %v)", c.name, c.reason, before.Bypasses[c.reason], after.Bypasses[c.reason], after.Bypasses)
				}
			}
		})
	}
}

// Limits: a result over MaxBytes is served but not stored.
func TestTooLargeNotStored(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{MaxBytes: 64})
	for i := 0; i < 2; i++ {
		var as []Account
		if err := db.Order("id").Find(&as).Error; err != nil || len(as) != 5 {
			t.Fatalf("Find: %d rows, %v", len(as), err)
		}
	}
	st := p.Stats()
	if st.Hits != 0 || st.Bypasses["too_large"] != 2 {
		t.Fatalf("hits %d, too_large %d", st.Hits, st.Bypasses["too_large"])
	}
}

// A write whose tables cannot be known (DDL) invalidates everything; a
// savepoint does not.
func TestDDLInvalidatesEverything(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			account(t, db, 1)
			account(t, db, 1)
			hits := p.Stats().Hits
			if err := db.Exec("CREATE TABLE other_things (id INT)").Error; err != nil {
				t.Fatal(err)
			}
			misses := p.Stats().Misses
			account(t, db, 1)
			if st := p.Stats(); st.Hits != hits || st.Misses != misses+1 {
				t.Fatalf("after DDL: hits %d→%d, misses %d→%d; want a miss", hits, st.Hits, misses, st.Misses)
			}
			// a transaction with a nested savepoint that writes nothing
			account(t, db, 1)
			hits = p.Stats().Hits
			db.Transaction(func(tx *gorm.DB) error {
				return tx.Transaction(func(*gorm.DB) error { return nil })
			})
			account(t, db, 1)
			if p.Stats().Hits != hits+1 {
				t.Fatal("a savepoint flushed the cache")
			}
		})
	}
}

// An unknown function may write: the statement bypasses the cache and
// invalidates everything, unless Config.StableFunctions names it.
func TestUnknownFunction(t *testing.T) {
	t.Parallel()
	for _, stable := range []bool{false, true} {
		t.Run(fmt.Sprint("declared stable=", stable), func(t *testing.T) {
			t.Parallel()
			cfg := plugin.Config{}
			if stable {
				cfg.StableFunctions = []string{"My_Func"}
			}
			db, p := cachedDB(t, "postgres", cfg)
			if err := db.Exec("CREATE FUNCTION my_func(x int) RETURNS int AS 'SELECT x + 1' LANGUAGE SQL IMMUTABLE").Error; err != nil {
				t.Fatal(err)
			}
			account(t, db, 1)
			hits := p.Stats().Hits
			var n []int
			for i := 0; i < 2; i++ {
				if err := db.Raw("SELECT my_func(balance::int) FROM accounts ORDER BY id").Scan(&n).Error; err != nil || len(n) != 5 || n[0] != 11 {
					t.Fatalf("my_func: %v, %v", n, err)
				}
			}
			account(t, db, 1)
			st := p.Stats()
			if stable {
				if st.Hits != hits+2 { // second my_func read and the account read
					t.Fatalf("declared stable: hits %d→%d, want +2", hits, st.Hits)
				}
			} else if st.Hits != hits || st.Bypasses["volatile_function"] < 2 {
				t.Fatalf("unknown function: hits %d→%d (want none: it may write), bypasses %v", hits, st.Hits, st.Bypasses)
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   plugin.Config
		field string
	}{
		{plugin.Config{TTL: -5 * time.Second}, "TTL"},
		{plugin.Config{MaxRows: -1}, "MaxRows"},
		{plugin.Config{MaxBytes: -1}, "MaxBytes"},
		{plugin.Config{MemoryBytes: -1}, "MemoryBytes"},
		{plugin.Config{WriteLease: -1}, "WriteLease"},
		{plugin.Config{StoreTimeout: -1}, "StoreTimeout"},
	} {
		db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
		err := db.Use(plugin.New(tc.cfg))
		if !errors.Is(err, plugin.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: err = %v; want ErrInvalidConfig naming %s", tc.cfg, err, tc.field)
		}
	}
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	if err := db.Use(plugin.New(plugin.Config{TTL: plugin.Forever})); err != nil {
		t.Errorf("TTL Forever rejected: %v", err)
	}
}

// db.DB() keeps working, and Initialize is idempotent (dbresolver runs it
// again on copies of the config).
func TestDBAndIdempotentInitialize(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	if err := p.Initialize(db); err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil || sqlDB.Ping() != nil {
		t.Fatalf("db.DB(): %v", err)
	}
	account(t, db, 1)
	account(t, db, 1)
	if st := p.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("after a second Initialize: %+v (double wrapping?)", st)
	}
	tx := db.Begin()
	if _, err := tx.DB(); err != nil {
		t.Fatalf("tx.DB(): %v", err)
	}
	tx.Rollback()
}

// Entries over CompressAbove reach a byte store compressed (the format
// byte's flag), are served from it, and MaxBytes applies to what is stored.
func TestCompressedEntries(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		above      int
		compressed bool
	}{{0, true}, {-1, false}} {
		bs := testsupport.NewRecordingStore()
		db, p := cachedDB(t, "sqlite", plugin.Config{Store: bs, CompressAbove: c.above})
		for i := 0; i < 40; i++ {
			db.Create(&Account{Owner: strings.Repeat("owner-", 10), Balance: int64(i)})
		}
		var first, second []Account
		db.Order("id").Find(&first)
		db.Order("id").Find(&second)
		if p.Stats().Hits != 1 || len(second) != 45 || !reflect.DeepEqual(first, second) {
			t.Fatalf("CompressAbove=%d: hits %d, rows %d", c.above, p.Stats().Hits, len(second))
		}
		keys := bs.SetKeys()
		key := keys[len(keys)-1]
		v := make([]uint64, 0)
		b, err := bs.Store.Get(context.Background(), key, nil, v)
		if err != nil || len(b) == 0 {
			t.Fatalf("stored entry: %v", err)
		}
		if got := b[0]&0x80 != 0; got != c.compressed {
			t.Errorf("CompressAbove=%d: compressed flag %v, want %v (%d bytes)", c.above, got, c.compressed, len(b))
		}
	}
}

// A write whose release did not reach the store (it was away) must not
// keep its tables held until WriteLease expires: the release is retried.
func TestFailedReleaseIsRetried(t *testing.T) {
	t.Parallel()
	st := &releaseFailsStore{RecordingStore: testsupport.NewRecordingStore(), n: 3}
	db, p := cachedDB(t, "sqlite", plugin.Config{Store: st, WriteLease: time.Hour})
	if err := db.Model(&Account{ID: 1}).Update("balance", 7).Error; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		before := p.Stats().Hits
		if got := account(t, db, 1); got.Balance != 7 {
			t.Fatalf("balance %d, want 7", got.Balance)
		}
		account(t, db, 1)
		if p.Stats().Hits > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("accounts still held 5s after the write (WriteLease 1h): %+v", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
