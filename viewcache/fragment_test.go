package viewcache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gormcache/gormcache/viewcache"
)

// TestFragment: a fragment is rendered once, served from the store until a
// write to its tables, and makes the page around it depend on them even
// when it was served from the store.
func TestFragment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var renders int64
	sidebar := func(w io.Writer) error {
		atomic.AddInt64(&renders, 1)
		var as []Article
		if err := e.db.Order("id").Find(&as).Error; err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "[%s]", titles(as))
		return err
	}
	fragment := func() string {
		var b bytes.Buffer
		if err := e.c.Fragment(bg, &b, "sidebar", 0, []string{"articles"}, sidebar); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if a, b := fragment(), fragment(); a != b || atomic.LoadInt64(&renders) != 1 || a != "[article 1, article 2, article 3]" {
		t.Fatalf("%q %q, %d renders", a, b, atomic.LoadInt64(&renders))
	}

	// A page made of the fragment alone: no query of its own runs, yet it
	// depends on articles.
	e.mux.Handle("GET /page", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<main>")
		if err := e.c.Fragment(r.Context(), w, "sidebar", 0, []string{"articles"}, sidebar); err != nil {
			http.Error(w, err.Error(), 500)
		}
		io.WriteString(w, "</main>")
	})))
	mustMiss(t, "page", e.get("/page"), "stored")
	mustHit(t, "page", e.get("/page"))
	if n := atomic.LoadInt64(&renders); n != 1 {
		t.Fatalf("%d renders, want 1", n)
	}
	e.db.Create(&Article{Title: "new"})
	r := e.get("/page")
	if r.hit() || r.body != "<main>[article 1, article 2, article 3, new]</main>" || atomic.LoadInt64(&renders) != 2 {
		t.Fatalf("after a write: %q %q, %d renders", r.cacheStatus(), r.body, atomic.LoadInt64(&renders))
	}
	if st := e.c.Stats(); st.FragmentHits != 2 || st.FragmentMisses != 2 {
		t.Fatalf("stats %+v", st)
	}

	// A failing render writes nothing and stores nothing.
	boom := errors.New("boom")
	var b strings.Builder
	err := e.c.Fragment(bg, &b, "failing", 0, nil, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) || b.Len() != 0 {
		t.Fatalf("failing render: %v, wrote %q", err, b.String())
	}
	if err := e.c.Fragment(bg, &b, "x", -5, nil, sidebar); !errors.Is(err, viewcache.ErrInvalidOption) {
		t.Fatalf("negative TTL: %v", err)
	}
	if err := e.c.Fragment(bg, &b, "x", 0, nil, nil); !errors.Is(err, viewcache.ErrInvalidOption) {
		t.Fatalf("nil render: %v", err)
	}
}
