package plugin

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/invalidation"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type identRow struct {
	ID   uint
	Name string
}

// openIdent opens dialector with one identRow named name.
func openIdent(t *testing.T, d gorm.Dialector, cfg *gorm.Config, name string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(d, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	if name != "" {
		if err := db.AutoMigrate(&identRow{}); err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&identRow{ID: 1, Name: name}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func identName(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var r identRow
	if err := db.First(&r, 1).Error; err != nil {
		t.Fatal(err)
	}
	return r.Name
}

func quietConfig() Config {
	return Config{Logger: slog.New(slog.DiscardHandler)}
}

// One Plugin on two databases with the same table and different rows: the
// second db.Use (or gorm.Open with a Config carrying the plugin) fails,
// rather than serving the first database's rows for the second.
func TestOnePluginTwoDatabases(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, how := range []string{"Use", "Config.Plugins"} {
			t.Run(dialect+"/"+how, func(t *testing.T) {
				t.Parallel()
				cfg := &gorm.Config{Logger: logger.Discard}
				first := openIdent(t, testdb.Fresh(t, dialect), cfg, "first")
				p := New(quietConfig())
				defer p.Close()
				if err := first.Use(p); err != nil {
					t.Fatal(err)
				}
				for range 2 {
					if got := identName(t, first); got != "first" {
						t.Fatalf("first database: %q, want first", got)
					}
				}
				if p.Stats().Hits == 0 {
					t.Fatalf("no hit on the first database: %+v", p.Stats())
				}

				d2 := testdb.Fresh(t, dialect)
				var second *gorm.DB
				var err error
				switch how {
				case "Use":
					second = openIdent(t, d2, &gorm.Config{Logger: logger.Discard}, "second")
					err = second.Use(p)
				case "Config.Plugins":
					second, err = gorm.Open(d2, &gorm.Config{Logger: logger.Discard, Plugins: map[string]gorm.Plugin{pluginName: p}})
					if err == nil {
						t.Cleanup(func() {
							if sqlDB, err := second.DB(); err == nil {
								sqlDB.Close()
							}
						})
						err = second.AutoMigrate(&identRow{})
						if err == nil {
							err = second.Create(&identRow{ID: 1, Name: "second"}).Error
						}
						if err != nil {
							t.Fatal(err)
						}
					}
				}
				if err == nil {
					var names []string
					for range 2 {
						names = append(names, identName(t, second))
					}
					t.Fatalf("installing the plugin on a second database succeeded; it read %q there (want an error, or second)", names)
				}
				if !errors.Is(err, ErrOtherDatabase) || !strings.HasPrefix(err.Error(), "gormcache:") {
					t.Fatalf("error %v, want ErrOtherDatabase", err)
				}
				// The first database is still served.
				if got := identName(t, first); got != "first" {
					t.Fatalf("first database after: %q", got)
				}
			})
		}
	}
}

// A second *gorm.DB on the same database (same DSN, its own pool) may share
// the plugin: its writes invalidate the first's reads.
func TestOnePluginSameDatabaseTwice(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			d := testdb.Fresh(t, dialect)
			first := openIdent(t, d, &gorm.Config{Logger: logger.Discard}, "first")
			p := New(quietConfig())
			defer p.Close()
			if err := first.Use(p); err != nil {
				t.Fatal(err)
			}
			identName(t, first)
			identName(t, first)
			second := openIdent(t, d, &gorm.Config{Logger: logger.Discard}, "")
			if err := second.Use(p); err != nil {
				t.Fatalf("Use on a second *gorm.DB of the same database: %v", err)
			}
			if err := second.Model(&identRow{}).Where("id = ?", 1).Update("name", "renamed").Error; err != nil {
				t.Fatal(err)
			}
			if got := identName(t, first); got != "renamed" {
				t.Fatalf("after a write through the second *gorm.DB: %q, want renamed", got)
			}
		})
	}
}

// The identity holds what the server itself can tell, beyond its address.
func TestReadIdentity(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		dialect string
		want    []string // in the identity, any of
	}{
		{"sqlite", []string{"test.db"}},
		{"postgres", []string{"/system:", "/started:"}},
		{"mysql", []string{"/"}},
	} {
		t.Run(c.dialect, func(t *testing.T) {
			t.Parallel()
			db := openIdent(t, testdb.Fresh(t, c.dialect), &gorm.Config{Logger: logger.Discard}, "")
			id, err := readIdentity(context.Background(), invalidation.DialectOf(db.Dialector.Name()), db.ConnPool)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, w := range c.want {
				found = found || strings.Contains(id, w)
			}
			if !found {
				t.Fatalf("identity %q, want one of %q", id, c.want)
			}
			if c.dialect == "mysql" && strings.HasSuffix(id, "/") {
				t.Fatalf("identity %q: no server uuid/uid", id)
			}
			t.Logf("identity %s", id)
		})
	}
}
