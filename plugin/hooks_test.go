package plugin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/logger"
)

// Item is a row of one tenant: tenant 1 has 7 items, tenant 2 has 5.
type Item struct {
	ID       uint
	TenantID int
	Name     string `gorm:"size:32"`
}

type tenantKey struct{}

func withTenant(tenant int) context.Context {
	return context.WithValue(context.Background(), tenantKey{}, tenant)
}

// tenantFilter is an application's replacement of gorm:query: it adds the
// context's tenant to every read of items, then calls next.
type tenantFilter struct{ ran atomic.Int64 }

func (f *tenantFilter) callback(next func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		f.ran.Add(1)
		if tenant, ok := db.Statement.Context.Value(tenantKey{}).(int); ok && db.Statement.Table == "items" {
			db.Where("tenant_id = ?", tenant)
		}
		next(db)
	}
}

// replaceQuery puts the tenant filter in place of gorm:query, calling what
// was there (next == nil) or GORM's own callbacks.Query.
func (f *tenantFilter) replaceQuery(t *testing.T, db *gorm.DB, next func(*gorm.DB)) {
	t.Helper()
	if next == nil {
		next = db.Callback().Query().Get("gorm:query")
	}
	if err := db.Callback().Query().Replace("gorm:query", f.callback(next)); err != nil {
		t.Fatal(err)
	}
}

// A gorm:query replaced by the application runs on every statement, hit or
// miss, and what it adds to the statement is part of the key: in whichever
// order it was installed, the cached database answers as the plain one does
// and two tenants never share an entry.
func TestReplacedQueryCallbackRuns(t *testing.T) {
	t.Parallel()
	orders := []struct {
		name string
		// install installs the plugin and the filter on db.
		install func(t *testing.T, db *gorm.DB, p *plugin.Plugin, f *tenantFilter)
	}{
		{"replaced before Use", func(t *testing.T, db *gorm.DB, p *plugin.Plugin, f *tenantFilter) {
			f.replaceQuery(t, db, nil)
			use(t, db, p)
		}},
		{"replaced after Use, calling the plugin's", func(t *testing.T, db *gorm.DB, p *plugin.Plugin, f *tenantFilter) {
			use(t, db, p)
			f.replaceQuery(t, db, nil)
		}},
		{"replaced after Use, calling callbacks.Query", func(t *testing.T, db *gorm.DB, p *plugin.Plugin, f *tenantFilter) {
			use(t, db, p)
			f.replaceQuery(t, db, callbacks.Query)
		}},
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, order := range orders {
			t.Run(dialect+"/"+order.name, func(t *testing.T) {
				t.Parallel()
				db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
				if err := db.AutoMigrate(&Item{}); err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= 12; i++ {
					tenant := 1
					if i > 7 {
						tenant = 2
					}
					if err := db.Create(&Item{TenantID: tenant, Name: fmt.Sprintf("item%d", i)}).Error; err != nil {
						t.Fatal(err)
					}
				}
				sqlDB, err := db.DB()
				if err != nil {
					t.Fatal(err)
				}
				plainDB, err := gorm.Open(connDialector(dialect, sqlDB), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				var plainF tenantFilter
				plainF.replaceQuery(t, plainDB, nil)

				var f tenantFilter
				p := plugin.New(plugin.Config{Logger: quiet})
				t.Cleanup(func() { p.Close() })
				order.install(t, db, p, &f)

				reads := []struct {
					name string
					run  func(db *gorm.DB, ctx context.Context) (string, error)
				}{
					{"Find", func(db *gorm.DB, ctx context.Context) (string, error) {
						var items []Item
						err := db.WithContext(ctx).Order("id").Find(&items).Error
						return fmt.Sprint(items), err
					}},
					{"Count", func(db *gorm.DB, ctx context.Context) (string, error) {
						var n int64
						err := db.WithContext(ctx).Model(&Item{}).Count(&n).Error
						return fmt.Sprint(n), err
					}},
					{"First", func(db *gorm.DB, ctx context.Context) (string, error) {
						var it Item
						err := db.WithContext(ctx).Order("id desc").First(&it).Error
						return fmt.Sprint(it), err
					}},
					{"Find into maps", func(db *gorm.DB, ctx context.Context) (string, error) {
						var rows []map[string]any
						err := db.WithContext(ctx).Model(&Item{}).Select("id").Order("id").Find(&rows).Error
						ids := make([]string, len(rows))
						for i, r := range rows {
							ids[i] = fmt.Sprint(r["id"])
						}
						return strings.Join(ids, ","), err
					}},
				}
				for round := range 3 {
					for _, r := range reads {
						for _, tenant := range []int{1, 2} {
							want, err := r.run(plainDB, withTenant(tenant))
							if err != nil {
								t.Fatalf("plain %s: %v", r.name, err)
							}
							before := f.ran.Load()
							got, err := r.run(db, withTenant(tenant))
							if err != nil {
								t.Fatalf("round %d, tenant %d, %s: %v", round, tenant, r.name, err)
							}
							if got != want {
								t.Errorf("round %d, tenant %d, %s: cached %s, plain %s", round, tenant, r.name, got, want)
							}
							if ran := f.ran.Load() - before; ran != 1 {
								t.Errorf("round %d, tenant %d, %s: the application's gorm:query ran %d times, want 1", round, tenant, r.name, ran)
							}
						}
					}
				}
				if st := p.Stats(); st.Hits < uint64(2*2*len(reads)) {
					t.Errorf("stats %+v: want the later rounds served from the cache", st)
				}
			})
		}
	}
}

func use(t *testing.T, db *gorm.DB, p *plugin.Plugin) {
	t.Helper()
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
}

// Hooked is an Account whose AfterFind records the statement's SQL.
type Hooked struct {
	ID      uint
	Owner   string
	Balance int64
}

func (Hooked) TableName() string { return "accounts" }

var hookedSQL struct {
	mu  sync.Mutex
	sql map[string][]string // test name → SQL seen by AfterFind
}

func (h *Hooked) AfterFind(tx *gorm.DB) error {
	name, _ := tx.Statement.Context.Value(testNameKey{}).(string)
	hookedSQL.mu.Lock()
	defer hookedSQL.mu.Unlock()
	if hookedSQL.sql == nil {
		hookedSQL.sql = map[string][]string{}
	}
	hookedSQL.sql[name] = append(hookedSQL.sql[name], tx.Statement.SQL.String())
	return nil
}

type testNameKey struct{}

func takeHookedSQL(name string) []string {
	hookedSQL.mu.Lock()
	defer hookedSQL.mu.Unlock()
	s := hookedSQL.sql[name]
	delete(hookedSQL.sql, name)
	return s
}

// AfterFind hooks see the statement's SQL as plain GORM shows it, hit or
// miss; the hit marker is for GORM's logger (and the callbacks that run
// after the hooks, such as tracing plugins).
func TestHooksDoNotSeeHitMarker(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		// replaced: gorm:query is the application's, so hits take the
		// ordinary path (the statement's read pool) instead of the fast one
		for _, replaced := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/replaced=%v", dialect, replaced), func(t *testing.T) {
				t.Parallel()
				tl := &traceLogger{Interface: logger.Discard}
				db := testdb.Open(t, dialect, &gorm.Config{Logger: tl})
				seedAccounts(t, db)
				sqlDB, err := db.DB()
				if err != nil {
					t.Fatal(err)
				}
				plainDB, err := gorm.Open(connDialector(dialect, sqlDB), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				if replaced {
					var f tenantFilter
					f.replaceQuery(t, db, nil)
				}
				p := plugin.New(plugin.Config{Logger: quiet})
				use(t, db, p)
				t.Cleanup(func() { p.Close() })

				reads := []struct {
					name string
					run  func(db *gorm.DB) error
				}{
					{"First", func(db *gorm.DB) error { var h Hooked; return db.First(&h, 2).Error }},
					{"Find", func(db *gorm.DB) error { var hs []Hooked; return db.Where("balance > ?", 10).Find(&hs).Error }},
				}
				for _, r := range reads {
					key := t.Name() + "/" + r.name
					ctx := context.WithValue(context.Background(), testNameKey{}, key)
					if err := r.run(plainDB.WithContext(ctx)); err != nil {
						t.Fatal(err)
					}
					want := takeHookedSQL(key)
					if len(want) == 0 || strings.Contains(want[0], "gormcache") {
						t.Fatalf("%s: plain AfterFind saw %q", r.name, want)
					}
					tl.mu.Lock()
					tl.sql = nil
					tl.mu.Unlock()
					hits := p.Stats().Hits
					for _, what := range []string{"miss", "hit"} {
						if err := r.run(db.WithContext(ctx)); err != nil {
							t.Fatal(err)
						}
						if got := takeHookedSQL(key); !slices.Equal(got, want) {
							t.Errorf("%s (%s): AfterFind saw %q, plain GORM shows %q", r.name, what, got, want)
						}
					}
					if p.Stats().Hits != hits+1 {
						t.Fatalf("%s: %d hits, want 1", r.name, p.Stats().Hits-hits)
					}
					tl.mu.Lock()
					logged := slices.Clone(tl.sql)
					tl.mu.Unlock()
					if len(logged) != 2 || strings.Contains(logged[0], hitMarker) || !strings.HasPrefix(logged[1], hitMarker) {
						t.Errorf("%s: the logger showed %q, want the miss unmarked and the hit marked", r.name, logged)
					}
				}
			})
		}
	}
}

// With gorm:query replaced after db.Use by a callback that does not call the
// plugin's, statements of the query chain still go through the plugin: a
// write through it (RETURNING) invalidates, and preloads, each cached on its
// own, read through the pool the statement had.
func TestReplacedQueryCallbackWritesAndPreloads(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db, p := cachedDB(t, dialect, plugin.Config{})
			if err := db.AutoMigrate(&Pet{}, &Toy{}); err != nil {
				t.Fatal(err)
			}
			if err := db.Create(&Pet{Name: "rex", Toys: []Toy{{Name: "ball"}, {Name: "bone"}}}).Error; err != nil {
				t.Fatal(err)
			}
			var f tenantFilter
			f.replaceQuery(t, db, callbacks.Query)

			if got := balanceOf(t, db, 1); got != 10 {
				t.Fatalf("balance %d, want 10", got)
			}
			if got := balanceOf(t, db, 1); got != 10 || p.Stats().Hits != 1 {
				t.Fatalf("balance %d, %d hits: want 10 from the cache", got, p.Stats().Hits)
			}
			var ids []uint
			if err := db.Raw("UPDATE accounts SET balance = 99 WHERE id = 1 RETURNING id").Find(&ids).Error; err != nil || len(ids) != 1 {
				t.Fatalf("UPDATE … RETURNING: %v, %v", ids, err)
			}
			if got := balanceOf(t, db, 1); got != 99 {
				t.Fatalf("after a write through the query chain: balance %d, want 99", got)
			}

			for i := range 2 {
				var pets []Pet
				if err := db.Preload("Toys").Find(&pets).Error; err != nil {
					t.Fatal(err)
				}
				if len(pets) != 1 || len(pets[0].Toys) != 2 {
					t.Fatalf("read %d: pets %+v", i, pets)
				}
			}
			if st := p.Stats(); st.Tables["pets"].Hits != 1 || st.Tables["toys"].Hits != 1 {
				t.Errorf("stats %+v: want the pets and their toys served from the cache the second time", st)
			}
		})
	}
}
