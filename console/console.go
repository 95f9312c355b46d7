package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/redisstore"
)

// Options configure a Console. The zero value is the defaults.
type Options struct {
	// HideSQL shows shapes by ID and tables only, without their SQL text.
	// (Argument values are never shown.)
	HideSQL bool
	// Threshold is the hit ratio under which the advisor flags a shape
	// (default 0.7, pgpool's rule of thumb).
	Threshold float64
	// MinReads is how many reads a shape needs before the advisor judges
	// it (default 20).
	MinReads uint64
	// TopShapes bounds the shapes shown (default 50); MaxShapes the shapes
	// kept in memory (default plugin.DefaultMaxShapes).
	TopShapes, MaxShapes int
	// Interval is the chart's step (default 1 s), Window its span (default
	// 5 minutes).
	Interval, Window time.Duration
	// Breaker reports the store's circuit breaker; nil means asked from
	// the plugin's store when it is a redisstore or memcachestore.
	Breaker func() (open bool, opens uint64)
}

func (o *Options) defaults() error {
	switch {
	case o.Threshold < 0 || o.Threshold > 1:
		return fmt.Errorf("console: Options.Threshold %v: want a ratio between 0 and 1", o.Threshold)
	case o.TopShapes < 0 || o.MaxShapes < 0 || o.Interval < 0 || o.Window < 0:
		return errors.New("console: Options: negative TopShapes, MaxShapes, Interval or Window")
	}
	if o.Threshold == 0 {
		o.Threshold = 0.7
	}
	if o.MinReads == 0 {
		o.MinReads = 20
	}
	if o.TopShapes == 0 {
		o.TopShapes = 50
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Window == 0 {
		o.Window = 5 * time.Minute
	}
	if o.Window < o.Interval {
		o.Window = o.Interval
	}
	return nil
}

// A Console is an http.Handler showing a plugin's figures: HTML, or JSON
// with ?format=json.
type Console struct {
	p     *plugin.Plugin
	opts  Options
	since time.Time

	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	samples []sample      // the last Window/Interval+1, oldest first
	writes  []tableWrites // one every 5 s, the last minute
	latest  tableWrites
}

// sample is the plugin's counters at one time.
type sample struct {
	t           time.Time
	hits, reads uint64 // reads: hits, coalesced, and reads sent to the database
	db          uint64
}

// tableWrites are the writes per table at one time (for rates).
type tableWrites struct {
	t time.Time
	n map[string]uint64
}

// New starts collecting the plugin's per-shape figures and sampling its
// counters, and returns the console. Close stops both.
func New(p *plugin.Plugin, opts Options) (*Console, error) {
	if p == nil {
		return nil, errors.New("console: nil plugin")
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := p.CollectShapes(opts.MaxShapes); err != nil {
		return nil, err
	}
	if opts.Breaker == nil {
		switch st := p.Store().(type) {
		case *redisstore.Store:
			opts.Breaker = func() (bool, uint64) { s := st.Stats(); return s.BreakerOpen, s.BreakerOpens }
		case *memcachestore.Store:
			opts.Breaker = func() (bool, uint64) { s := st.Stats(); return s.BreakerOpen, s.BreakerOpens }
		}
	}
	c := &Console{p: p, opts: opts, since: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	c.sample(time.Now())
	go c.run()
	return c, nil
}

// Close stops the sampling and the plugin's per-shape collection (which
// consoles on the same plugin share: one console per plugin).
func (c *Console) Close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.p.StopShapes()
	})
}

func (c *Console) run() {
	defer close(c.done)
	tick := time.NewTicker(c.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			c.sample(now)
		}
	}
}

// sample records the counters (and, through Shapes, when shapes were
// last read).
func (c *Console) sample(now time.Time) {
	st := c.p.Stats()
	snap := c.p.Shapes()
	db := st.DBQueries()
	s := sample{t: now, hits: st.Hits, db: db, reads: st.Hits + st.Coalesced + db - countWrites(st.Bypasses)}
	w := tableWrites{t: now, n: map[string]uint64{}}
	for _, sh := range snap.Shapes {
		if sh.Write {
			for _, t := range sh.Tables {
				w.n[t] += sh.Writes
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := int(c.opts.Window/c.opts.Interval) + 1
	c.samples = append(c.samples, s)
	if len(c.samples) > keep {
		c.samples = append(c.samples[:0], c.samples[len(c.samples)-keep:]...)
	}
	// table writes: one kept every 5 s, over the last minute, and the latest
	c.latest = w
	if n := len(c.writes); n == 0 || now.Sub(c.writes[n-1].t) >= 5*time.Second {
		c.writes = append(c.writes, w)
		if len(c.writes) > 13 {
			c.writes = append(c.writes[:0], c.writes[1:]...)
		}
	}
}

// series is the chart's points: one per interval between samples.
func (c *Console) series() []Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Point, 0, len(c.samples))
	for i := 1; i < len(c.samples); i++ {
		a, b := c.samples[i-1], c.samples[i]
		pt := Point{Time: b.t}
		if dr := b.reads - a.reads; dr > 0 {
			r := float64(b.hits-a.hits) / float64(dr)
			pt.HitRatio = &r
		}
		if dt := b.t.Sub(a.t).Seconds(); dt > 0 {
			pt.DBQueriesPerS = float64(b.db-a.db) / dt
		}
		out = append(out, pt)
	}
	return out
}

// writeRates are the writes per second of each table over the last
// minute (or since the console started).
func (c *Console) writeRates() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]float64{}
	if len(c.writes) == 0 {
		return out
	}
	a, b := c.writes[0], c.latest
	dt := b.t.Sub(a.t).Seconds()
	if dt <= 0 {
		return out
	}
	for t, n := range b.n {
		out[t] = float64(n-a.n[t]) / dt
	}
	return out
}

// health is the store's health.
func (c *Console) health(st plugin.Stats, lat plugin.StoreLatency) StoreHealth {
	h := StoreHealth{
		Kind: fmt.Sprintf("%T", c.p.Store()), InProcess: lat.InProcess,
		Errors: st.StoreErrors, Canceled: st.StoreCanceled, Outages: st.Outages,
		WritesRefused: st.WritesRefused, Corrupt: st.CorruptEntries, Collisions: st.Collisions,
		Calls: lat.Calls,
		P50us: lat.Quantile(0.5).Microseconds(), P90us: lat.Quantile(0.9).Microseconds(), P99us: lat.Quantile(0.99).Microseconds(),
	}
	if c.opts.Breaker != nil {
		open, opens := c.opts.Breaker()
		h.Breaker, h.BreakerOpens = "closed", opens
		if open {
			h.Breaker = "open"
		}
	}
	return h
}

// Report returns what the page shows.
func (c *Console) Report() Report { return c.build() }

// ServeHTTP serves the page, or the report as JSON with ?format=json.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rep := c.build()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	refresh, _ := strconv.Atoi(r.URL.Query().Get("refresh"))
	if refresh < 0 || refresh > 3600 {
		refresh = 0
	}
	if err := c.render(w, rep, refresh); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
