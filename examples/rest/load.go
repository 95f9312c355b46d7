package main

// The load benchmark: GET /articles (100 rows) served four ways, each
// loaded by the same closed-loop generator for the same time:
//
//	uncached       plain GORM, no plugin: a query and a JSON encoding per request
//	query-cached   the plugin only: the rows come from the query cache, the JSON is encoded per request
//	page-cached    the plugin and viewcache.Page: the stored response is replayed
//	static         a handler writing the same bytes, with nothing else to do
//
//	go run ./examples/rest -load -duration 5s -clients 16                  # a fresh PostgreSQL database (the default)
//	go run ./examples/rest -load -load-db sqlite -duration 250ms -warmup 100ms -rounds 1 # quick: SQLite, no server
//	go run ./examples/rest -load-url http://127.0.0.1:8080/articles        # one URL of a running server
//
// The generator is in this process, as the four servers are (each on its own
// loopback port, all started before the first measurement): N clients, each
// with one keep-alive HTTP/1.1 connection, send a request, read the whole
// response and send the next, like wrk. Requests are prebuilt bytes and
// responses are parsed with net/http's ReadResponse, so that the client
// costs little next to the server. The requests counted are those that end
// within the measured time, after the warm-up.
//
// The modes are measured in turns, -rounds times each (1 s each by default),
// and a mode's requests/s is the median of its rounds: a machine shared with
// other work is noisy, and this way a burst of noise spoils one round of one
// mode, not a mode's whole figure. The latencies are those of every request
// of every round. The targets: page-cached ≥ 20× the uncached requests/s,
// and within 1.5× of the static handler's.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gormcache/gormcache/internal/pgadmin"
	"github.com/gormcache/gormcache/internal/redisprefix"
	"github.com/redis/go-redis/v9"
)

// Targets of the benchmark.
const (
	targetVsUncached = 20.0 // page-cached requests/s ÷ uncached requests/s, at least
	targetVsStatic   = 1.5  // static requests/s ÷ page-cached requests/s, at most
)

// defaultPGAdmin is the connection that creates (and drops) the fresh
// PostgreSQL database of the benchmark when -pg is not given.
const defaultPGAdmin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"

// loadFlags are the flags of the load benchmark.
type loadFlags struct {
	load     bool
	url      string
	clients  int
	duration time.Duration
	rounds   int
	warmup   time.Duration
	db       string
	pgAdmin  string
}

func (lf *loadFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&lf.load, "load", false, "measure GET /articles uncached, query-cached, page-cached and static under load, print a Markdown table, and exit")
	fs.StringVar(&lf.url, "load-url", "", "measure this URL of a running server under load (instead of the four modes)")
	fs.IntVar(&lf.clients, "clients", 16, "concurrent clients, each with one keep-alive connection")
	fs.DurationVar(&lf.duration, "duration", 5*time.Second, "measured time (per mode, with -load)")
	fs.IntVar(&lf.rounds, "rounds", 5, "-load: measure the modes in turns, this many times each, for -duration/rounds each time")
	fs.DurationVar(&lf.warmup, "warmup", time.Second, "load before the measured time, not counted (-load: before each mode's first round)")
	fs.StringVar(&lf.db, "load-db", "postgres", `database of -load: "postgres" (-pg, or a fresh database made through -pg-admin and dropped at exit) or "sqlite"`)
	fs.StringVar(&lf.pgAdmin, "pg-admin", defaultPGAdmin, "PostgreSQL admin DSN creating the fresh database of -load")
}

// runLoadCommand runs -load or -load-url.
func runLoadCommand(ctx context.Context, cfg config, lf loadFlags, stdout, stderr io.Writer) error {
	if lf.clients < 1 || lf.duration <= 0 || lf.warmup < 0 || lf.rounds < 1 {
		return errors.New("-clients and -rounds must be at least 1, -duration positive and -warmup not negative")
	}
	if lf.url != "" {
		fmt.Fprintf(stderr, "loading %s: %d clients, %v after %v warm-up\n", lf.url, lf.clients, lf.duration, lf.warmup)
		res, err := runLoad(ctx, lf.url, lf.clients, lf.warmup, lf.duration)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "| URL | requests/s | p50 | p99 | Cache-Status hits | errors |\n|---|---:|---:|---:|---:|---:|\n")
		fmt.Fprintf(stdout, "| %s | %.0f | %s | %s | %s | %d |\n", lf.url, res.rps(), fmtDuration(res.p50), fmtDuration(res.p99), res.hitShare(), res.errors)
		return res.err()
	}

	dbName := lf.db
	switch lf.db {
	case "sqlite":
		cfg.PG = ""
	case "postgres":
		if cfg.PG == "" {
			dsn, drop, err := pgadmin.Fresh(lf.pgAdmin)
			if err != nil {
				return err
			}
			defer drop()
			cfg.PG = dsn
		}
	default:
		return fmt.Errorf("-load-db %q: want postgres or sqlite", lf.db)
	}
	storeName := "in-process store"
	if cfg.Redis != "" {
		storeName = "Redis store at " + cfg.Redis
		if cfg.RedisPrefix == "" {
			cfg.RedisPrefix = "gcload:" + randomHex(4) + ":"
			defer func() {
				if err := deleteRedisKeys(cfg.Redis, cfg.RedisPrefix); err != nil {
					fmt.Fprintf(stderr, "rest: delete the benchmark's keys from Redis: %v\n", err)
				}
			}()
		}
	}

	// Every mode is served at once, each on its own loopback port, and the
	// modes are measured in turns, round after round, so that a burst of
	// noise from elsewhere on the machine hits one round of one mode rather
	// than a mode's whole measurement.
	modes := []string{"uncached", "query-cached", "page-cached", "static"}
	targets := map[string]string{}
	var body []byte // the uncached response, which every mode must return
	for _, m := range modes {
		var h http.Handler
		if m == "static" {
			h = staticHandler(body)
		} else {
			c := cfg
			c.Mode = map[string]cacheMode{"uncached": cacheNone, "query-cached": cacheQueries, "page-cached": cachePages}[m]
			var cleanup func()
			var err error
			if h, cleanup, err = newServer(c); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			defer cleanup()
		}
		target, got, stop, err := serveLoopback(h)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		defer stop() // before the cleanup above: defers run last first
		if body == nil {
			body = got
		} else if !bytes.Equal(got, body) {
			return fmt.Errorf("%s: GET /articles returned other bytes than uncached (%d vs %d bytes)", m, len(got), len(body))
		}
		targets[m] = target
	}

	slice := lf.duration / time.Duration(lf.rounds)
	rounds := map[string][]loadResult{}
	for r := 0; r < lf.rounds; r++ {
		for _, m := range modes {
			warmup := time.Duration(0) // connections are redialled in each round: a dial is a few µs on loopback
			if r == 0 {
				warmup = lf.warmup
			}
			fmt.Fprintf(stderr, "round %d/%d: %-12s %d clients, %v after %v warm-up\n", r+1, lf.rounds, m, lf.clients, slice, warmup)
			runtime.GC()
			res, err := runLoad(ctx, targets[m], lf.clients, warmup, slice)
			if err != nil {
				return err
			}
			rounds[m] = append(rounds[m], res)
		}
	}
	var results []modeResult
	for _, m := range modes {
		results = append(results, modeResult{name: m, rounds: rounds[m], loadResult: mergeResults(rounds[m])})
	}

	var rows []json.RawMessage
	if err := json.Unmarshal(body, &rows); err != nil {
		return fmt.Errorf("GET /articles: %w", err)
	}
	fmt.Fprintf(stdout, "examples/rest -load: %s/%s, %d CPUs, %s; GET /articles (%d rows, %d bytes) on %s, %s; %d clients; "+
		"%v per mode in %d interleaved rounds of %v, after %v warm-up; requests/s: median of the rounds.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), len(rows), len(body), dbName, storeName, lf.clients,
		lf.duration, lf.rounds, slice, lf.warmup)
	writeLoadTable(stdout, results)
	for _, r := range results {
		if err := r.err(); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return nil
}

// serveLoopback serves h on a loopback port, and checks that GET /articles
// answers 200; it returns that URL, the body, and the function stopping the
// server.
func serveLoopback(h http.Handler) (target string, body []byte, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	target = "http://" + ln.Addr().String() + "/articles"
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(target)
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /articles: %s: %s", resp.Status, body)
		}
	}
	if err != nil {
		srv.Close()
		return "", nil, nil, err
	}
	return target, body, func() { srv.Close() }, nil
}

// staticHandler writes body as GET /articles does, with nothing else to do.
func staticHandler(body []byte) http.Handler {
	n := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", n)
		w.Write(body)
	})
}

// modeResult is a mode's rounds, and their sum.
type modeResult struct {
	name   string
	rounds []loadResult
	loadResult
}

// rps is the median of the rounds' requests/s.
func (m modeResult) rps() float64 {
	var v []float64
	for _, r := range m.rounds {
		v = append(v, r.rps())
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// mergeResults sums rounds: counts, time, and latencies (percentiles over
// every request of every round).
func mergeResults(rs []loadResult) loadResult {
	var m loadResult
	for _, r := range rs {
		m.requests += r.requests
		m.hits += r.hits
		m.errors += r.errors
		m.elapsed += r.elapsed
		if m.firstErr == nil {
			m.firstErr = r.firstErr
		}
		m.lat = append(m.lat, r.lat...)
	}
	m.setPercentiles()
	return m
}

// writeLoadTable prints the modes and the targets as Markdown.
func writeLoadTable(w io.Writer, rs []modeResult) {
	rps := map[string]float64{}
	for _, r := range rs {
		rps[r.name] = r.rps()
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	what := map[string]string{
		"uncached":     "uncached (plain GORM)",
		"query-cached": "query-cached (plugin only)",
		"page-cached":  "page-cached (viewcache.Page)",
		"static":       "static handler, same bytes",
	}
	fmt.Fprintln(w, "| mode | requests/s | p50 | p99 | vs uncached | Cache-Status hits | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %d |\n", what[r.name], r.rps(), fmtDuration(r.p50), fmtDuration(r.p99),
			ratio(r.rps(), rps["uncached"]), r.hitShare(), r.errors)
	}
	result := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	page, unc, static := rps["page-cached"], rps["uncached"], rps["static"]
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | result |")
	fmt.Fprintln(w, "|---|---:|---|")
	fmt.Fprintf(w, "| page-cached ≥ %.0f× uncached requests/s | %s | %s |\n", targetVsUncached, ratio(page, unc), result(unc > 0 && page/unc >= targetVsUncached))
	fmt.Fprintf(w, "| page-cached within %.1f× of static (static ÷ page-cached requests/s) | %s | %s |\n", targetVsStatic, ratio(static, page), result(page > 0 && static/page <= targetVsStatic))
}

// loadResult is what runLoad measured.
type loadResult struct {
	requests int             // completed in the measured time, with status 200
	hits     int             // of which carried a Cache-Status hit
	errors   int             // failed requests and other statuses
	firstErr error           // the first of the errors
	elapsed  time.Duration   // the measured time
	lat      []time.Duration // the requests' latencies, sorted
	p50, p99 time.Duration
}

// setPercentiles sorts lat and sets p50 and p99 from it.
func (r *loadResult) setPercentiles() {
	if len(r.lat) == 0 {
		return
	}
	slices.Sort(r.lat)
	r.p50 = percentile(r.lat, 50)
	r.p99 = percentile(r.lat, 99)
}

func (r loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

func (r loadResult) hitShare() string {
	if r.hits == 0 || r.requests == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(r.hits)/float64(r.requests))
}

func (r loadResult) err() error {
	if r.errors > 0 {
		return fmt.Errorf("%d requests failed; the first: %w", r.errors, r.firstErr)
	}
	if r.requests == 0 {
		return errors.New("no request completed in the measured time")
	}
	return nil
}

// runLoad sends GET target from clients concurrent keep-alive connections
// for warmup+duration, and measures the requests that end within duration,
// after the warm-up.
func runLoad(ctx context.Context, target string, clients int, warmup, duration time.Duration) (loadResult, error) {
	u, err := url.Parse(target)
	if err != nil {
		return loadResult{}, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return loadResult{}, fmt.Errorf("load: %q: only http:// URLs", target)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: gormcache-load\r\nAccept: */*\r\n\r\n")

	start := time.Now()
	from, end := start.Add(warmup), start.Add(warmup+duration)
	type clientResult struct {
		lat          []time.Duration
		hits, errors int
		firstErr     error
	}
	out := make([]clientResult, clients)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func(cr *clientResult) {
			defer wg.Done()
			c := &loadClient{addr: addr, req: req, deadline: end.Add(10 * time.Second)}
			defer c.close()
			cr.lat = make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				hit, err := c.get()
				t1 := time.Now()
				if t1.Before(from) || t1.After(end) {
					continue // ended in the warm-up, or past the end
				}
				if err != nil {
					if cr.errors == 0 {
						cr.firstErr = err
					}
					cr.errors++
					time.Sleep(time.Millisecond) // no busy loop against a server that is down
					continue
				}
				cr.lat = append(cr.lat, t1.Sub(t0))
				if hit {
					cr.hits++
				}
			}
		}(&out[i])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}

	res := loadResult{elapsed: duration}
	for _, cr := range out {
		res.lat = append(res.lat, cr.lat...)
		res.hits += cr.hits
		res.errors += cr.errors
		if res.firstErr == nil {
			res.firstErr = cr.firstErr
		}
	}
	res.requests = len(res.lat)
	res.setPercentiles()
	return res, nil
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100 // ceil(len·p/100)
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

// loadClient is one keep-alive HTTP/1.1 connection sending one prebuilt
// request at a time.
type loadClient struct {
	addr     string
	req      []byte
	deadline time.Time
	conn     net.Conn
	br       *bufio.Reader
}

// get sends the request and reads the whole response, redialling when the
// connection was closed; it reports whether the response was a cache hit.
func (c *loadClient) get() (hit bool, err error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return false, err
		}
		conn.SetDeadline(c.deadline)
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 32<<10)
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return false, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", resp.Status)
	}
	return strings.Contains(resp.Header.Get("Cache-Status"), "; hit"), nil
}

func (c *loadClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// fmtDuration prints a latency in µs below a millisecond, in ms above.
func fmtDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// deleteRedisKeys deletes the keys under prefix: those a benchmark or a
// test wrote under a prefix of its own.
func deleteRedisKeys(addr, prefix string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := redisprefix.Delete(ctx, rdb, prefix)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
