// Package benchsuite holds the measurements behind gormcache's performance
// targets, shared by the plugin's benchmarks (go test -bench) and the
// gormcache-bench program, so that both measure exactly the same thing.
//
// An Env is one database seen through two *gorm.DB: Plain (GORM alone) and
// Cached (GORM with the plugin and its in-process store). Plain and cached
// cases run in the same process, on the same database and table, one after
// the other.
package benchsuite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/console"
	"github.com/gormcache/gormcache/internal/nulldb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Rows is the number of rows of the table.
const Rows = 100

// Table is the table of BenchRow.
const Table = "bench_rows"

// BenchRow is the small model every case reads and writes.
type BenchRow struct {
	ID        uint   `gorm:"primaryKey"`
	Name      string `gorm:"size:64"`
	Email     string `gorm:"size:128"`
	Age       int
	CreatedAt time.Time
	Score     float64
	Active    bool
}

// TableName pins the table name.
func (BenchRow) TableName() string { return Table }

// row returns the seeded row of id i (1-based).
func row(i int) BenchRow {
	return BenchRow{
		ID:        uint(i),
		Name:      fmt.Sprintf("user-%03d", i),
		Email:     fmt.Sprintf("user-%03d@example.com", i),
		Age:       300 + i%50, // ≥ 256, like the ages written later: boxing them allocates alike
		CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour),
		Score:     float64(i) * 1.5,
		Active:    i%2 == 0,
	}
}

// NullConfig is the null database's answer: the seeded rows, with the
// driver values pgx returns for them (score is a numeric column, GORM's
// default for float64 on PostgreSQL, and arrives as a string), for a query
// without LIMIT; the first of them for a query with one (First).
func NullConfig() nulldb.Config {
	all := &nulldb.Result{Columns: []string{"id", "name", "email", "age", "created_at", "score", "active"}}
	for i := 1; i <= Rows; i++ {
		r := row(i)
		all.Rows = append(all.Rows, []driver.Value{int64(r.ID), r.Name, r.Email, int64(r.Age), r.CreatedAt, strconv.FormatFloat(r.Score, 'f', -1, 64), r.Active})
	}
	one := &nulldb.Result{Columns: all.Columns, Rows: all.Rows[:1]}
	return nulldb.Config{
		Respond: func(query string, _ []driver.NamedValue) *nulldb.Result {
			if strings.Contains(query, "SELECT c.relname FROM pg_catalog.pg_class c") {
				// the plugin's read of the catalog's tables: the one table
				return &nulldb.Result{Columns: []string{"relname"}, Rows: [][]driver.Value{{Table}}}
			}
			if strings.Contains(query, "pg_catalog") {
				return &nulldb.Result{} // its other catalog reads: no keys, views or triggers
			}
			if strings.Contains(query, "LIMIT") {
				return one
			}
			return nil
		},
		Result: all,
	}
}

// Env is one database, plain and cached.
type Env struct {
	Name   string
	Plain  *gorm.DB
	Cached *gorm.DB
	Plugin *plugin.Plugin

	seq int // the last age written

	rawGet func(ctx context.Context, key string) ([]byte, error)
	rawKey func(string) string
}

// Options configure Open.
type Options struct {
	// Seed creates and fills the table (false for the null database).
	Seed bool
	// Identity is the plugin's Config.Identity ("" means asked from the
	// database).
	Identity string
	// Store is the plugin's store; nil means the in-process default.
	Store store.Store
	// RawGet, with Store, reads a store key's bytes directly (the bare GET
	// a Redis hit is compared with); RawKey maps a plugin key to it.
	RawGet func(ctx context.Context, key string) ([]byte, error)
	RawKey func(pluginKey string) string
}

// Open opens dial() twice, as Plain and as Cached (with a new plugin of the
// default Config and the in-process store), and seeds the table when asked.
func Open(name string, dial func() gorm.Dialector, opt Options) (*Env, error) {
	gcfg := func() *gorm.Config { return &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)} }
	plain, err := gorm.Open(dial(), gcfg())
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	e := &Env{Name: name, Plain: plain}
	if opt.Seed {
		if err := seed(plain); err != nil {
			e.Close()
			return nil, fmt.Errorf("%s: seed: %w", name, err)
		}
	}
	cached, err := gorm.Open(dial(), gcfg())
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	e.Cached = cached
	e.Plugin = plugin.New(plugin.Config{Identity: opt.Identity, Store: opt.Store})
	e.rawGet, e.rawKey = opt.RawGet, opt.RawKey
	if err := cached.Use(e.Plugin); err != nil {
		e.Close()
		return nil, fmt.Errorf("%s: use plugin: %w", name, err)
	}
	if err := e.check(); err != nil {
		e.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return e, nil
}

func seed(db *gorm.DB) error {
	if err := db.Migrator().DropTable(&BenchRow{}); err != nil {
		return err
	}
	if err := db.AutoMigrate(&BenchRow{}); err != nil {
		return err
	}
	rows := make([]BenchRow, Rows)
	for i := range rows {
		rows[i] = row(i + 1)
	}
	return db.Create(&rows).Error
}

// check reads through both handles, twice through the cached one (a miss,
// then a hit), and compares.
func (e *Env) check() error {
	var a, b, c BenchRow
	if err := e.Plain.First(&a, 7).Error; err != nil {
		return err
	}
	if err := e.Cached.First(&b, 7).Error; err != nil {
		return err
	}
	if err := e.Cached.First(&c, 7).Error; err != nil {
		return err
	}
	if a.Name != b.Name || b.Name != c.Name || !a.CreatedAt.Equal(c.CreatedAt) || a.Score != c.Score {
		return fmt.Errorf("plain, miss and hit differ: %+v / %+v / %+v", a, b, c)
	}
	var all []BenchRow
	if err := e.Cached.Find(&all).Error; err != nil {
		return err
	}
	if len(all) != Rows {
		return fmt.Errorf("Find returned %d rows, want %d", len(all), Rows)
	}
	s := e.Plugin.Stats()
	if s.Hits < 1 || s.Stores < 2 {
		return fmt.Errorf("the plugin did not cache: %+v", s)
	}
	return nil
}

// Close closes both handles' pools and the plugin. It may be called again.
func (e *Env) Close() {
	for _, db := range []*gorm.DB{e.Plain, e.Cached} {
		if db == nil {
			continue
		}
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	}
	if e.Plugin != nil {
		_ = e.Plugin.Close()
	}
}

func first(b *testing.B, db *gorm.DB, i int) {
	var r BenchRow // fresh: GORM adds a non-zero destination's key to WHERE
	if err := db.First(&r, i%Rows+1).Error; err != nil {
		b.Fatal(err)
	}
}

func find(b *testing.B, db *gorm.DB) {
	var rs []BenchRow
	if err := db.Find(&rs).Error; err != nil {
		b.Fatal(err)
	}
	if len(rs) != Rows {
		b.Fatalf("Find: %d rows, want %d", len(rs), Rows)
	}
}

// FirstPlain: First by primary key, GORM alone (ids 1…100 in turn).
func (e *Env) FirstPlain(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		first(b, e.Plain, i)
	}
}

// FirstHit: the same, every query a hit (all 100 ids cached beforehand).
func (e *Env) FirstHit(b *testing.B) {
	for i := 0; i < Rows; i++ {
		first(b, e.Cached, i)
	}
	before := e.Plugin.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first(b, e.Cached, i)
	}
	b.StopTimer()
	e.expect(b, before, b.N, 0)
}

// FirstHitConsole: FirstHit with the console (package console) collecting
// per-shape figures and sampling the plugin every second, as an
// application serving /debug/gormcache runs it; stopped after the case.
func (e *Env) FirstHitConsole(b *testing.B) {
	c, err := console.New(e.Plugin, console.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	e.FirstHit(b)
	b.StopTimer()
	if s := shapeHits(e.Plugin); s < uint64(b.N) {
		b.Fatalf("the console counted %d hits of First, want at least %d", s, b.N)
	}
}

// FirstHitCPU measures the CPU time per First hit of the thread running
// n of them (locked to it), with the console collecting or not: unlike
// wall time, it does not count the time other processes had the core (the
// console's sampling goroutine, on another thread, is not counted either:
// it runs once a second). ok is false where threads' CPU time cannot be
// read (outside Linux).
func (e *Env) FirstHitCPU(n int, collecting bool) (perOp time.Duration, ok bool, err error) {
	if collecting {
		c, err := console.New(e.Plugin, console.Options{})
		if err != nil {
			return 0, false, err
		}
		defer c.Close()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < Rows; i++ { // every id cached (and the plan made) beforehand
		var r BenchRow
		if err := e.Cached.First(&r, i%Rows+1).Error; err != nil {
			return 0, false, err
		}
	}
	before := e.Plugin.Stats()
	start, ok := threadCPU()
	if !ok {
		return 0, false, nil
	}
	for i := 0; i < n; i++ {
		var r BenchRow
		if err := e.Cached.First(&r, i%Rows+1).Error; err != nil {
			return 0, false, err
		}
	}
	end, _ := threadCPU()
	if hits := e.Plugin.Stats().Hits - before.Hits; hits != uint64(n) {
		return 0, false, fmt.Errorf("%d hits of %d Firsts", hits, n)
	}
	return (end - start) / time.Duration(n), true, nil
}

// shapeHits adds up the hits of the shapes collected.
func shapeHits(p *plugin.Plugin) uint64 {
	n := uint64(0)
	for _, s := range p.Shapes().Shapes {
		n += s.Hits
	}
	return n
}

// FirstMiss: the same, every query a miss that is stored.
//
// How each iteration is made a miss: the table is invalidated before it
// (Plugin.Invalidate, a version bump in the in-process store, well under a
// microsecond). Rejected alternatives:
//   - A different id each time over a large id range: it needs a table of at
//     least b.N rows (unknown in advance), ids past the seeded ones give empty
//     results (a cheaper miss that stores nothing real), and it cannot be done
//     for Find100, which must read the same 100 rows each time.
//   - Invalidating with the timer stopped: StopTimer/StartTimer call
//     runtime.ReadMemStats, which stops the world; on a small machine the
//     restart (waking Ms, the netpoller) leaks into the timed query and
//     inflated the figures by tens of microseconds, more than the overhead
//     being measured.
//
// So the invalidation stays inside the timed loop, and the plain case the
// miss is compared with (FirstPlainInv) makes the very same Invalidate call
// each iteration (it has no effect on the plain handle). Query, result and the
// database's work are identical to the plain case; only the table's version
// differs. Adding the same small cost to both sides understates the ratio by
// a negligible amount (BenchmarkInvalidate shows the cost).
func (e *Env) FirstMiss(b *testing.B) {
	e.missLoop(b, func(i int) { first(b, e.Cached, i) })
}

// FirstPlainInv is FirstPlain plus the Invalidate call FirstMiss makes.
func (e *Env) FirstPlainInv(b *testing.B) {
	e.invLoop(b, func(i int) { first(b, e.Plain, i) })
}

// Find100Plain: Find of the whole table (100 rows), GORM alone.
func (e *Env) Find100Plain(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		find(b, e.Plain)
	}
}

// Find100Hit: the same, every query a hit.
func (e *Env) Find100Hit(b *testing.B) {
	find(b, e.Cached)
	before := e.Plugin.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		find(b, e.Cached)
	}
	b.StopTimer()
	e.expect(b, before, b.N, 0)
}

// Find100Miss: the same, every query a miss (see FirstMiss).
func (e *Env) Find100Miss(b *testing.B) {
	e.missLoop(b, func(int) { find(b, e.Cached) })
}

// Find100PlainInv is Find100Plain plus the Invalidate call Find100Miss makes.
func (e *Env) Find100PlainInv(b *testing.B) {
	e.invLoop(b, func(int) { find(b, e.Plain) })
}

func (e *Env) missLoop(b *testing.B, op func(int)) {
	before := e.Plugin.Stats()
	e.invLoop(b, op)
	e.expect(b, before, 0, b.N)
}

// invLoop runs op b.N times, invalidating the table before each.
func (e *Env) invLoop(b *testing.B, op func(int)) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Plugin.Invalidate(ctx, Table); err != nil {
			b.Fatal(err)
		}
		op(i)
	}
	b.StopTimer()
}

// pairedLoop runs plain(i) and cached(i) in turn, b.N times each, the
// order swapped every other iteration, timing each call (after prep(),
// which is not timed), so that the load of a shared machine weighs on both
// alike: it reports their times per operation as the metrics
// "plain-ns/op" and "cached-ns/op".
func pairedLoop(b *testing.B, prep func(), plain, cached func(int)) {
	inTurn(b, prep, plain, cached, "plain-ns/op", "cached-ns/op")
}

// inTurn is pairedLoop with the metrics named by the caller: unitA for
// a's time per operation, unitC for c's.
func inTurn(b *testing.B, prep func(), a, c func(int), unitA, unitC string) {
	var ta, tc time.Duration
	timed := func(f func(int), i int) time.Duration {
		prep()
		t0 := time.Now()
		f(i)
		return time.Since(t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			ta += timed(a, i)
			tc += timed(c, i)
		} else {
			tc += timed(c, i)
			ta += timed(a, i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(ta.Nanoseconds())/float64(b.N), unitA)
	b.ReportMetric(float64(tc.Nanoseconds())/float64(b.N), unitC)
}

// invalidate is the untimed step of the paired misses: the next cached
// query is a miss.
func (e *Env) invalidate(b *testing.B) func() {
	return func() {
		if err := e.Plugin.Invalidate(context.Background(), Table); err != nil {
			b.Fatal(err)
		}
	}
}

// FirstMissPaired: FirstPlain and FirstMiss in turn (pairedLoop), the
// Invalidate before each outside the timing.
func (e *Env) FirstMissPaired(b *testing.B) {
	before := e.Plugin.Stats()
	pairedLoop(b, e.invalidate(b), func(i int) { first(b, e.Plain, i) }, func(i int) { first(b, e.Cached, i) })
	e.expect(b, before, 0, b.N)
}

// Find100MissPaired: Find100Plain and Find100Miss in turn (pairedLoop).
func (e *Env) Find100MissPaired(b *testing.B) {
	before := e.Plugin.Stats()
	pairedLoop(b, e.invalidate(b), func(int) { find(b, e.Plain) }, func(int) { find(b, e.Cached) })
	e.expect(b, before, 0, b.N)
}

// WritePaired: WritePlain and WriteCached in turn (pairedLoop), on
// different rows.
func (e *Env) WritePaired(b *testing.B) {
	before := e.Plugin.Stats()
	pairedLoop(b, func() {}, func(i int) { e.update(b, e.Plain, 2*i) }, func(i int) { e.update(b, e.Cached, 2*i+1) })
	if e.Plugin.Stats().Invalidations == before.Invalidations {
		b.Fatal("the writes bumped nothing")
	}
}

// Invalidate measures the Invalidate call alone.
func (e *Env) Invalidate(b *testing.B) {
	e.invLoop(b, func(int) {})
}

// expect fails b unless exactly hits hits and misses misses happened since before.
func (e *Env) expect(b *testing.B, before plugin.Stats, hits, misses int) {
	after := e.Plugin.Stats()
	if h, m := after.Hits-before.Hits, after.Misses-before.Misses; h != uint64(hits) || m != uint64(misses) {
		b.Fatalf("%d hits and %d misses, want %d and %d (bypasses %v)", h, m, hits, misses, after.Bypasses)
	}
}

// update sets a new age (never the value the row already has: the counter
// runs on across cases, so a later case does not rewrite an earlier one's
// values, which SQLite does faster).
func (e *Env) update(b *testing.B, db *gorm.DB, i int) {
	e.seq++
	res := db.Model(&BenchRow{ID: uint(i%Rows + 1)}).Update("age", 1000+e.seq)
	if res.Error != nil {
		b.Fatal(res.Error)
	}
	if res.RowsAffected != 1 {
		b.Fatalf("Update: %d rows affected, want 1", res.RowsAffected)
	}
}

// WritePlain: an Update of one row by primary key (GORM's default
// transaction around it), GORM alone.
func (e *Env) WritePlain(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.update(b, e.Plain, i)
	}
}

// WriteCached: the same through the plugin (which bumps the table's version
// as the statement starts, holds it, and bumps and releases it at commit).
func (e *Env) WriteCached(b *testing.B) {
	before := e.Plugin.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.update(b, e.Cached, i)
	}
	b.StopTimer()
	if e.Plugin.Stats().Invalidations == before.Invalidations {
		b.Fatal("the writes bumped nothing")
	}
}

// FirstHitGet runs FirstHit's query and FirstGet's bare GET of another
// id's entry in turn (inTurn), so that the load of a shared machine weighs
// on both alike. It reports their times per operation as the metrics
// "hit-ns/op" and "get-ns/op" (ns/op is their sum).
func (e *Env) FirstHitGet(b *testing.B) {
	keys := e.rawKeys(b)
	ctx := context.Background()
	for i := 0; i < Rows; i++ {
		first(b, e.Cached, i)
	}
	before := e.Plugin.Stats()
	inTurn(b, func() {}, func(i int) { first(b, e.Cached, i) }, func(i int) {
		if _, err := e.rawGet(ctx, keys[(i+Rows/2)%Rows]); err != nil {
			b.Fatal(err)
		}
	}, "hit-ns/op", "get-ns/op")
	e.expect(b, before, b.N, 0)
}

// rawKeys caches every id's First and returns the store keys of their
// entries (skipping b without raw store access).
func (e *Env) rawKeys(b *testing.B) []string {
	if e.rawGet == nil {
		b.Skip("no raw store access")
	}
	keys := make([]string, Rows)
	dry := e.Cached.Session(&gorm.Session{DryRun: true})
	for i := 0; i < Rows; i++ {
		first(b, e.Cached, i) // stored
		var r BenchRow
		ex, err := e.Plugin.Explain(dry.First(&r, i%Rows+1))
		if err != nil || !ex.Cacheable {
			b.Fatalf("Explain: %v %+v", err, ex)
		}
		keys[i] = e.rawKey(ex.Key)
	}
	ctx := context.Background()
	for _, k := range keys {
		if v, err := e.rawGet(ctx, k); err != nil || len(v) == 0 {
			b.Fatalf("GET %s: %d bytes, %v", k, len(v), err)
		}
	}
	return keys
}

// FirstGet reads, with a bare store GET, the same bytes FirstHit's queries
// find in the store (for a shared store: the round trip a hit cannot avoid).
func (e *Env) FirstGet(b *testing.B) {
	keys := e.rawKeys(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.rawGet(ctx, keys[i%Rows]); err != nil {
			b.Fatal(err)
		}
	}
}
