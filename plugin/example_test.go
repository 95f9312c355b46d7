package plugin_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	db.AutoMigrate(&Account{})
	db.Create(&Account{Owner: "ann", Balance: 10})

	cache := plugin.New(plugin.Config{}) // in-memory store, 5-minute TTL
	if err := db.Use(cache); err != nil {
		panic(err)
	}
	defer cache.Close()

	var a, b, c Account
	db.First(&a, 1)                                 // miss: from the database
	db.First(&b, 1)                                 // hit: from the cache
	db.Model(&Account{ID: 1}).Update("balance", 20) // invalidates accounts
	db.First(&c, 1)                                 // miss: the new balance
	st := cache.Stats()
	fmt.Println(a.Balance, b.Balance, c.Balance, st.Hits, st.Misses)
	// Output: 10 10 20 1 2
}

// exampleDB opens a SQLite database in a temporary directory with a few
// accounts, and installs the plugin with cfg.
func exampleDB(cfg plugin.Config) (*gorm.DB, *plugin.Plugin, func()) {
	dir, _ := os.MkdirTemp("", "example")
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	db.AutoMigrate(&Account{})
	db.Create(&[]Account{{Owner: "ann", Balance: 10}, {Owner: "bob", Balance: 20}})
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := plugin.New(cfg)
	if err := db.Use(p); err != nil {
		panic(err)
	}
	return db, p, func() { p.Close(); os.RemoveAll(dir) }
}

func ExampleTTL() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var accounts []Account
	db.Clauses(plugin.TTL(10 * time.Minute)).Find(&accounts) // stored for 10 minutes
	db.Clauses(plugin.TTL(10 * time.Minute)).Find(&accounts) // hit
	fmt.Println(len(accounts), p.Stats().Hits)
	// Output: 2 1
}

func ExampleSkip() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var a Account
	db.Clauses(plugin.Skip()).First(&a, 1) // neither read from nor stored in the cache
	fmt.Println(a.Owner, p.Stats().Bypasses["skip"])
	// Output: ann 1
}

func ExampleRefresh() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var a, b Account
	db.First(&a, 1)                           // miss, stored
	db.Clauses(plugin.Refresh()).First(&b, 1) // queries anyway, replaces the entry
	st := p.Stats()
	fmt.Println(st.Misses, st.Hits, st.Stores)
	// Output: 2 0 2
}

func ExampleTags() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var total int64
	db.Clauses(plugin.Tags("exchange_rates")).Model(&Account{}).Select("sum(balance)").Scan(&total)
	p.Invalidate(context.Background(), "exchange_rates") // also invalidates that entry
	db.Clauses(plugin.Tags("exchange_rates")).Model(&Account{}).Select("sum(balance)").Scan(&total)
	fmt.Println(total, p.Stats().Misses)
	// Output: 30 2
}

func ExampleCache() {
	db, p, done := exampleDB(plugin.Config{OptIn: true}) // only what asks for it
	defer done()
	var a, b, c, d Account
	db.First(&a, 1)
	db.First(&b, 1)                         // not cached: did not ask
	db.Clauses(plugin.Cache()).First(&c, 2) // asks
	db.Clauses(plugin.Cache()).First(&d, 2)
	fmt.Println(p.Stats().Hits, p.Stats().Bypasses["opt_in"])
	// Output: 1 2
}

func ExampleWithOptions() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	ctx := plugin.WithOptions(context.Background(), plugin.TTL(time.Minute))
	var a, b Account
	db.WithContext(ctx).First(&a, 1) // every statement made with ctx is kept a minute
	db.WithContext(ctx).First(&b, 1)
	fmt.Println(b.Owner, p.Stats().Hits)
	// Output: ann 1
}

func ExampleConfig_policy() {
	db, p, done := exampleDB(plugin.Config{
		TTL:       10 * time.Minute,                                // Django's TIMEOUT
		TableTTL:  map[string]time.Duration{"prices": time.Minute}, // per table
		Deny:      []string{"accounts", "sessions"},                // never cached
		TTLJitter: 0.1,
		SkipEmpty: true,
	})
	defer done()
	var a, b Account
	db.First(&a, 1)
	db.First(&b, 1)
	fmt.Println(p.Stats().Hits, p.Stats().Bypasses["denied"])
	// Output: 0 2
}

func ExamplePlugin_Explain() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var accounts []Account
	ex, _ := p.Explain(db.Session(&gorm.Session{DryRun: true}).Where("balance > ?", 5).Find(&accounts))
	fmt.Println(ex.Cacheable, ex.Tables, ex.TTL)
	var n float64
	ex, _ = p.Explain(db.Session(&gorm.Session{DryRun: true}).Raw("SELECT random()").Scan(&n))
	fmt.Println(ex.Cacheable, ex.Reason)
	// Output:
	// true [accounts] 5m0s
	// false volatile_function
}

func ExamplePlugin_Stats() {
	db, p, done := exampleDB(plugin.Config{})
	defer done()
	var a, b Account
	db.First(&a, 1)
	db.First(&b, 1)
	st := p.Stats()
	fmt.Println(st.Hits, st.Misses, st.Tables["accounts"])
	// Output: 1 1 {1 1}
}

func ExampleConfig_allow() {
	db, p, done := exampleDB(plugin.Config{Allow: []string{"products"}}) // only products is cached
	defer done()
	var a, b Account
	db.First(&a, 1)
	db.First(&b, 1)
	fmt.Println(p.Stats().Hits, p.Stats().Bypasses["not_allowed"])
	// Output: 0 2
}

func ExampleConfig_version() {
	// Version is part of every key: a deployment that changes its models
	// bumps it and leaves the entries of the previous one unused.
	db, p, done := exampleDB(plugin.Config{Version: 2})
	defer done()
	var accounts []Account
	ex, _ := p.Explain(db.Session(&gorm.Session{DryRun: true}).Find(&accounts))
	fmt.Println(ex.Key[:7])
	// Output: gcv2:1:
}

func ExampleConfig_staleWhileRevalidate() {
	db, p, done := exampleDB(plugin.Config{TTL: 50 * time.Millisecond, StaleWhileRevalidate: time.Minute})
	defer done()
	var a, b Account
	db.First(&a, 1)
	time.Sleep(60 * time.Millisecond) // past the TTL, not invalidated
	db.First(&b, 1)                   // served at once; refreshed in the background
	fmt.Println(b.Owner, p.Stats().Hits, p.Stats().Revalidations)
	// Output: ann 1 1
}

func ExampleConfig_dependencies() {
	// A trigger on accounts writes audit_log: reads of audit_log depend on
	// accounts too.
	db, p, done := exampleDB(plugin.Config{Dependencies: map[string][]string{"audit_log": {"accounts"}}})
	defer done()
	db.Exec("CREATE TABLE audit_log (id integer PRIMARY KEY, msg text)")
	var n int64
	db.Table("audit_log").Count(&n)
	db.Model(&Account{ID: 1}).Update("balance", 5) // bumps accounts, so audit_log's entries too
	db.Table("audit_log").Count(&n)
	fmt.Println(p.Stats().Hits, p.Stats().Misses)
	// Output: 0 2
}

func ExampleConfig_onHit() {
	hits := 0
	db, _, done := exampleDB(plugin.Config{OnHit: func(context.Context) { hits++ }}) // e.g. gcotel.OnHit
	defer done()
	var a, b Account
	db.First(&a, 1)
	db.First(&b, 1)
	fmt.Println(hits)
	// Output: 1
}

func ExampleWithRecorder() {
	db, _, done := exampleDB(plugin.Config{})
	defer done()
	ctx, rec := plugin.WithRecorder(context.Background()) // what viewcache does for each request
	var accounts []Account
	db.WithContext(ctx).Find(&accounts)
	tags, _ := rec.Tables()
	fmt.Println(tags, rec.Wrote(), rec.Unknown() == "")
	// Output: [* accounts] false true
}

// Several instances of an application share one Redis store: a write
// through any of them invalidates the entries of all. (Not run by go test:
// it needs a Redis server.)
func Example_redisStore() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer rdb.Close() // the store does not close the client
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: "myapp:"})
	if err != nil {
		panic(err)
	}
	defer st.Close() // after the plugin's Close (deferred below, so run first)

	db, err := gorm.Open(sqlite.Open("app.db"), &gorm.Config{})
	if err != nil {
		panic(err)
	}
	p := plugin.New(plugin.Config{Store: st})
	// Install the plugin before the first write (AutoMigrate, seeding):
	// writes made before db.Use do not invalidate what other instances
	// (or an earlier run) stored.
	if err := db.Use(p); err != nil {
		panic(err)
	}
	defer p.Close() // waits for the bumps in flight; does not close st
}
