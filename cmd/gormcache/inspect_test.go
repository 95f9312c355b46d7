package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/filestore"
	"github.com/gormcache/gormcache/store/redisstore"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// item is the model whose query results the tests inspect.
type item struct {
	ID    int64 `gorm:"primaryKey"`
	Name  string
	Price float64
	Note  *string
	Added time.Time
}

// cachedDB opens a SQLite database in a temporary directory with the plugin
// on st, seeded with three items. It returns the DSN of the
// database as --dsn spells it.
func cachedDB(t *testing.T, st store.Store) (*gorm.DB, *plugin.Plugin, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	if err := db.AutoMigrate(&item{}); err != nil {
		t.Fatal(err)
	}
	note := "fragile\tglass"
	added := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := db.Create([]item{{1, "lamp", 19.5, &note, added}, {2, "desk", 120, nil, added}, {42, "chair", 45.25, nil, added}}).Error; err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{Store: st, TTL: 10 * time.Minute})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return db, p, "sqlite:" + dsn
}

func TestInspect(t *testing.T) {
	t.Parallel()
	url, prefix, rdb := redisStore(t)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db, p, dsn := cachedDB(t, st)

	var items []item
	if err := db.Where("price < ? AND name <> ?", 100, "x").Order("id").Find(&items).Error; err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("%d items", len(items))
	}
	var again []item
	ex, err := p.Explain(db.Session(&gorm.Session{DryRun: true}).Where("price < ? AND name <> ?", 100, "x").Order("id").Find(&again))
	if err != nil || !ex.Cacheable {
		t.Fatalf("Explain: %+v, %v", ex, err)
	}
	if s := p.Stats(); s.Stores == 0 {
		t.Fatalf("the plugin stored nothing: %+v", s)
	}

	r := ok(t, "inspect", "--store", url, ex.Key)
	for _, want := range []string{
		"key        " + ex.Key,
		"store key  " + st.EntryKey(ex.Key),
		"dialect    sqlite",
		"SQL        " + ex.SQL,
		"1: int64 100",
		`2: string "x"`,
		"items",
		"unchanged",
		"state      fresh",
		"columns    5: id",
		"rows       2",
		"lamp", "19.5", `fragile\tglass`, "NULL", "chair", "45.25",
	} {
		if !looseContains(r.stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, r.stdout)
		}
	}
	if looseContains(r.stdout, "TTL unknown") {
		t.Errorf("inspect on Redis should tell the TTL:\n%s", r.stdout)
	}

	// JSON, one row, the bare hash with --prefix (after "--": one hash in
	// 64 starts with "-").
	hash := ex.Key[strings.LastIndexByte(ex.Key, ':')+1:]
	r = ok(t, "inspect", "--store", url, "--json", "--rows", "1", "--", hash)
	var rep struct {
		Key   string
		Query struct {
			Dialect, SQL string
			Args         []struct{ Type string }
		}
		Tables []struct {
			Table           string
			Stored, Current uint64
		}
		Fresh    bool
		TTL      string
		RowCount int `json:"row_count"`
		Rows     [][]any
		Columns  []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	if rep.Key != ex.Key || rep.Query.SQL != ex.SQL || rep.Query.Dialect != "sqlite" || len(rep.Query.Args) != 2 ||
		!rep.Fresh || rep.RowCount != 2 || len(rep.Rows) != 1 || len(rep.Columns) != 5 || len(rep.Tables) != 2 ||
		rep.Tables[0].Table != "items" || rep.Tables[1].Table != "*" {
		t.Errorf("inspect --json: %+v", rep)
	}
	ttl, err := time.ParseDuration(rep.TTL)
	if err != nil || ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Errorf("TTL %q, want about 10m", rep.TTL)
	}

	// --sql computes the same key, as the plugin would.
	r = gc(t, nil, "inspect", "--store", url, "--dsn", dsn, "--sql", ex.SQL, "--arg", "100", "--arg", `"x"`)
	if r.code != 0 || !strings.Contains(r.stderr, "key of the query: "+ex.Key) || !looseContains(r.stdout, "state fresh") {
		t.Errorf("inspect --sql: %s", r)
	}

	// After the table is invalidated, the entry is stale: no live entry
	// (exit 3), printed all the same.
	ok(t, "invalidate", "--store", url, "items")
	r = gc(t, nil, "inspect", "--store", url, ex.Key)
	if r.code != exitNotFound || !strings.Contains(r.stdout, "written since") || !looseContains(r.stdout, "state stale") || !strings.Contains(r.stderr, "stale") {
		t.Errorf("inspect after invalidate: want exit %d, the entry and why: %s", exitNotFound, r)
	}
	r = gc(t, nil, "inspect", "--store", url, "--json", ex.Key)
	var stale struct{ Fresh *bool }
	if err := json.Unmarshal([]byte(r.stdout), &stale); r.code != exitNotFound || err != nil || stale.Fresh == nil || *stale.Fresh {
		t.Errorf("inspect --json after invalidate: want exit %d and fresh false (%v): %s", exitNotFound, err, r)
	}

	// A key with no entry exits 3; garbage under a key is reported.
	if r := gc(t, nil, "inspect", "--store", url, "gc:1:AAAAAAAAAAAAAAAAAAAAAA"); r.code != exitNotFound || !strings.Contains(r.stderr, "no entry under") {
		t.Errorf("inspect of an absent key: %s", r)
	}
	if err := rdb.Set(t.Context(), st.EntryKey("gc:1:garbage"), "\x01garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if r := gc(t, nil, "inspect", "--store", url, "gc:1:garbage"); r.code != exitError || !strings.Contains(r.stderr, "does not decode") {
		t.Errorf("inspect of garbage: %s", r)
	}
}

// TestInspectFileStore: an entry the plugin stored in a directory, read by
// another process.
func TestInspectFileStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := filestore.New(dir, filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, p, _ := cachedDB(t, st)
	var it item
	if err := db.First(&it, 42).Error; err != nil {
		t.Fatal(err)
	}
	var again item
	ex, err := p.Explain(db.Session(&gorm.Session{DryRun: true}).First(&again, 42))
	if err != nil || !ex.Cacheable {
		t.Fatalf("Explain: %+v, %v", ex, err)
	}
	r := ok(t, "inspect", "--store", "file://"+dir, ex.Key)
	for _, want := range []string{"SQL        " + ex.SQL, "1: int64 42", "state      fresh", "chair", "TTL        unknown (the file store", "items␟id=i42", "items␟*", "not compared: the entry found every row"} {
		if !looseContains(r.stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, r.stdout)
		}
	}
	ok(t, "flush", "--store", "file://"+dir)
	if r := gc(t, nil, "inspect", "--store", "file://"+dir, ex.Key); r.code != exitNotFound || !looseContains(r.stdout, "state stale") {
		t.Errorf("inspect after flush: want exit %d: %s", exitNotFound, r)
	}
	var third item
	if err := db.First(&third, 42).Error; err != nil || p.Stats().Hits != 0 {
		t.Errorf("after the CLI's flush the plugin served a hit (%v, %+v)", err, p.Stats())
	}
}

// looseContains reports whether out contains want, with runs of blanks in
// both taken as one space (the columns of inspect's output align).
func looseContains(out, want string) bool {
	squash := func(s string) string {
		var b strings.Builder
		for _, line := range strings.Split(s, "\n") {
			b.WriteString(strings.Join(strings.Fields(line), " "))
			b.WriteByte('\n')
		}
		return b.String()
	}
	return strings.Contains(squash(out), strings.TrimSuffix(squash(want), "\n"))
}
