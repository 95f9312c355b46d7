package plugin_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// outside changes a row behind the plugin's back (db.DB() is not seen).
func outside(t *testing.T, db *gorm.DB, id uint, balance int64) {
	t.Helper()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.Exec("UPDATE accounts SET balance = ? WHERE id = ?", balance, id); err != nil {
		t.Fatal(err)
	}
}

// ttlStore is a memstore that records the TTL of each entry stored.
type ttlStore struct {
	*memstore.Store
	mu   sync.Mutex
	ttls []time.Duration
}

func newTTLStore(t *testing.T) *ttlStore {
	s, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &ttlStore{Store: s}
}

func (s *ttlStore) record(ttl time.Duration) {
	s.mu.Lock()
	s.ttls = append(s.ttls, ttl)
	s.mu.Unlock()
}

func (s *ttlStore) Set(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	s.record(ttl)
	return s.Store.Set(ctx, key, b, ttl)
}

func (s *ttlStore) SetValue(ctx context.Context, key string, v any, size int, ttl time.Duration) error {
	s.record(ttl)
	return s.Store.SetValue(ctx, key, v, size, ttl)
}

// take returns the TTLs recorded since the last take.
func (s *ttlStore) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	ttls := s.ttls
	s.ttls = nil
	return ttls
}

// TestOptionTTLAndPolicyTTL checks which TTL the plugin gives the store
// (that the store expires entries at their TTL is the store's own test).
func TestOptionTTLAndPolicyTTL(t *testing.T) {
	t.Parallel()
	s := newTTLStore(t)
	db, _ := cachedDB(t, "sqlite", plugin.Config{Store: s, TTL: time.Hour, TableTTL: map[string]time.Duration{"accounts": 10 * time.Minute}})
	ctx := plugin.WithOptions(context.Background(), plugin.TTL(time.Minute))
	for _, tc := range []struct {
		name string
		db   func() *gorm.DB // a fresh chain for each query
		id   uint
		opts []plugin.Option
		want time.Duration
	}{
		{"TableTTL beats Config.TTL", func() *gorm.DB { return db }, 1, nil, 10 * time.Minute},
		{"a query's TTL beats TableTTL", func() *gorm.DB { return db }, 2, []plugin.Option{plugin.TTL(30 * time.Minute)}, 30 * time.Minute},
		{"a clause's TTL beats the context's", func() *gorm.DB { return db.WithContext(ctx).Clauses(plugin.TTL(5 * time.Minute)) }, 3, nil, 5 * time.Minute},
		{"the context's TTL applies", func() *gorm.DB { return db.WithContext(ctx) }, 4, nil, time.Minute},
	} {
		readID(t, tc.db(), tc.id, tc.opts...)
		if got := s.take(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: stored with TTLs %v, want [%v]", tc.name, got, tc.want)
		}
		readID(t, tc.db(), tc.id, tc.opts...) // a hit stores nothing
		if got := s.take(); len(got) != 0 {
			t.Errorf("%s: a hit stored again with TTLs %v", tc.name, got)
		}
	}
}

// readID reads account id's balance (a fresh destination each time).
func readID(t *testing.T, db *gorm.DB, id uint, opts ...plugin.Option) int64 {
	t.Helper()
	tx := db
	for _, o := range opts {
		tx = tx.Clauses(o)
	}
	var a Account
	if err := tx.First(&a, id).Error; err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

func TestOptionSkipRefreshTags(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	readID(t, db, 1)
	outside(t, db, 1, 50)

	if got := readID(t, db, 1, plugin.Skip()); got != 50 || p.Stats().Bypasses["skip"] != 1 {
		t.Fatalf("Skip: balance %d, skip bypasses %d", got, p.Stats().Bypasses["skip"])
	}
	if got := readID(t, db, 1); got != 10 {
		t.Fatalf("Skip must not have replaced the entry: %d", got)
	}
	if got := readID(t, db, 1, plugin.Refresh()); got != 50 {
		t.Fatalf("Refresh: %d, want 50", got)
	}
	hits := p.Stats().Hits
	if got := readID(t, db, 1); got != 50 || p.Stats().Hits != hits+1 {
		t.Fatalf("after Refresh the entry is replaced: %d (hits +%d)", got, p.Stats().Hits-hits)
	}

	// Tags: the entry also depends on "rates".
	readID(t, db, 2, plugin.Tags("rates"))
	outside(t, db, 2, 77)
	if got := readID(t, db, 2, plugin.Tags("rates")); got != 20 {
		t.Fatalf("cached: %d", got)
	}
	if err := p.Invalidate(context.Background(), "Rates"); err != nil {
		t.Fatal(err)
	}
	if got := readID(t, db, 2, plugin.Tags("rates")); got != 77 {
		t.Fatalf("after Invalidate(rates): %d, want 77", got)
	}

	// Skip through the context, on Raw and Row too.
	ctx := plugin.WithOptions(context.Background(), plugin.Skip())
	outside(t, db, 3, 33)
	var n int64
	db.WithContext(ctx).Raw("SELECT balance FROM accounts WHERE id = 3").Scan(&n)
	db.WithContext(ctx).Raw("SELECT balance FROM accounts WHERE id = 3").Scan(&n)
	if n != 33 || p.Stats().Bypasses["skip"] < 3 {
		t.Fatalf("Skip through the context: %d, skip bypasses %d", n, p.Stats().Bypasses["skip"])
	}
}

func TestOptionsReachPreload(t *testing.T) {
	t.Parallel()
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	if err := seed(db); err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	var us []User
	if err := db.Clauses(plugin.Skip()).Preload("Pets.Toys").Preload("Languages").Find(&us).Error; err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	// users, pets, toys, user_languages (join), languages: every one skipped
	if st.Bypasses["skip"] < 4 || st.Misses != 0 || st.Hits != 0 {
		t.Fatalf("Skip did not reach the preloads: %+v", st)
	}
}

func TestBadOptionsAreReported(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "sqlite", plugin.Config{})
	var a Account
	err := db.Clauses(plugin.TTL(-5*time.Second)).First(&a, 1).Error
	if !errors.Is(err, plugin.ErrInvalidOption) {
		t.Fatalf("TTL(-5s) as a clause: %v", err)
	}
	ctx := plugin.WithOptions(context.Background(), plugin.Tags(""))
	err = db.WithContext(ctx).First(&a, 1).Error
	if !errors.Is(err, plugin.ErrInvalidOption) {
		t.Fatalf("Tags(\"\") through the context: %v", err)
	}
	var n int64
	err = db.WithContext(ctx).Raw("SELECT count(*) FROM accounts").Scan(&n).Error
	if !errors.Is(err, plugin.ErrInvalidOption) {
		t.Fatalf("Raw with a bad context option: %v", err)
	}
}

func TestDenyAllowOptIn(t *testing.T) {
	t.Parallel()
	type tc struct {
		name   string
		cfg    plugin.Config
		ask    []plugin.Option
		cached bool
		reason plugin.Reason
	}
	for _, c := range []tc{
		{"deny", plugin.Config{Deny: []string{"Accounts"}}, nil, false, "denied"},
		{"allow other", plugin.Config{Allow: []string{"users"}}, nil, false, "not_allowed"},
		{"allow", plugin.Config{Allow: []string{"accounts"}}, nil, true, ""},
		{"opt-in, not asked", plugin.Config{OptIn: true}, nil, false, "opt_in"},
		{"opt-in, Cache", plugin.Config{OptIn: true}, []plugin.Option{plugin.Cache()}, true, ""},
		{"opt-in, TTL", plugin.Config{OptIn: true}, []plugin.Option{plugin.TTL(time.Minute)}, true, ""},
		{"deny wins over asking", plugin.Config{Deny: []string{"accounts"}}, []plugin.Option{plugin.Cache()}, false, "denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, p := cachedDB(t, "sqlite", c.cfg)
			for i := 0; i < 2; i++ {
				tx := db
				for _, o := range c.ask {
					tx = tx.Clauses(o)
				}
				var as []Account
				if err := tx.Find(&as).Error; err != nil || len(as) != 5 {
					t.Fatalf("Find: %v (%d rows)", err, len(as))
				}
			}
			st := p.Stats()
			if (st.Hits == 1) != c.cached {
				t.Errorf("hits %d, cached want %v", st.Hits, c.cached)
			}
			if c.reason != "" && st.Bypasses[c.reason] != 2 {
				t.Errorf("bypasses %v, want 2 × %s", st.Bypasses, c.reason)
			}
		})
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg   plugin.Config
		field string
	}{
		{plugin.Config{Allow: []string{"users"}, Deny: []string{"Users"}}, "Allow and Deny"},
		{plugin.Config{Deny: []string{""}}, "Deny"},
		{plugin.Config{Allow: []string{" "}}, "Allow"},
		{plugin.Config{TableTTL: map[string]time.Duration{"users": -time.Second}}, "TableTTL"},
		{plugin.Config{TTLJitter: 1.5}, "TTLJitter"},
		{plugin.Config{Version: -1}, "Version"},
		{plugin.Config{Dependencies: map[string][]string{"v": {""}}}, "Dependencies"},
	} {
		db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
		err := db.Use(plugin.New(c.cfg))
		if !errors.Is(err, plugin.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: error %v, want ErrInvalidConfig naming %s", c.cfg, err, c.field)
		}
	}
}

func TestSkipEmptyAndVersion(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{SkipEmpty: true})
	var as []Account
	db.Where("balance > 1000").Find(&as)
	db.Where("balance > 1000").Find(&as)
	if p.Stats().Hits != 0 || p.Stats().Bypasses["empty"] != 2 {
		t.Fatalf("SkipEmpty: %+v", p.Stats())
	}

	// Two plugins with different Versions on one store share nothing.
	shared, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	dbA, pA := cachedDB(t, "sqlite", plugin.Config{Store: shared, Identity: "same", Version: 1})
	dbB, pB := cachedDB(t, "sqlite", plugin.Config{Store: shared, Identity: "same", Version: 2})
	dbA.Find(&as)
	dbB.Find(&as)
	if pA.Stats().Misses != 1 || pB.Stats().Misses != 1 || pB.Stats().Hits != 0 {
		t.Fatalf("versions shared an entry: A %+v, B %+v", pA.Stats(), pB.Stats())
	}
	dbC, pC := cachedDB(t, "sqlite", plugin.Config{Store: shared, Identity: "same", Version: 1})
	dbC.Find(&as)
	if pC.Stats().Hits != 1 {
		t.Fatalf("the same Version must share entries: %+v", pC.Stats())
	}
}

// countingPool counts the queries that reach the database, and makes the
// first one slow so that concurrent identical misses overlap it.
type countingPool struct {
	gorm.ConnPool
	queries atomic.Int64
	delay   time.Duration
}

func (c *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if strings.Contains(q, "accounts") {
		if c.queries.Add(1) == 1 {
			time.Sleep(c.delay)
		}
	}
	return c.ConnPool.QueryContext(ctx, q, args...)
}

// TestStampede: 200 concurrent identical misses query the database once.
func TestStampede(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
			if err := db.AutoMigrate(&Account{}); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 5; i++ {
				db.Create(&Account{Owner: fmt.Sprint("o", i), Balance: int64(i)})
			}
			cp := &countingPool{ConnPool: db.ConnPool, delay: 300 * time.Millisecond}
			db.ConnPool, db.Statement.ConnPool = cp, cp
			p := plugin.New(plugin.Config{Logger: quiet})
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, 200)
			for i := 0; i < 200; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					var as []Account
					if err := db.Order("id").Find(&as).Error; err != nil {
						errs <- err
						return
					}
					if len(as) != 5 || as[4].Balance != 5 {
						errs <- fmt.Errorf("wrong rows: %+v", as)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := p.Stats()
			if n := cp.queries.Load(); n != 1 {
				t.Fatalf("%d queries reached the database, want 1 (stats %+v)", n, st)
			}
			if st.Hits+st.Coalesced != 199 || st.Misses != 1 {
				t.Fatalf("hits %d + coalesced %d, misses %d", st.Hits, st.Coalesced, st.Misses)
			}
		})
	}
}

func TestPerTableStatsAndExplain(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{TableTTL: map[string]time.Duration{"accounts": time.Minute}})
	var as []Account
	db.Find(&as)
	db.Find(&as)
	db.Find(&as)
	if ts := p.Stats().Tables["accounts"]; ts.Hits != 2 || ts.Misses != 1 {
		t.Fatalf("per-table stats: %+v", p.Stats().Tables)
	}
	dry := db.Session(&gorm.Session{DryRun: true})
	ex, err := p.Explain(dry.Where("balance > ?", 10).Find(&as))
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Cacheable || ex.Key == "" || len(ex.Tables) != 1 || ex.Tables[0] != "accounts" || ex.TTL != time.Minute {
		t.Fatalf("Explain read: %+v", ex)
	}
	ex, _ = p.Explain(dry.Clauses(plugin.Skip()).Find(&as))
	if ex.Cacheable || ex.Reason != "skip" {
		t.Fatalf("Explain skip: %+v", ex)
	}
	ex, _ = p.Explain(dry.Model(&Account{}).Where("id = 1").Update("balance", 3))
	if !ex.Write || len(ex.Tables) == 0 || ex.Tables[0] != "accounts" {
		t.Fatalf("Explain write: %+v", ex)
	}
	ex, _ = p.Explain(dry.Raw("SELECT random()").Scan(&as))
	if ex.Cacheable || ex.Reason != "volatile_function" {
		t.Fatalf("Explain volatile: %+v", ex)
	}
	if _, err := p.Explain(db.Model(&Account{})); err == nil {
		t.Fatal("Explain of an unbuilt statement must fail")
	}
}

// traceLogger records the SQL GORM's logger is given.
type traceLogger struct {
	logger.Interface
	mu  sync.Mutex
	sql []string
}

func (l *traceLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	s, _ := fc()
	l.mu.Lock()
	l.sql = append(l.sql, s)
	l.mu.Unlock()
}

func TestLoggerShowsHits(t *testing.T) {
	t.Parallel()
	tl := &traceLogger{Interface: logger.Discard}
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: tl})
	db.AutoMigrate(&Account{})
	db.Create(&Account{Owner: "x", Balance: 1})
	p := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	tl.mu.Lock()
	tl.sql = nil
	tl.mu.Unlock()
	readID(t, db, 1)
	readID(t, db, 1)
	var n int64
	db.Raw("SELECT count(*) FROM accounts").Scan(&n)
	db.Raw("SELECT count(*) FROM accounts").Scan(&n)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.sql) != 4 {
		t.Fatalf("traced %q", tl.sql)
	}
	for i, s := range tl.sql {
		hit := strings.HasPrefix(s, "/* gormcache hit */ ")
		if hit != (i%2 == 1) {
			t.Errorf("statement %d %q: marked %v", i, s, hit)
		}
	}
}

// TestStaleWhileRevalidate: past its TTL an entry is served at once while
// one background query refreshes it; an invalidated entry never is.
func TestStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{TTL: 150 * time.Millisecond, StaleWhileRevalidate: time.Minute})
	readID(t, db, 1) // miss, stored
	outside(t, db, 1, 41)
	time.Sleep(200 * time.Millisecond)
	if got := readID(t, db, 1); got != 10 {
		t.Fatalf("past its TTL, not invalidated: %d, want the stale 10 served at once", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Stores < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.Stats(); st.Revalidations != 1 || st.Stores != 2 {
		t.Fatalf("revalidations %d, stores %d", st.Revalidations, st.Stores)
	}
	hits := p.Stats().Hits
	if got := readID(t, db, 1); got != 41 || p.Stats().Hits != hits+1 {
		t.Fatalf("after the refresh: %d (hit %v), want 41 from the cache", got, p.Stats().Hits == hits+1)
	}
	// Invalidated by a write: never served stale.
	time.Sleep(200 * time.Millisecond)
	if err := db.Model(&Account{ID: 1}).Update("balance", 42).Error; err != nil {
		t.Fatal(err)
	}
	if got := readID(t, db, 1); got != 42 {
		t.Fatalf("after a write: %d, want 42", got)
	}
	// Without the option, an expired entry is a miss.
	db2, p2 := cachedDB(t, "sqlite", plugin.Config{TTL: 100 * time.Millisecond})
	readID(t, db2, 2)
	outside(t, db2, 2, 7)
	time.Sleep(150 * time.Millisecond)
	if got := readID(t, db2, 2); got != 7 || p2.Stats().Revalidations != 0 {
		t.Fatalf("without StaleWhileRevalidate: %d", got)
	}
}
