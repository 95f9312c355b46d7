// Command rest is a JSON API whose views are cached as Django's guide caches
// them — and whose handlers contain no cache code at all: a write through
// GORM makes every cached page, query result and computed value that read
// its table stale when it commits.
//
//	go run ./examples/rest                                   # SQLite in a temp dir + in-process store
//	go run ./examples/rest -pg 'host=127.0.0.1 user=postgres dbname=app sslmode=disable' -redis 127.0.0.1:6379
//
//	GET /articles               the list, a cached page (15 minutes, or until articles is written)
//	GET /articles/{id}          one article, a cached page
//	PUT /articles/{id}          {"title": "…"}: updates it with GORM; nothing else to do
//	GET /products?category=…    a cached page per category
//	GET /stats/expensive        a report computed through lowlevel.Remember (5 minutes)
//	GET /articles/random        a random article: never cached (random() is volatile)
//	GET /debug/gormcache        the cache's console (package console; ?format=json)
//
// Responses of cached views carry a Cache-Status header ("gormcache; hit;
// ttl=899" or "gormcache; fwd=uri-miss; stored; ttl=900"); the report says
// X-Remember: hit or miss. The database is migrated and, when it has no
// articles, seeded with 100 articles and 30 products in 3 categories.
//
// smoke.sh builds the server, starts it and checks all that with curl:
//
//	bash examples/rest/smoke.sh
//
// With -load, the program measures GET /articles under load instead —
// uncached, query-cached, page-cached and a static handler — and prints a
// Markdown table (see load.go); -mode serves one of those modes, for
// another load generator:
//
//	go run ./examples/rest -load -duration 5s -clients 16   # a fresh PostgreSQL database
//	go run ./examples/rest -pg '…' -mode uncached            # then: wrk -c16 -d5s http://127.0.0.1:8080/articles
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rest:", err)
		os.Exit(1)
	}
}

// run parses the flags and serves the API until ctx ends, or runs the load
// benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.PG, "pg", "", `PostgreSQL DSN; "" means SQLite in a temporary directory`)
	fs.StringVar(&cfg.Redis, "redis", "", `Redis address (host:port) of a shared store; "" means the in-process store`)
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", "", `prefix of the store's keys in Redis; "" means "gc:"`)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	mode := fs.String("mode", "page-cached", "for benchmarks with another load generator: page-cached (the example), query-cached (no page cache), uncached (no plugin), or static (GET /articles only: the bytes it returned at start)")
	var lf loadFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if lf.load || lf.url != "" {
		return runLoadCommand(ctx, cfg, lf, stdout, stderr)
	}

	h, cleanup, err := newModeServer(cfg, *mode)
	if err != nil {
		return err
	}
	defer cleanup()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newModeServer is newServer in one of the benchmark's modes (see load.go).
func newModeServer(cfg config, mode string) (http.Handler, func(), error) {
	modes := map[string]cacheMode{"page-cached": cachePages, "query-cached": cacheQueries, "uncached": cacheNone, "static": cacheNone}
	m, ok := modes[mode]
	if !ok {
		return nil, nil, fmt.Errorf("-mode %q: want page-cached, query-cached, uncached or static", mode)
	}
	cfg.Mode = m
	h, cleanup, err := newServer(cfg)
	if err != nil || mode != "static" {
		return h, cleanup, err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/articles", nil))
	if rec.Code != http.StatusOK {
		cleanup()
		return nil, nil, fmt.Errorf("GET /articles: status %d: %s", rec.Code, rec.Body)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /articles", staticHandler(rec.Body.Bytes()))
	return mux, cleanup, nil
}
