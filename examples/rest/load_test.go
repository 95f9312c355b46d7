package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLoadQuick runs the load benchmark in its quick mode (SQLite, a quarter
// of a second per mode): it checks that the tool works and prints its
// table, not the targets, which a test machine cannot promise. It does not
// run in parallel with the other tests of the package, which would starve it.
func TestLoadQuick(t *testing.T) {
	var out, log bytes.Buffer
	args := []string{"-load", "-load-db", "sqlite", "-duration", "250ms", "-warmup", "100ms", "-rounds", "2", "-clients", "4"}
	if err := run(context.Background(), args, &out, &log); err != nil {
		t.Fatalf("run %q: %v\n%s\n%s", args, err, log.String(), out.String())
	}
	s := out.String()
	for _, want := range []string{
		"| uncached (plain GORM) |", "| query-cached (plugin only) |", "| page-cached (viewcache.Page) |",
		"| static handler, same bytes |", "| page-cached ≥ 20× uncached requests/s |", "| page-cached within 1.5× of static",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// The page-cached mode must actually be served from the cache.
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "| page-cached (viewcache.Page) |") && !strings.Contains(line, "%") {
			t.Errorf("page-cached mode had no Cache-Status hits: %s", line)
		}
	}
	t.Log("\n" + s)
}

// TestRunLoad checks the generator's counts against a server that counts too.
func TestRunLoad(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Status", "test; hit")
		w.Write([]byte(strings.Repeat("x", 5000))) // chunked: no Content-Length
	}))
	defer srv.Close()

	res, err := runLoad(context.Background(), srv.URL+"/", 3, 20*time.Millisecond, 400*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.err() != nil || res.requests == 0 || res.hits != res.requests || res.p50 <= 0 || res.p99 < res.p50 {
		t.Errorf("got %+v, err %v", res, res.err())
	}
	res, err = runLoad(context.Background(), srv.URL+"/?fail=1", 2, 0, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.errors == 0 || res.err() == nil || !strings.Contains(res.err().Error(), "500") {
		t.Errorf("failing server: got %+v, err %v", res, res.err())
	}
	if _, err := runLoad(context.Background(), "https://example.com/", 1, 0, time.Millisecond); err == nil {
		t.Error("runLoad accepted an https URL")
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		name string
		p    int
		want time.Duration
	}{{"p50", 50, 100}, {"p99", 99, 198}, {"p100", 100, 200}, {"p0", 0, 1}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, got, tc.want)
		}
	}
}
