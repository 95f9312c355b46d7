package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
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
