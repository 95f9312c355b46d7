package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/redis/go-redis/v9"
)

// TestAPI runs the server for real (httptest.NewServer) on the embedded
// default and on PostgreSQL with Redis, and checks the caching through
// HTTP: misses then hits, freshness after a PUT with no invalidation code,
// one entry per category, and the Remember endpoint.
func TestAPI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) config
	}{
		{"sqlite+memory", func(t *testing.T) config { return config{} }},
		{"postgres+redis", func(t *testing.T) config {
			return config{PG: testdb.FreshPostgres(t), Redis: redisAddr(t), RedisPrefix: testdb.KeyPrefix("gcresttest:")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg(t)
			if cfg.Redis != "" {
				t.Cleanup(func() {
					if err := deleteRedisKeys(cfg.Redis, cfg.RedisPrefix); err != nil {
						t.Logf("delete %s*: %v", cfg.RedisPrefix, err)
					}
				})
			}
			h, cleanup, err := newServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(func() { srv.Close(); cleanup() })
			checkAPI(t, srv.URL)
		})
	}
}

// checkAPI runs the checks in order: each one relies on the state the
// previous ones left.
func checkAPI(t *testing.T, base string) {
	c := client{t: t, base: base}

	// GET /articles: a miss, then a hit with the same bytes.
	first := c.do("GET", "/articles", "")
	first.want(http.StatusOK).wantMiss("uri-miss")
	var list []Article
	first.decode(&list)
	if len(list) != seedArticles || list[6].ID != 7 {
		t.Fatalf("GET /articles: %d articles (want %d, in id order)", len(list), seedArticles)
	}
	second := c.do("GET", "/articles", "")
	second.want(http.StatusOK).wantHit()
	if second.body != first.body {
		t.Errorf("the hit's body differs from the miss's")
	}

	// GET /articles/{id}: a cached page of its own.
	c.do("GET", "/articles/7", "").want(http.StatusOK).wantMiss("uri-miss")
	c.do("GET", "/articles/7", "").want(http.StatusOK).wantHit()
	c.do("GET", "/articles/99999", "").want(http.StatusNotFound)
	c.do("GET", "/articles/x", "").want(http.StatusBadRequest)

	// The report, through lowlevel.Remember: computed once, then kept.
	r1 := c.do("GET", "/stats/expensive", "").want(http.StatusOK).wantRemember("miss")
	r2 := c.do("GET", "/stats/expensive", "").want(http.StatusOK).wantRemember("hit")
	if r1.body != r2.body {
		t.Errorf("the remembered report differs from the computed one:\n%s\n%s", r1.body, r2.body)
	}
	var rep Report
	r1.decode(&rep)
	if rep.Articles != seedArticles || len(rep.Categories) != len(categories) {
		t.Errorf("report: %d articles, %d categories", rep.Articles, len(rep.Categories))
	}

	// PUT: the handler only updates the row; every page and value that read
	// articles is fresh at once.
	var put Article
	c.do("PUT", "/articles/7", `{"title": "Fresh title"}`).want(http.StatusOK).decode(&put)
	if put.ID != 7 || put.Title != "Fresh title" || put.Author == "" {
		t.Errorf("PUT returned %+v", put)
	}
	after := c.do("GET", "/articles", "").want(http.StatusOK).wantMiss("stale")
	after.decode(&list)
	if len(list) != seedArticles || list[6].Title != "Fresh title" {
		t.Errorf("GET /articles after the PUT: article 7 is %+v", list[6])
	}
	c.do("GET", "/articles", "").want(http.StatusOK).wantHit()
	var one Article
	c.do("GET", "/articles/7", "").want(http.StatusOK).wantMiss("stale").decode(&one)
	if one.Title != "Fresh title" {
		t.Errorf("GET /articles/7 after the PUT: %+v", one)
	}
	c.do("GET", "/stats/expensive", "").want(http.StatusOK).wantRemember("miss")
	c.do("PUT", "/articles/99999", `{"title": "x"}`).want(http.StatusNotFound)
	c.do("PUT", "/articles/7", `{"titel": "x"}`).want(http.StatusBadRequest)
	c.do("PUT", "/articles/7", `{}`).want(http.StatusBadRequest)

	// GET /products?category=…: one entry per category.
	for _, cat := range []string{"books", "games"} {
		var ps []Product
		c.do("GET", "/products?category="+cat, "").want(http.StatusOK).wantMiss("uri-miss").decode(&ps)
		if len(ps) != seedProducts/len(categories) {
			t.Errorf("%s: %d products", cat, len(ps))
		}
		for _, p := range ps {
			if p.Category != cat {
				t.Errorf("%s: got a product of %s", cat, p.Category)
			}
		}
	}
	c.do("GET", "/products?category=books", "").want(http.StatusOK).wantHit()
	c.do("GET", "/products?category=games", "").want(http.StatusOK).wantHit()
	c.do("GET", "/products?category=music", "").want(http.StatusOK).wantMiss("uri-miss")
}

// TestSmokeScript runs smoke.sh, which builds the server, starts it and
// checks it with curl.
func TestSmokeScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			testdb.Unavailable(t, tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "smoke.sh")
	if flags := testdb.BuildFlags(); len(flags) > 0 { // for smoke.sh's go build
		cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" "+strings.Join(flags, " ")))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smoke.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "smoke: ok") {
		t.Fatalf("smoke.sh did not report ok:\n%s", out)
	}
	t.Logf("smoke.sh:\n%s", out)
}

// client makes requests to the server under test.
type client struct {
	t    *testing.T
	base string
}

// response is what a request returned.
type response struct {
	t      *testing.T
	what   string
	status int
	header http.Header
	body   string
}

func (c client) do(method, path, body string) *response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return &response{t: c.t, what: method + " " + path, status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (r *response) want(status int) *response {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("%s: status %d, want %d: %s", r.what, r.status, status, r.body)
	}
	return r
}

func (r *response) wantHit() *response {
	r.t.Helper()
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "; hit") {
		r.t.Errorf("%s: Cache-Status %q, want a hit", r.what, cs)
	}
	return r
}

// wantMiss checks that the response came from the handler and was stored;
// fwd is the Cache-Status fwd parameter wanted (uri-miss: no entry; stale:
// an entry a write made stale).
func (r *response) wantMiss(fwd string) *response {
	r.t.Helper()
	cs := r.header.Get("Cache-Status")
	if strings.Contains(cs, "; hit") || !strings.Contains(cs, "; fwd="+fwd+";") || !strings.Contains(cs, "; stored") {
		r.t.Errorf("%s: Cache-Status %q, want fwd=%s and stored", r.what, cs, fwd)
	}
	return r
}

func (r *response) wantRemember(v string) *response {
	r.t.Helper()
	if got := r.header.Get("X-Remember"); got != v {
		r.t.Errorf("%s: X-Remember %q, want %q", r.what, got, v)
	}
	return r
}

func (r *response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		r.t.Fatalf("%s: %v: %s", r.what, err, r.body)
	}
}

// redisAddr returns the test Redis's address, skipping the test (failing it
// under CI=true) when it does not answer.
func redisAddr(t *testing.T) string {
	addr := os.Getenv("GORMCACHE_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		testdb.Unavailable(t, "redis at "+addr, err)
	}
	return addr
}

// TestModes checks the benchmark modes of -mode: each serves GET /articles
// with the same bytes; only page-cached answers from the page cache.
func TestModes(t *testing.T) {
	t.Parallel()
	var want string
	for _, mode := range []string{"uncached", "query-cached", "page-cached", "static"} {
		h, cleanup, err := newModeServer(config{}, mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		srv := httptest.NewServer(h)
		c := client{t: t, base: srv.URL}
		c.do("GET", "/articles", "").want(http.StatusOK)
		r := c.do("GET", "/articles", "").want(http.StatusOK)
		srv.Close()
		cleanup()
		if hit := strings.Contains(r.header.Get("Cache-Status"), "; hit"); hit != (mode == "page-cached") {
			t.Errorf("%s: Cache-Status %q", mode, r.header.Get("Cache-Status"))
		}
		if want == "" {
			want = r.body
		} else if r.body != want {
			t.Errorf("%s: GET /articles returned other bytes than uncached", mode)
		}
	}
	if _, _, err := newModeServer(config{}, "fast"); err == nil {
		t.Error(`newModeServer accepted -mode "fast"`)
	}
}
