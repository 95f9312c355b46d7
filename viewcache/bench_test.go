package viewcache_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store/memstore"
)

// discard is a ResponseWriter that keeps nothing, so that benchmarks
// measure the cache, not the recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkPageHit: a hit on a page of 100 rows, called in process (no
// network), against the handler writing the same bytes with no cache.
func BenchmarkPageHit(b *testing.B) {
	for _, kind := range []string{"memstore", "bytes"} {
		b.Run(kind, func(b *testing.B) {
			var o envOptions
			if kind == "bytes" {
				ms, _ := memstore.New(memstore.Config{})
				o.store = testsupport.BytesStore{Store: ms}
			}
			e := newEnv(b, o)
			for i := range 97 {
				e.db.Create(&Article{Title: "article " + strings.Repeat("x", i%20)})
			}
			h := e.c.Page(e.list("bench"))
			req := httptest.NewRequest("GET", "http://example.com/articles?page=1", nil)
			h.ServeHTTP(&discard{h: http.Header{}}, req)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.ServeHTTP(&discard{h: http.Header{}}, req)
			}
			if e.c.Stats().Hits == 0 {
				b.Fatal("no hits")
			}
		})
	}
	b.Run("static", func(b *testing.B) {
		body := []byte(strings.Repeat("article 1, ", 100))
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		})
		req := httptest.NewRequest("GET", "http://example.com/articles?page=1", nil)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(&discard{h: http.Header{}}, req)
		}
	})
}
