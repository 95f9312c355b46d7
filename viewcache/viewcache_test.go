package viewcache_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
	"github.com/gormcache/gormcache/viewcache"
	"gorm.io/gorm"
)

// TestHit: the second GET is served from the cache, with the same body,
// status, content type and ETag, an Age and an RFC 9211 Cache-Status, and
// the handler ran once.
func TestHit(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"memstore", "bytes"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var o envOptions
			if kind == "bytes" {
				ms, _ := memstore.New(memstore.Config{})
				o.store = testsupport.BytesStore{Store: ms}
			}
			e := newEnv(t, o)
			e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
			first := e.get("/articles")
			mustMiss(t, "first GET", first, "fwd=uri-miss")
			if !strings.Contains(first.cacheStatus(), "stored") || !strings.Contains(first.cacheStatus(), "fwd-status=200") {
				t.Fatalf("first GET: Cache-Status %q", first.cacheStatus())
			}
			second := e.get("/articles")
			mustHit(t, "second GET", second)
			if second.body != first.body || second.body != "article 1, article 2, article 3" {
				t.Fatalf("bodies %q and %q", first.body, second.body)
			}
			for _, f := range []string{"Content-Type", "Etag", "Date"} {
				if second.header.Get(f) == "" || second.header.Get(f) != first.header.Get(f) {
					t.Fatalf("%s: first %q, hit %q", f, first.header.Get(f), second.header.Get(f))
				}
			}
			if second.header.Get("Age") == "" || !strings.Contains(second.cacheStatus(), "ttl=") {
				t.Fatalf("hit without Age or ttl: %v", second.header)
			}
			if n := e.ran("list"); n != 1 {
				t.Fatalf("handler ran %d times, want 1", n)
			}
			st := e.c.Stats()
			if st.Hits != 1 || st.Misses != 1 || st.Stores != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestWriteInvalidates: a write through GORM, from another request or
// directly, makes the stored page stale; the handler has no invalidation
// code. On SQLite and PostgreSQL.
func TestWriteInvalidates(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{dialect: dialect})
			e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
			e.mux.HandleFunc("PUT /articles/{id}", func(w http.ResponseWriter, r *http.Request) {
				err := e.db.WithContext(r.Context()).Model(&Article{}).Where("id = ?", r.PathValue("id")).
					Update("title", r.URL.Query().Get("title")).Error
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
				}
			})
			e.get("/articles")
			mustHit(t, "warm", e.get("/articles"))

			if err := e.db.Create(&Article{Title: "direct"}).Error; err != nil {
				t.Fatal(err)
			}
			r := e.get("/articles")
			mustMiss(t, "after a direct write", r, "fwd=stale")
			if !strings.HasSuffix(r.body, ", direct") {
				t.Fatalf("after a direct write: %q", r.body)
			}
			mustHit(t, "again", e.get("/articles"))

			if r := e.do(http.MethodPut, "/articles/1?title=edited"); r.status != http.StatusOK {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			r = e.get("/articles")
			mustMiss(t, "after a PUT", r, "fwd=stale")
			if !strings.HasPrefix(r.body, "edited, ") {
				t.Fatalf("after a PUT: %q", r.body)
			}
			if st := e.c.Stats(); st.Stale != 2 || st.Stores != 3 || st.Hits != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestWriteWhileHandlerRuns: a write that commits after the handler's
// query but before its response is stored makes the stored page stale at
// once.
func TestWriteWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{dialect: dialect})
			queried, release := make(chan struct{}), make(chan struct{})
			var block sync.Once
			e.mux.Handle("GET /slow", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var as []Article
				e.db.WithContext(r.Context()).Order("id").Find(&as)
				block.Do(func() {
					close(queried)
					<-release
				})
				fmt.Fprint(w, titles(as))
			})))
			done := make(chan reply)
			go func() { done <- e.get("/slow") }()
			<-queried
			if err := e.db.Create(&Article{Title: "meanwhile"}).Error; err != nil {
				t.Fatal(err)
			}
			close(release)
			first := <-done
			if strings.Contains(first.body, "meanwhile") {
				t.Fatalf("first response saw the later write: %q", first.body)
			}
			next := e.get("/slow")
			mustMiss(t, "after the write", next, "fwd=stale")
			if !strings.Contains(next.body, "meanwhile") {
				t.Fatalf("next response: %q", next.body)
			}
		})
	}
}

// TestRecordedReads: reads inside a transaction, and reads that Skip the
// query cache, are dependencies of the page too.
func TestRecordedReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mux.Handle("GET /tx", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		err := e.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
			return tx.Order("id").Find(&as).Error
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, titles(as))
	})))
	e.mux.Handle("GET /skip", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Author
		e.db.WithContext(r.Context()).Clauses(plugin.Skip()).Find(&as)
		fmt.Fprint(w, len(as))
	})))
	for _, path := range []string{"/tx", "/skip"} {
		e.get(path)
		mustHit(t, path, e.get(path))
	}
	e.db.Create(&Article{Title: "x"})
	mustMiss(t, "/tx after a write to articles", e.get("/tx"), "fwd=stale")
	mustHit(t, "/skip after a write to articles", e.get("/skip"))
	e.db.Create(&Author{Name: "y"})
	if r := e.get("/skip"); r.body != "1" || r.hit() {
		t.Fatalf("/skip after a write to authors: %q %q", r.body, r.cacheStatus())
	}
}

// TestNotStored: responses the cache must not keep run their handler every
// time, and say why in Cache-Status.
func TestNotStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cases := []struct {
		name   string
		reason viewcache.Reason
		opts   []viewcache.Option
		h      http.HandlerFunc
	}{
		{"unknown-tables", viewcache.ReasonUnknown, nil, func(w http.ResponseWriter, r *http.Request) {
			var f float64
			e.db.WithContext(r.Context()).Raw("SELECT random()").Scan(&f)
			fmt.Fprint(w, "lucky number")
		}},
		{"writes", viewcache.ReasonWrote, nil, func(w http.ResponseWriter, r *http.Request) {
			e.db.WithContext(r.Context()).Create(&Author{Name: "visitor"})
			fmt.Fprint(w, "welcome")
		}},
		{"no-query", viewcache.ReasonNoQueries, nil, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "static")
		}},
		{"query-without-context", viewcache.ReasonNoQueries, nil, func(w http.ResponseWriter, r *http.Request) {
			var as []Article
			e.db.Find(&as) // not r.Context(): nothing recorded
			fmt.Fprint(w, titles(as))
		}},
		{"not-found", viewcache.ReasonStatus, nil, func(w http.ResponseWriter, r *http.Request) {
			var a Article
			e.db.WithContext(r.Context()).First(&a, 99)
			http.NotFound(w, r)
		}},
		{"max-age-0", viewcache.ReasonExpired, nil, func(w http.ResponseWriter, r *http.Request) {
			var as []Article
			e.db.WithContext(r.Context()).Find(&as)
			w.Header().Set("Cache-Control", "max-age=0")
			fmt.Fprint(w, titles(as))
		}},
		{"never", viewcache.ReasonNever, []viewcache.Option{viewcache.Never()}, e.list("never-list")},
	}
	for _, tc := range cases {
		e.mux.Handle("GET /"+tc.name, e.c.Page(counted(e, tc.name, tc.h), tc.opts...))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				r := e.get("/" + tc.name)
				if r.hit() || !strings.Contains(r.cacheStatus(), "detail="+string(tc.reason)) {
					t.Fatalf("Cache-Status %q, want detail=%s", r.cacheStatus(), tc.reason)
				}
			}
			if n := e.ran(tc.name); n != 2 {
				t.Fatalf("ran %d times, want 2", n)
			}
		})
	}
	if cc := e.get("/never").header.Get("Cache-Control"); !strings.Contains(cc, "no-store") || !strings.Contains(cc, "private") {
		t.Fatalf("Never: Cache-Control %q", cc)
	}
}

// counted counts the runs of h under name.
func counted(e *env, name string, h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.counter(name).Add(1)
		h.ServeHTTP(w, r)
	}
}

// TestWithoutQueries: a response that read nothing is stored when the route
// says so, and ended by its TTL or a flush.
func TestWithoutQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mux.Handle("GET /about", e.c.Page(counted(e, "about", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "about us")
	})), viewcache.WithoutQueries(), viewcache.TTL(time.Hour)))
	mustMiss(t, "first", e.get("/about"), "stored")
	mustHit(t, "second", e.get("/about"))
	e.db.Create(&Article{Title: "unrelated"})
	mustHit(t, "after an unrelated write", e.get("/about"))
	if err := e.c.Flush(bg); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, "after Cache.Flush", e.get("/about"), "fwd=stale")
	if err := e.p.Flush(bg); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, "after the plugin's Flush", e.get("/about"), "fwd=stale")
}

// TestManualTags: Tags adds tables the handler did not query.
func TestManualTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list"), viewcache.Tags("authors")))
	e.get("/articles")
	mustHit(t, "warm", e.get("/articles"))
	if err := e.p.Invalidate(bg, "authors"); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, "after Invalidate(authors)", e.get("/articles"), "fwd=stale")
	mustHit(t, "again", e.get("/articles"))
	e.db.Create(&Author{Name: "new"})
	mustMiss(t, "after a write to authors", e.get("/articles"), "fwd=stale")
}

// TestQueryParameters: parameter order does not matter, except between
// repeated parameters.
func TestQueryParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
	e.get("/articles?a=1&b=2")
	mustHit(t, "?b=2&a=1", e.get("/articles?b=2&a=1"))
	mustHit(t, "?b=2&a=%31", e.get("/articles?b=2&a=%31"))
	mustMiss(t, "?a=1&b=3", e.get("/articles?a=1&b=3"), "miss")
	e.get("/articles?tag=x&tag=y")
	mustHit(t, "?tag=x&tag=y", e.get("/articles?tag=x&tag=y"))
	mustMiss(t, "?tag=y&tag=x", e.get("/articles?tag=y&tag=x"), "miss")
	mustMiss(t, "no query", e.get("/articles"), "miss")
}

// TestVaryAcceptLanguage: a response with Vary is stored once per value of
// the named request headers; a cache that has never seen the URL (another
// process, say) finds each through the vary record.
func TestVaryAcceptLanguage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	greet := func(c *viewcache.Cache) http.Handler {
		return c.Page(counted(e, "greet", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int64
			e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
			w.Header().Set("Vary", "Accept-Language")
			if strings.HasPrefix(r.Header.Get("Accept-Language"), "fr") {
				fmt.Fprintf(w, "%d articles (fr)", n)
			} else {
				fmt.Fprintf(w, "%d articles (en)", n)
			}
		})))
	}
	e.mux.Handle("GET /count", greet(e.c))
	other, err := viewcache.New(e.p, viewcache.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.mux.Handle("GET /other/count", http.StripPrefix("/other", greet(other)))

	en, fr := "Accept-Language: en-GB", "Accept-Language: fr-FR"
	mustMiss(t, "en", e.get("/count", en), "stored")
	mustMiss(t, "fr", e.get("/count", fr), "fwd=vary-miss")
	for range 2 {
		if r := e.get("/count", en); !r.hit() || r.body != "3 articles (en)" {
			t.Fatalf("en: %q %q", r.cacheStatus(), r.body)
		}
		if r := e.get("/count", fr); !r.hit() || r.body != "3 articles (fr)" {
			t.Fatalf("fr: %q %q", r.cacheStatus(), r.body)
		}
	}
	if r := e.get("/count", "Accept-Language: de"); r.hit() || r.header.Get("Vary") != "Accept-Language" {
		t.Fatalf("de: %q", r.cacheStatus())
	}
	// Another cache on the store, with no hints: vary record, entry, versions.
	for _, lang := range []string{en, fr} {
		if r := e.get("/other/count", lang); !r.hit() || !strings.HasSuffix(r.body, "("+lang[len(lang)-5:len(lang)-3]+")") {
			t.Fatalf("other cache, %s: %q %q", lang, r.cacheStatus(), r.body)
		}
	}
	if n := e.ran("greet"); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}

// TestHead: HEAD is answered from the GET's entry without a body; a HEAD
// that misses stores nothing.
func TestHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
	r := e.do(http.MethodHead, "/articles")
	mustMiss(t, "HEAD first", r, "detail=head")
	mustMiss(t, "GET after HEAD", e.get("/articles"), "stored")
	h := e.do(http.MethodHead, "/articles")
	mustHit(t, "HEAD", h)
	if h.body != "" || h.header.Get("Content-Length") != fmt.Sprint(len("article 1, article 2, article 3")) {
		t.Fatalf("HEAD: body %q, Content-Length %q", h.body, h.header.Get("Content-Length"))
	}
	if n := e.ran("list"); n != 2 {
		t.Fatalf("handler ran %d times, want 2", n)
	}
}

// TestStatuses: other statuses are stored when configured.
func TestStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cfg: viewcache.Config{Statuses: []int{200, 404}}})
	e.mux.Handle("GET /articles/{id}", e.c.Page(counted(e, "one", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Article
		if err := e.db.WithContext(r.Context()).First(&a, r.PathValue("id")).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			http.Error(w, "no such article", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, a.Title)
	}))))
	e.get("/articles/99")
	if r := e.get("/articles/99"); !r.hit() || r.status != 404 || r.body != "no such article\n" {
		t.Fatalf("404: %d %q %q", r.status, r.cacheStatus(), r.body)
	}
	e.db.Create(&Article{ID: 99, Title: "ninety-nine"})
	if r := e.get("/articles/99"); r.hit() || r.status != 200 || r.body != "ninety-nine" {
		t.Fatalf("after the insert: %d %q %q", r.status, r.cacheStatus(), r.body)
	}
}

// TestTTL: the TTL comes from s-maxage, else max-age, else Expires, else
// the route's TTL, else Config.TTL.
func TestTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cfg: viewcache.Config{TTL: 10 * time.Minute}})
	withHeader := func(k, v string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if k != "" {
				w.Header().Set(k, v)
			}
			e.list("ttl")(w, r)
		})
	}
	e.mux.Handle("GET /s-maxage", e.c.Page(withHeader("Cache-Control", "public, max-age=30, s-maxage=100")))
	e.mux.Handle("GET /max-age", e.c.Page(withHeader("Cache-Control", "max-age=50")))
	e.mux.Handle("GET /expires", e.c.Page(withHeader("Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))))
	e.mux.Handle("GET /route", e.c.Page(withHeader("", ""), viewcache.TTL(2*time.Minute)))
	e.mux.Handle("GET /config", e.c.Page(withHeader("", "")))
	e.mux.Handle("GET /forever", e.c.Page(withHeader("", ""), viewcache.TTL(plugin.Forever)))
	for path, want := range map[string]int{"/s-maxage": 100, "/max-age": 50, "/expires": 3600, "/route": 120, "/config": 600, "/forever": -1} {
		e.get(path)
		r := e.get(path)
		mustHit(t, path, r)
		ttl := -1
		for part := range strings.SplitSeq(r.cacheStatus(), ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "ttl="); ok {
				fmt.Sscan(v, &ttl)
			}
		}
		if ttl > want || ttl < want-5 {
			t.Errorf("%s: ttl %d (Cache-Status %q), want about %d", path, ttl, r.cacheStatus(), want)
		}
	}
}

// TestCoalesce: identical concurrent misses run the handler once.
func TestCoalesce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cfg: viewcache.Config{Coalesce: true}})
	e.mux.Handle("GET /articles", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		e.list("list")(w, r)
	})))
	const n = 8
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = e.get("/articles") })
	}
	wg.Wait()
	collapsed := 0
	for _, r := range replies {
		if r.body != "article 1, article 2, article 3" {
			t.Fatalf("body %q", r.body)
		}
		if strings.Contains(r.cacheStatus(), "collapsed") {
			collapsed++
		}
	}
	if ran := e.ran("list"); ran != 1 || collapsed != n-1 {
		t.Fatalf("handler ran %d times, %d collapsed; want 1 and %d", ran, collapsed, n-1)
	}
	if st := e.c.Stats(); st.Collapsed != n-1 || st.Misses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCoalesceAcrossCommit: a request that begins after a write committed
// never gets the response of an identical request that read before it.
func TestCoalesceAcrossCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cfg: viewcache.Config{Coalesce: true}})
	queried, release := make(chan struct{}), make(chan struct{})
	var block sync.Once
	e.mux.Handle("GET /articles", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		e.db.WithContext(r.Context()).Order("id").Find(&as)
		block.Do(func() {
			close(queried)
			<-release
		})
		fmt.Fprint(w, titles(as))
	})))
	leader := make(chan reply)
	go func() { leader <- e.get("/articles") }()
	<-queried
	e.db.Create(&Article{Title: "committed"})
	follower := make(chan reply)
	go func() { follower <- e.get("/articles") }()
	time.Sleep(200 * time.Millisecond) // let the follower join the leader's flight
	close(release)
	if r := <-leader; strings.Contains(r.body, "committed") {
		t.Fatalf("leader: %q", r.body)
	}
	r := <-follower
	if !strings.Contains(r.body, "committed") {
		t.Fatalf("follower got data older than a write committed before it began: %q (%s)", r.body, r.cacheStatus())
	}
	// It waited for the leader: its second lookup found the leader's entry,
	// stale.
	if !strings.Contains(r.cacheStatus(), "fwd=stale") {
		t.Fatalf("follower did not wait for the leader: %q", r.cacheStatus())
	}
}

// TestMiddleware: site-wide caching, with an inner route's options
// honoured and its dependencies passed on.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	inner, err := viewcache.New(e.p, viewcache.Config{Prefix: "inner", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /articles", e.list("list"))
	mux.Handle("GET /nested", inner.Page(e.list("nested")))
	mux.Handle("GET /never", inner.Page(e.list("never"), viewcache.Never()))
	e.mux.Handle("/", e.c.Middleware(mux))

	e.get("/articles")
	mustHit(t, "/articles", e.get("/articles"))
	e.get("/never")
	if r := e.get("/never"); r.hit() || e.ran("never") != 2 {
		t.Fatalf("/never: %q, ran %d", r.cacheStatus(), e.ran("never"))
	}

	// The outer entry of /nested, made while the inner one was a hit, still
	// depends on articles.
	e.get("/nested")
	if err := e.c.Flush(bg); err != nil { // the outer cache only
		t.Fatal(err)
	}
	r := e.get("/nested")
	if !strings.Contains(r.cacheStatus(), "hit") || !strings.Contains(r.cacheStatus(), "stored") {
		t.Fatalf("/nested after flushing the outer cache: %q", r.cacheStatus()) // outer stale+stored, inner hit
	}
	mustHit(t, "/nested", e.get("/nested"))
	e.db.Create(&Article{Title: "new"})
	if r := e.get("/nested"); r.hit() || !strings.HasSuffix(r.body, "new") {
		t.Fatalf("/nested after a write: %q %q", r.cacheStatus(), r.body)
	}
	if n := e.ran("nested"); n != 2 {
		t.Fatalf("nested handler ran %d times, want 2", n)
	}
}

// TestPanic: a handler that panics stores nothing, and the panic goes on.
func TestPanic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var panics sync.Once
	page := e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.list("list")(w, r)
		panics.Do(func() { panic("boom") })
	}))
	e.mux.HandleFunc("GET /articles", func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				http.Error(w, fmt.Sprint("recovered: ", v), http.StatusInternalServerError)
			}
		}()
		page.ServeHTTP(w, r)
	})
	if r := e.get("/articles"); r.status != 500 || r.body != "recovered: boom\n" {
		t.Fatalf("panicking request: %d %q", r.status, r.body)
	}
	mustMiss(t, "after the panic", e.get("/articles"), "stored")
	if st := e.c.Stats(); st.NotStored[viewcache.ReasonPanic] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestInvalidConfig: bad settings are errors naming the field; bad route
// options panic when the route is made.
func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	p := plugin.New(plugin.Config{})
	cases := map[string]viewcache.Config{
		"TTL":             {TTL: -time.Second},
		"MaxBytes":        {MaxBytes: -1},
		"Statuses":        {Statuses: []int{200, 206}},
		"IdentityHeaders": {IdentityHeaders: []string{"X Bad"}},
		"Prefix":          {Prefix: "a b"},
		"StoreTimeout":    {StoreTimeout: -1},
	}
	for field, cfg := range cases {
		_, err := viewcache.New(p, cfg)
		if !errors.Is(err, viewcache.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if _, err := viewcache.New(nil, viewcache.Config{}); !errors.Is(err, viewcache.ErrInvalidConfig) {
		t.Errorf("nil plugin: %v", err)
	}
	c, err := viewcache.New(p, viewcache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]viewcache.Option{
		"TTL":    viewcache.TTL(-time.Second),
		"Tags":   viewcache.Tags(""),
		"VaryOn": viewcache.VaryOn(nil),
	} {
		func() {
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, viewcache.ErrInvalidOption) {
					t.Errorf("%s: recovered %v", name, err)
				}
			}()
			c.Page(http.NotFoundHandler(), opt)
		}()
	}
}

// TestConfigKey: Config.Key's value is part of every key.
func TestConfigKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.c = mustNew(t, e, viewcache.Config{Key: func(r *http.Request) string { return r.Header.Get("X-Tenant") }})
	e.mux.Handle("GET /articles", e.c.Page(counted(e, "tenant", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
		fmt.Fprintf(w, "%s: %d", r.Header.Get("X-Tenant"), n)
	}))))
	for round := range 2 {
		for _, tenant := range []string{"acme", "globex"} {
			r := e.get("/articles", "X-Tenant: "+tenant)
			if r.body != tenant+": 3" || r.hit() != (round == 1) {
				t.Fatalf("round %d, %s: %q %q", round, tenant, r.body, r.cacheStatus())
			}
		}
	}
}

// TestWriteInFlight: on MySQL (whose READ UNCOMMITTED readers may see a
// transaction's rows), while a transaction that wrote a table is open,
// pages reading that table are served by their handler and not stored. On
// SQLite and PostgreSQL, whose transactions hold what they wrote when they
// commit, pages are cached as the database has them until then. Either
// way, the page after the commit has the new row.
func TestWriteInFlight(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"mysql", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{dialect: dialect})
			e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
			tx := e.db.Begin()
			if err := tx.Create(&Article{Title: "uncommitted"}).Error; err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				r := e.get("/articles")
				if strings.HasSuffix(r.body, "uncommitted") {
					t.Fatalf("during the transaction: %q", r.body)
				}
				if dialect == "mysql" && (r.hit() || !strings.Contains(r.cacheStatus(), "detail="+string(viewcache.ReasonHeld))) ||
					dialect != "mysql" && r.hit() != (i == 1) {
					t.Fatalf("during the transaction: %q", r.cacheStatus())
				}
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if r := e.get("/articles"); !strings.Contains(r.cacheStatus(), "stored") || !strings.HasSuffix(r.body, "uncommitted") {
				t.Fatalf("after the commit: %q %q", r.cacheStatus(), r.body)
			}
			mustHit(t, "after the commit", e.get("/articles"))
		})
	}
}

// TestBrokenTablesNotServed: a write whose invalidation did not reach the
// store (Config.BumpFailure ProceedWrite) stops the plugin serving its
// table, and the page cache too: one rule for the three caches.
func TestBrokenTablesNotServed(t *testing.T) {
	t.Parallel()
	ms, _ := memstore.New(memstore.Config{})
	st := &storetest.CutBumps{Store: testsupport.BytesStore{Store: ms}}
	e := newEnv(t, envOptions{store: st, bumps: plugin.ProceedWrite})
	e.mux.Handle("GET /articles", e.c.Page(e.list("list")))
	e.get("/articles")
	mustHit(t, "warm", e.get("/articles"))
	st.Cut.Store(true)
	if err := e.db.Model(&Article{}).Where("id = 1").Update("title", "edited").Error; err != nil {
		t.Fatal(err)
	}
	r := e.get("/articles")
	if !strings.HasPrefix(r.body, "edited, ") {
		t.Fatalf("after a write whose invalidation failed: %q (the page from before it), want the handler's", r.body)
	}
	st.Cut.Store(false)
}
