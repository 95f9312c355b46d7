package viewcache_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/viewcache"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Article and Author are the tests' models.
type Article struct {
	ID    uint
	Title string
}

type Author struct {
	ID   uint
	Name string
}

var quiet = slog.New(slog.DiscardHandler)

var bg = context.Background()

// env is a database with the plugin installed, a Cache on its store, and a
// real HTTP server whose routes tests add to mux before their first request.
type env struct {
	t   testing.TB
	db  *gorm.DB
	p   *plugin.Plugin
	c   *viewcache.Cache
	mux *http.ServeMux
	srv *httptest.Server

	mu   sync.Mutex
	runs map[string]*atomic.Int64
}

type envOptions struct {
	dialect string      // "" means sqlite
	store   store.Store // nil means the plugin's own memstore
	cfg     viewcache.Config
	bumps   plugin.BumpFailure
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.dialect == "" {
		o.dialect = "sqlite"
	}
	db := testdb.Open(t, o.dialect, &gorm.Config{Logger: logger.Discard})
	if err := db.AutoMigrate(&Article{}, &Author{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := db.Create(&Article{Title: fmt.Sprintf("article %d", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	p := plugin.New(plugin.Config{Store: o.store, Logger: quiet, BumpFailure: o.bumps})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if o.cfg.Logger == nil {
		o.cfg.Logger = quiet
	}
	c, err := viewcache.New(p, o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, p: p, c: c, mux: http.NewServeMux(), runs: map[string]*atomic.Int64{}}
	e.srv = httptest.NewUnstartedServer(e.mux)
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // panics on purpose
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// counter returns the run counter of a handler name.
func (e *env) counter(name string) *atomic.Int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.runs[name]
	if n == nil {
		n = new(atomic.Int64)
		e.runs[name] = n
	}
	return n
}

// ran returns how many times the handler name ran.
func (e *env) ran(name string) int64 { return e.counter(name).Load() }

// list is a handler that lists the articles with the request's context,
// counting its runs under name.
func (e *env) list(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.counter(name).Add(1)
		var as []Article
		if err := e.db.WithContext(r.Context()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, titles(as))
	}
}

func titles(as []Article) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.Title)
	}
	return b.String()
}

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

// cacheStatus returns the Cache-Status field (its lines joined).
func (r reply) cacheStatus() string { return strings.Join(r.header.Values("Cache-Status"), ", ") }

func (r reply) hit() bool { return strings.Contains(r.cacheStatus(), "; hit") }

// get sends a request to the server, with header fields given as "Name: value".
func (e *env) get(path string, fields ...string) reply {
	e.t.Helper()
	return e.do(http.MethodGet, path, fields...)
}

func (e *env) do(method, path string, fields ...string) reply {
	e.t.Helper()
	r, err := send(e.srv.Client(), method, e.srv.URL+path, fields...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func send(client *http.Client, method, url string, fields ...string) (reply, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return reply{}, err
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// mustHit fails unless r was served from the cache.
func mustHit(t *testing.T, what string, r reply) {
	t.Helper()
	if !r.hit() {
		t.Fatalf("%s: Cache-Status %q, want a hit (status %d, body %q)", what, r.cacheStatus(), r.status, r.body)
	}
}

// mustMiss fails unless r was a miss whose Cache-Status contains want.
func mustMiss[S ~string](t *testing.T, what string, r reply, wantS S) {
	t.Helper()
	want := string(wantS)
	if r.hit() || !strings.Contains(r.cacheStatus(), want) {
		t.Fatalf("%s: Cache-Status %q, want a miss with %q (status %d, body %q)", what, r.cacheStatus(), want, r.status, r.body)
	}
}
