package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/console"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type item struct {
	ID   uint
	Name string
}

func open(t *testing.T) (*gorm.DB, *plugin.Plugin) {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "c.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := db.AutoMigrate(&item{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		db.Create(&item{Name: "n"})
	}
	return db, p
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestConsole(t *testing.T) {
	db, p := open(t)
	c, err := console.New(p, console.Options{Interval: 10 * time.Millisecond, Window: time.Second, MinReads: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewServer(c)
	defer srv.Close()

	for i := 0; i < 4; i++ { // 1 miss, 3 hits per id: 75%
		for id := 1; id <= 5; id++ {
			var it item
			db.First(&it, id)
		}
	}
	for i := 0; i < 6; i++ { // every read invalidated by a write: 0%
		var all []item
		db.Order("id").Find(&all)
		db.Model(&item{ID: 1}).Update("name", "w")
	}
	var n float64
	db.Raw("SELECT random()").Scan(&n)

	deadline := time.Now().Add(30 * time.Second)
	var rep console.Report
	for {
		if err := json.Unmarshal([]byte(get(t, srv.URL+"?format=json")), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Series) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(rep.Series) < 3 {
		t.Fatalf("%d points in the series", len(rep.Series))
	}
	shape := func(prefix string) console.Shape {
		t.Helper()
		for _, s := range rep.Shapes {
			if strings.HasPrefix(s.SQL, prefix) {
				return s
			}
		}
		t.Fatalf("no shape %q: %+v", prefix, rep.Shapes)
		return console.Shape{}
	}
	first := shape("SELECT * FROM `items` WHERE `items`.`id` = ?")
	if first.Reads != 20 || first.Hits != 15 || first.Misses != 5 || first.HitRatio != 0.75 {
		t.Errorf("First: %+v", first)
	}
	list := shape("SELECT * FROM `items` ORDER BY")
	if list.Reads != 6 || list.Hits != 0 || list.Invalidated != 5 || list.InvalidatedBy["items"] != 5 {
		t.Errorf("list: %+v", list)
	}
	if len(rep.Never) != 1 || rep.Never[0].Reason != "volatile_function" || rep.Never[0].DBQueries != 1 {
		t.Errorf("never cached: %+v", rep.Never)
	}
	var tbl *console.Table
	for i := range rep.Tables {
		if rep.Tables[i].Name == "items" {
			tbl = &rep.Tables[i]
		}
	}
	if tbl == nil || tbl.Reads != 26 || tbl.Hits != 15 || tbl.Writes != 6 || len(tbl.CostliestWriters) == 0 || tbl.CostliestWriters[0].By != "items" {
		t.Errorf("table items: %+v", tbl)
	}
	var adv *console.Advice
	for i := range rep.Advice {
		if rep.Advice[i].ShapeID == list.ID {
			adv = &rep.Advice[i]
		}
		if rep.Advice[i].ShapeID == first.ID {
			t.Errorf("advice on a shape above the threshold: %+v", rep.Advice[i])
		}
	}
	if adv == nil || adv.Option != "Skip" && adv.Option != "Deny" {
		t.Errorf("advice for the invalidated list: %+v (all: %+v)", adv, rep.Advice)
	}
	if !rep.Store.InProcess {
		t.Errorf("store: %+v", rep.Store)
	}

	html := get(t, srv.URL)
	for _, want := range []string{"<svg id=\"chart\"", "75.0%", "volatile_function", "SELECT * FROM `items` WHERE `items`.`id` = ?"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestHideSQL(t *testing.T) {
	db, p := open(t)
	c, err := console.New(p, console.Options{HideSQL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var it item
	db.Where("name = ?", "secret-value").First(&it)
	db.Raw("SELECT * FROM items WHERE name = 'literal-secret'").Scan(&it)
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, u := range []string{srv.URL, srv.URL + "?format=json"} {
		body := get(t, u)
		if strings.Contains(body, "SELECT") || strings.Contains(body, "secret") {
			t.Errorf("%s shows SQL or a value:\n%s", u, body)
		}
	}
	c.Close()
	c2, _ := console.New(p, console.Options{})
	defer c2.Close()
	db.Raw("SELECT * FROM items WHERE name = 'literal-secret'").Scan(&it)
	srv2 := httptest.NewServer(c2)
	defer srv2.Close()
	if body := get(t, srv2.URL+"?format=json"); strings.Contains(body, "secret") || !strings.Contains(body, "name = ?") {
		t.Errorf("a literal is shown, or the shape is missing:\n%s", body)
	}
}

// TestStoreHealthRedis: with a Redis store, the store's calls are timed
// and its breaker is reported.
func TestStoreHealthRedis(t *testing.T) {
	addr := os.Getenv("GORMCACHE_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := rdb.Ping(ctx).Err()
	cancel()
	if err != nil {
		testdb.Unavailable(t, "redis at "+addr, err)
	}
	prefix := testdb.KeyPrefix("gcconsoletest:")
	testdb.CleanRedis(t, redis.UniversalOptions{Addrs: []string{addr}}, prefix)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "r.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{Store: st})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	db.AutoMigrate(&item{})
	db.Create(&item{Name: "a"})
	c, err := console.New(p, console.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 5; i++ {
		var it item
		db.First(&it, 1)
	}
	rep := c.Report()
	if rep.Store.InProcess || rep.Store.Kind != "*redisstore.Store" || rep.Store.Breaker != "closed" {
		t.Errorf("store: %+v", rep.Store)
	}
	// 5 lookups and a store at least (versions are read with the lookup)
	if rep.Store.Calls < 6 || rep.Store.P50us <= 0 || rep.Store.P99us < rep.Store.P50us {
		t.Errorf("store calls timed: %+v", rep.Store)
	}
}
