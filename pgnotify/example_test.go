package pgnotify_test

import (
	"context"
	"log"
	"time"

	"github.com/gormcache/gormcache/pgnotify"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// The application opens its own connections with the skip setting (the
// plugin bumps their writes already), installs the triggers on the tables
// other programs write, and listens on a direct connection.
func ExampleListen() {
	ctx := context.Background()
	dsn := "host=127.0.0.1 user=app dbname=app sslmode=disable" // direct, not through PgBouncer

	db, err := gorm.Open(postgres.Open(dsn+" options='-c gormcache.skip_notify=on'"), &gorm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	cache := plugin.New(plugin.Config{})
	if err := db.Use(cache); err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	sqlDB, err := db.DB()
	if err != nil {
		log.Fatal(err)
	}
	if err := pgnotify.InstallTriggers(ctx, sqlDB, "articles", "products"); err != nil {
		log.Fatal(err)
	}
	l, err := pgnotify.Listen(ctx, dsn, cache, pgnotify.Config{Tables: []string{"articles", "products"}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// A health endpoint can report the listener's state.
	if s := l.Stats(); !s.Connected || time.Since(s.LastHeard) > time.Minute {
		log.Printf("cache listener unhealthy: %+v", s)
	}
}

// A process without the plugin (a sidecar, the CLI) bumps the shared store
// directly.
func ExampleStoreInvalidator() {
	ctx := context.Background()
	st, err := memstore.New(memstore.Config{}) // the application's shared store, in practice
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	l, err := pgnotify.Listen(ctx, "host=127.0.0.1 dbname=app", pgnotify.StoreInvalidator(st), pgnotify.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
}
