// Command quickstart shows gormcache on the embedded default: SQLite in a
// temporary directory and the in-process memory store, no server needed.
//
//	go run ./examples/quickstart
//
// It prints the queries it makes, whether each was a hit or a miss, an
// invalidation by a write, and the speed-up it measured; it exits non-zero if
// anything is not as it says.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// User is the example's model.
type User struct {
	ID   uint
	Name string
	Age  int
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	dir, err := os.MkdirTemp("", "gormcache-quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	if err := db.AutoMigrate(&User{}); err != nil {
		return err
	}
	for i := 1; i <= 100; i++ {
		db.Create(&User{Name: fmt.Sprintf("user%03d", i), Age: 20 + i%50})
	}

	// The one line: a zero Config is an in-memory store and a 5-minute TTL.
	cache := plugin.New(plugin.Config{})
	if err := db.Use(cache); err != nil {
		return err
	}
	defer cache.Close()

	step := func(what string, fn func() error) error {
		before := cache.Stats()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		after := cache.Stats()
		fmt.Fprintf(w, "%-44s hits +%d, misses +%d\n", what, after.Hits-before.Hits, after.Misses-before.Misses)
		return nil
	}
	expect := func(what string, hits, misses uint64, fn func() error) error {
		before := cache.Stats()
		if err := step(what, fn); err != nil {
			return err
		}
		after := cache.Stats()
		if after.Hits-before.Hits != hits || after.Misses-before.Misses != misses {
			return fmt.Errorf("%s: want %d hit(s) and %d miss(es)", what, hits, misses)
		}
		return nil
	}

	var u User
	// (a fresh destination each time: GORM adds a non-zero destination's key to WHERE)
	if err := expect("db.First(&u, 42)          (miss: database)", 0, 1, func() error { u = User{}; return db.First(&u, 42).Error }); err != nil {
		return err
	}
	if err := expect("db.First(&u, 42)          (hit: no database)", 1, 0, func() error { u = User{}; return db.First(&u, 42).Error }); err != nil {
		return err
	}
	fmt.Fprintf(w, "  -> %s, age %d\n", u.Name, u.Age)
	if err := step("db.Model(&u).Update(\"name\", \"renamed\")", func() error {
		return db.Model(&u).Update("name", "renamed").Error
	}); err != nil {
		return err
	}
	var again User
	if err := expect("db.First(&again, 42)      (invalidated: miss)", 0, 1, func() error { return db.First(&again, 42).Error }); err != nil {
		return err
	}
	fmt.Fprintf(w, "  -> %s (the write is seen at once)\n", again.Name)
	if again.Name != "renamed" {
		return errors.New("the read after the write returned old data")
	}

	// Speed: the same First by primary key and a 100-row Find, plain and cached.
	plainDB, err := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	measure := func(db *gorm.DB, fn func(db *gorm.DB) error) (time.Duration, error) {
		const n = 2000
		if err := fn(db); err != nil { // warm
			return 0, err
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := fn(db); err != nil {
				return 0, err
			}
		}
		return time.Since(start) / n, nil
	}
	for _, c := range []struct {
		name string
		fn   func(db *gorm.DB) error
	}{
		{"First by primary key", func(db *gorm.DB) error { var u User; return db.First(&u, 7).Error }},
		{"Find 100 rows", func(db *gorm.DB) error { var us []User; return db.Find(&us).Error }},
	} {
		tp, err := measure(plainDB, c.fn)
		if err != nil {
			return err
		}
		tc, err := measure(db, c.fn)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-22s plain %9v   cached %9v   %.1fx faster\n", c.name, tp, tc, float64(tp)/float64(tc))
	}
	st := cache.Stats()
	fmt.Fprintf(w, "stats: %d hits, %d misses, %d stored, %d invalidations\n", st.Hits, st.Misses, st.Stores, st.Invalidations)
	return nil
}
