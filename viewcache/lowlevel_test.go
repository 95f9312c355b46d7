package viewcache_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gormcache/gormcache/lowlevel"
)

// A page whose handler reads through the low-level cache (lowlevel.Remember)
// depends on the tables of that value, also when the value is served from
// the low-level cache and no query runs: a write to them makes the page
// stale.
func TestPageDependsOnLowLevelValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ll, err := lowlevel.New(e.p, lowlevel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.mux.Handle("GET /report", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.counter("report").Add(1)
		n, err := lowlevel.Remember(r.Context(), ll, "articles:count", time.Minute, []string{"articles"}, func(ctx context.Context) (int64, error) {
			var n int64
			err := e.db.WithContext(ctx).Model(&Article{}).Count(&n).Error
			return n, err
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	})))
	// Warm the low-level value outside any page, so the page's first run
	// makes no query at all (it reads the value from the low-level cache).
	if _, err := lowlevel.Remember(bg, ll, "articles:count", time.Minute, []string{"articles"}, func(ctx context.Context) (int64, error) {
		var n int64
		return n, e.db.Model(&Article{}).Count(&n).Error
	}); err != nil {
		t.Fatal(err)
	}
	r1 := e.get("/report")
	r2 := e.get("/report")
	mustHit(t, "second GET", r2)
	if r1.body != "3" || r2.body != "3" {
		t.Fatalf("bodies %q %q", r1.body, r2.body)
	}
	if err := e.db.Create(&Article{Title: "four"}).Error; err != nil {
		t.Fatal(err)
	}
	r3 := e.get("/report")
	if r3.hit() || r3.body != "4" {
		t.Fatalf("after a write to articles: hit %v, body %q (Cache-Status %q)", r3.hit(), r3.body, r3.cacheStatus())
	}
}
