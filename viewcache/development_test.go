package viewcache_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gormcache/gormcache/viewcache"
)

// syncBuffer is a bytes.Buffer for a logger written from handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Config.Development (issue 16 item 10): a statement made without the
// request's context inside a cached handler is reported (logged with the
// path and SQL, counted); one made with it is not; without Development
// nothing is reported.
func TestDevelopmentReportsUnrecordedStatements(t *testing.T) {
	t.Parallel()
	for _, dev := range []bool{true, false} {
		t.Run(fmt.Sprint("development=", dev), func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			e := newEnv(t, envOptions{cfg: viewcache.Config{Development: dev, Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
			e.mux.Handle("GET /good", e.c.Page(e.list("good")))
			e.mux.Handle("GET /forgot", e.c.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var as []Article
				if err := e.db.Order("id").Find(&as).Error; err != nil { // (no r.Context(): the mistake)
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				fmt.Fprint(w, titles(as))
			})))
			e.get("/good")
			if n := e.c.Stats().Unrecorded; n != 0 {
				t.Fatalf("a handler using r.Context(): Unrecorded = %d", n)
			}
			e.get("/forgot")
			n := e.c.Stats().Unrecorded
			if dev && n != 1 || !dev && n != 0 {
				t.Fatalf("development %v: Unrecorded = %d after the forgetful handler", dev, n)
			}
			if logged := strings.Contains(logs.String(), "path=/forgot") && strings.Contains(logs.String(), "articles"); logged != dev {
				t.Fatalf("development %v: logged %v:\n%s", dev, logged, logs.String())
			}
		})
	}
}
