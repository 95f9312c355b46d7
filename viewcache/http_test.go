package viewcache_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/viewcache"
)

// TestConditional: If-None-Match and If-Modified-Since get 304 from the
// cache while the page is fresh, and never once it is stale.
func TestConditional(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	lastModified := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	var sawCondition atomic.Bool
	e.mux.Handle("GET /articles", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			sawCondition.Store(true)
		}
		w.Header().Set("Last-Modified", lastModified)
		e.list("list")(w, r)
	})))
	first := e.get("/articles")
	etag := first.header.Get("Etag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("no strong ETag computed: %q", etag)
	}
	r := e.get("/articles", "If-None-Match: "+etag)
	if r.status != http.StatusNotModified || !r.hit() || r.body != "" || r.header.Get("Etag") != etag {
		t.Fatalf("If-None-Match: %d %q %q", r.status, r.cacheStatus(), r.body)
	}
	if r := e.get("/articles", `If-None-Match: "other", W/`+etag); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match list with a weak match: %d", r.status)
	}
	if r := e.get("/articles", `If-None-Match: "other"`); r.status != 200 || !r.hit() {
		t.Fatalf("If-None-Match other: %d %q", r.status, r.cacheStatus())
	}
	if r := e.get("/articles", "If-Modified-Since: "+lastModified); r.status != http.StatusNotModified {
		t.Fatalf("If-Modified-Since: %d", r.status)
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	if r := e.get("/articles", "If-Modified-Since: "+old); r.status != 200 {
		t.Fatalf("If-Modified-Since before Last-Modified: %d", r.status)
	}

	// Flushed: a miss; the body is the same, so the old ETag still matches,
	// and the cache answers the condition from the fresh response.
	e.c.Flush(bg)
	r = e.get("/articles", "If-None-Match: "+etag)
	if r.status != http.StatusNotModified || r.hit() || !strings.Contains(r.cacheStatus(), "stored") {
		t.Fatalf("after a flush: %d %q", r.status, r.cacheStatus())
	}
	// A write: the body changed, so did the ETag.
	e.db.Create(&Article{Title: "new"})
	r = e.get("/articles", "If-None-Match: "+etag)
	if r.status != 200 || r.header.Get("Etag") == etag || !strings.HasSuffix(r.body, "new") {
		t.Fatalf("after a write: %d %q %q", r.status, r.header.Get("Etag"), r.body)
	}
	if sawCondition.Load() {
		t.Fatal("the handler saw a conditional header: the cache should have removed it")
	}
	if st := e.c.Stats(); st.NotModified != 4 {
		t.Fatalf("NotModified = %d, want 4", st.NotModified)
	}
}

// TestIdentityRequests: requests carrying an identity are neither served
// from nor stored in the cache: two users never see each other's page.
func TestIdentityRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	whoami := func(header string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int64
			e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
			who := r.Header.Get(header)
			if who == "" {
				who = "anonymous"
			}
			fmt.Fprintf(w, "%s sees %d articles", who, n)
		})
	}
	for _, h := range []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Tenant-Token"} {
		e.mux.Handle("GET /"+h, e.c.Page(whoami(h)))
	}
	e.c = mustNew(t, e, viewcache.Config{IdentityHeaders: []string{"x-tenant-token"}})
	e.mux.Handle("GET /custom/X-Tenant-Token", http.StripPrefix("/custom", e.c.Page(whoami("X-Tenant-Token"))))

	for _, path := range []string{"/Authorization", "/Proxy-Authorization", "/Cookie", "/X-Api-Key", "/custom/X-Tenant-Token"} {
		h := path[strings.LastIndex(path, "/")+1:]
		t.Run(h, func(t *testing.T) {
			for range 2 {
				for _, user := range []string{"alice", "bob"} {
					r := e.get(path, h+": "+user)
					if r.body != user+" sees 3 articles" {
						t.Fatalf("%s got %q", user, r.body)
					}
					mustMiss(t, user, r, "fwd=bypass; detail=identity")
				}
			}
			// Anonymous requests are cached, and never served to a user.
			e.get(path)
			mustHit(t, "anonymous", e.get(path))
			if r := e.get(path, h+": alice"); r.body != "alice sees 3 articles" {
				t.Fatalf("alice after an anonymous hit: %q", r.body)
			}
		})
	}
}

// TestClientCertificate: a TLS client certificate is an identity.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	srv := httptest.NewUnstartedServer(e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
		who := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s sees %d articles", who, n)
	})))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	client := func(cn string) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if cn != "" {
			tr.TLSClientConfig.Certificates = []tls.Certificate{selfSigned(t, cn)}
		}
		return &http.Client{Transport: tr}
	}
	anon := client("")
	send(anon, "GET", srv.URL)
	if r, _ := send(anon, "GET", srv.URL); !r.hit() {
		t.Fatalf("anonymous: %q", r.cacheStatus())
	}
	for range 2 {
		for _, user := range []string{"alice", "bob"} {
			r, err := send(client(user), "GET", srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if r.body != user+" sees 3 articles" || !strings.Contains(r.cacheStatus(), "detail=identity") {
				t.Fatalf("%s: %q %q", user, r.body, r.cacheStatus())
			}
		}
	}
}

func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func mustNew(t *testing.T, e *env, cfg viewcache.Config) *viewcache.Cache {
	t.Helper()
	cfg.Logger = quiet
	c, err := viewcache.New(e.p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrivateResponses: responses that set a cookie, say private, no-store
// or no-cache, or Vary: *, are not stored: two users whose requests look
// the same to the cache never see each other's page.
func TestPrivateResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rules := map[viewcache.Reason][2]string{
		viewcache.ReasonSetCookie: {"Set-Cookie", "session=%s"},
		viewcache.ReasonPrivate:   {"Cache-Control", "private, max-age=60"},
		viewcache.ReasonNoStore:   {"Cache-Control", "no-store"},
		viewcache.ReasonNoCache:   {"Cache-Control", "no-cache"},
		viewcache.ReasonVaryStar:  {"Vary", "*"},
	}
	for reason, field := range rules {
		e.mux.Handle("GET /"+string(reason), e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int64
			e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
			user := r.Header.Get("X-User") // not an identity header: the cache cannot tell users apart
			v := field[1]
			if strings.Contains(v, "%s") {
				v = fmt.Sprintf(v, user)
			}
			w.Header().Set(field[0], v)
			fmt.Fprintf(w, "%s's page", user)
		})))
	}
	for reason := range rules {
		t.Run(string(reason), func(t *testing.T) {
			for range 2 {
				for _, user := range []string{"alice", "bob"} {
					r := e.get("/"+string(reason), "X-User: "+user)
					if r.body != user+"'s page" {
						t.Fatalf("%s got %q", user, r.body)
					}
					mustMiss(t, user, r, "detail="+reason)
				}
			}
		})
	}
}

// TestVaryOn: a route that declares what it varies on caches requests with
// an identity, per value: each user gets their own page.
func TestVaryOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	userID := func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }
	e.mux.Handle("GET /me", e.c.Page(counted(e, "me", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		e.db.WithContext(r.Context()).Model(&Article{}).Count(&n)
		who := userID(r)
		if who == "" {
			who = "anonymous"
		}
		fmt.Fprintf(w, "%s sees %d articles", who, n)
	})), viewcache.VaryOn(userID)))
	for round := range 2 {
		for _, user := range []string{"alice", "bob", ""} {
			var fields []string
			if user != "" {
				fields = append(fields, "Authorization: Bearer "+user)
			}
			r := e.get("/me", fields...)
			want := user
			if want == "" {
				want = "anonymous"
			}
			if r.body != want+" sees 3 articles" || r.hit() != (round == 1) {
				t.Fatalf("round %d, %s: %q %q", round, want, r.body, r.cacheStatus())
			}
		}
	}
	// An identity VaryOn cannot name is not cached.
	if r := e.get("/me", "Cookie: session=1"); !strings.Contains(r.cacheStatus(), "detail=identity") {
		t.Fatalf("cookie without a user id: %q", r.cacheStatus())
	}
	e.db.Create(&Article{Title: "new"})
	if r := e.get("/me", "Authorization: Bearer alice"); r.hit() || r.body != "alice sees 4 articles" {
		t.Fatalf("after a write: %q %q", r.cacheStatus(), r.body)
	}
}

// TestSizeLimit: a response over MaxBytes streams through as it is written,
// and is not stored.
func TestSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cfg: viewcache.Config{MaxBytes: 1024}})
	release := make(chan struct{})
	chunk := strings.Repeat("x", 16<<10)
	e.mux.Handle("GET /big", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		e.db.WithContext(r.Context()).Find(&as)
		for range 4 {
			io.WriteString(w, chunk)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "end")
	})))
	e.mux.Handle("GET /small", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.list("small")(w, r)
	})))
	resp, err := e.srv.Client().Get(e.srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Cache-Status"), "detail=too_large") {
		t.Fatalf("Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	// Read most of what was written before the handler is released: it was
	// not held back.
	if _, err := io.ReadFull(resp.Body, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(rest), "end") {
		t.Fatalf("tail %q", rest[max(0, len(rest)-10):])
	}
	if r := e.get("/small"); !strings.Contains(r.cacheStatus(), "stored") {
		t.Fatalf("small: %q", r.cacheStatus())
	}
	if st := e.c.Stats(); st.NotStored[viewcache.ReasonTooLarge] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlusherHijacker: http.Flusher and http.Hijacker work on bypassed
// requests (the handler gets the server's ResponseWriter) and on cacheable
// ones (the response then streams and is not stored).
func TestFlusherHijacker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	release := make(chan struct{}, 4)
	stream := func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		e.db.WithContext(r.Context()).Find(&as)
		io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		<-release
		io.WriteString(w, "second\n")
	}
	hijack := func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		buf.Flush()
	}
	e.mux.Handle("/stream", e.c.Page(http.HandlerFunc(stream)))
	e.mux.Handle("/hijack", e.c.Page(http.HandlerFunc(hijack)))

	for _, tc := range []struct{ name, method, detail string }{
		{"bypassed", http.MethodPost, "detail=method"},
		{"identity", http.MethodGet, "detail=identity"},
		{"cacheable", http.MethodGet, "detail=flushed"},
	} {
		t.Run("flush/"+tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.srv.URL+"/stream", nil)
			if tc.name == "identity" {
				req.Header.Set("Authorization", "Bearer x")
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n') // before the handler is released
			if err != nil || line != "first\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			release <- struct{}{}
			rest, _ := io.ReadAll(br)
			if string(rest) != "second\n" || !strings.Contains(resp.Header.Get("Cache-Status"), tc.detail) {
				t.Fatalf("rest %q, Cache-Status %q", rest, resp.Header.Get("Cache-Status"))
			}
		})
		t.Run("hijack/"+tc.name, func(t *testing.T) {
			fields := []string{}
			if tc.name == "identity" {
				fields = append(fields, "Authorization: Bearer x")
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			r, err := send(client, tc.method, e.srv.URL+"/hijack", fields...)
			if err != nil || r.body != "hijacked" {
				t.Fatalf("%q, %v", r.body, err)
			}
		})
	}
	if st := e.c.Stats(); st.NotStored[viewcache.ReasonFlushed] != 1 || st.NotStored[viewcache.ReasonHijacked] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReplayedHeaders: the stored header is replayed as it was, less
// hop-by-hop fields and those an enclosing middleware sets on every
// request.
func TestReplayedHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var requestID atomic.Int64
	page := e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kept", "yes")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Content-Language", "en")
		e.list("list")(w, r)
		w.Header().Set("X-Too-Late", "ignored") // after WriteHeader: net/http ignores it, so does the cache
	}))
	e.mux.HandleFunc("GET /articles", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", fmt.Sprint(requestID.Add(1)))
		page.ServeHTTP(w, r)
	})
	first := e.get("/articles")
	r := e.get("/articles")
	mustHit(t, "second", r)
	switch {
	case r.header.Get("X-Kept") != "yes", strings.Join(r.header.Values("X-Multi"), ",") != "a,b":
		t.Fatalf("handler fields lost: %v", r.header)
	case r.header.Get("X-Hop") != "" || r.header.Get("Connection") != "":
		t.Fatalf("hop-by-hop fields replayed: %v", r.header)
	case r.header.Get("X-Request-Id") != "2":
		t.Fatalf("X-Request-Id %q, want the current request's", r.header.Values("X-Request-Id"))
	case first.header.Get("X-Too-Late") != "" || r.header.Get("X-Too-Late") != "":
		t.Fatalf("a field set after WriteHeader was sent: %v", r.header)
	case r.header.Get("Content-Type") != "text/plain; charset=utf-8" || r.header.Get("Content-Language") != "en":
		t.Fatalf("Content-Type %q, Content-Language %q", r.header.Get("Content-Type"), r.header.Get("Content-Language"))
	}
}

// TestBrowserMaxAge: off by default; on, stored and served pages carry a
// max-age for the rest of their TTL.
func TestBrowserMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	browser := mustNew(t, e, viewcache.Config{BrowserMaxAge: true, TTL: time.Hour, Prefix: "browser"})
	e.mux.Handle("GET /default", e.c.Page(e.list("default")))
	e.mux.Handle("GET /browser", browser.Page(e.list("browser")))
	for range 2 {
		if r := e.get("/default"); r.header.Get("Cache-Control") != "" || r.header.Get("Expires") != "" {
			t.Fatalf("default: Cache-Control %q", r.header.Get("Cache-Control"))
		}
		r := e.get("/browser")
		var age int
		if _, err := fmt.Sscanf(r.header.Get("Cache-Control"), "max-age=%d", &age); err != nil || age < 3590 || age > 3600 || r.header.Get("Expires") == "" {
			t.Fatalf("browser: Cache-Control %q, Expires %q", r.header.Get("Cache-Control"), r.header.Get("Expires"))
		}
	}
}
