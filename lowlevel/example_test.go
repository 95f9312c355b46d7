package lowlevel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// A value computed from the orders table, cached until orders is written
// through GORM.
func Example_remember() {
	dir, _ := os.MkdirTemp("", "lowlevel")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	db.AutoMigrate(&Order{})

	p := plugin.New(plugin.Config{})
	c, err := lowlevel.New(p, lowlevel.Config{}) // on the plugin's store
	if err != nil {
		panic(err)
	}
	db.Use(p)
	defer p.Close()

	ctx := context.Background()
	total := func() int64 {
		n, err := lowlevel.Remember(ctx, c, "orders:total", time.Hour, []string{"orders"},
			func(ctx context.Context) (int64, error) {
				fmt.Println("computing")
				var n int64
				err := db.WithContext(ctx).Model(&Order{}).Select("COALESCE(SUM(amount), 0)").Scan(&n).Error
				return n, err
			})
		if err != nil {
			panic(err)
		}
		return n
	}
	fmt.Println(total())
	fmt.Println(total())          // from the cache
	db.Create(&Order{Amount: 42}) // a write to orders: the total is stale
	fmt.Println(total())
	// Output:
	// computing
	// 0
	// 0
	// computing
	// 42
}

func ExampleGet() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	lowlevel.Set(ctx, c, "greeting", "hello", time.Minute, "users")
	v, ok, err := lowlevel.Get[string](ctx, c, "greeting", "users")
	fmt.Printf("%q %v %v\n", v, ok, err)

	c.Invalidate(ctx, "users") // or a GORM write to users
	v, ok, err = lowlevel.Get[string](ctx, c, "greeting", "users")
	fmt.Printf("%q %v %v\n", v, ok, err)
	// Output:
	// "hello" true <nil>
	// "" false <nil>
}

// Add stores only if the key holds nothing: a lock with a TTL, Django's
// cache.add.
func ExampleAdd() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	first, _ := lowlevel.Add(ctx, c, "lock:import", "worker-1", 30*time.Second)
	second, _ := lowlevel.Add(ctx, c, "lock:import", "worker-2", 30*time.Second)
	owner, _, _ := lowlevel.Get[string](ctx, c, "lock:import")
	fmt.Println(first, second, owner)
	c.Delete(ctx, "lock:import")
	third, _ := lowlevel.Add(ctx, c, "lock:import", "worker-2", 30*time.Second)
	fmt.Println(third)
	// Output:
	// true false worker-1
	// true
}

func ExampleGetOrSet() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	v, loaded, _ := lowlevel.GetOrSet(ctx, c, "theme", "dark", 0)
	fmt.Println(v, loaded)
	v, loaded, _ = lowlevel.GetOrSet(ctx, c, "theme", "light", 0)
	fmt.Println(v, loaded)
	// Output:
	// dark false
	// dark true
}

func ExampleCache_Incr() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	_, err := c.Incr(ctx, "visits", 1)
	fmt.Println(errors.Is(err, lowlevel.ErrNotFound)) // as in Django, the key must exist

	lowlevel.Set(ctx, c, "visits", 0, time.Hour)
	c.Incr(ctx, "visits", 1)
	n, _ := c.Incr(ctx, "visits", 2)
	fmt.Println(n)
	n, _ = c.Incr(ctx, "visits", -1) // decr
	fmt.Println(n)
	// Output:
	// true
	// 3
	// 2
}

// A struct value, loaded once and then served until users or posts is
// written.
func ExampleRemember() {
	type Profile struct {
		Name  string
		Posts int
	}
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{Prefix: "app"})
	ctx := context.Background()

	load := func(ctx context.Context) (Profile, error) {
		fmt.Println("loading")
		return Profile{Name: "ann", Posts: 3}, nil
	}
	p, _ := lowlevel.Remember(ctx, c, "profile:1", 10*time.Minute, []string{"users", "posts"}, load)
	p, _ = lowlevel.Remember(ctx, c, "profile:1", 10*time.Minute, []string{"users", "posts"}, load)
	fmt.Println(p.Name, p.Posts)
	// Output:
	// loading
	// ann 3
}

// A value computed elsewhere (a background job) is stamped before it is
// computed, so that a write committed meanwhile makes it stale.
func ExampleSetStamped() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	stamp, _ := c.Stamp(ctx, "orders") // before reading orders
	report := "42 orders"              // … computed from orders …
	c.Invalidate(ctx, "orders")        // … while a write to orders commits
	lowlevel.SetStamped(ctx, c, "report", report, time.Hour, stamp)

	_, ok, _ := lowlevel.Get[string](ctx, c, "report", "orders")
	fmt.Println(ok) // the report may miss the write: it is never served
	// Output:
	// false
}

// Touch gives a live value a new TTL; Skip, Django's timeout 0, expires it.
func ExampleCache_Touch() {
	st, _ := memstore.New(memstore.Config{})
	c, _ := lowlevel.NewWithStore(st, lowlevel.Config{})
	ctx := context.Background()

	lowlevel.Set(ctx, c, "session", "data", time.Minute)
	ok, _ := c.Touch(ctx, "session", plugin.Forever)
	fmt.Println(ok)
	ok, _ = c.Touch(ctx, "session", lowlevel.Skip)
	_, found, _ := lowlevel.Get[string](ctx, c, "session")
	fmt.Println(ok, found)
	// Output:
	// true
	// true false
}
