package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/console"
	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/gormcache/gormcache/viewcache"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Article is a blog article: GET /articles, GET and PUT /articles/{id}.
type Article struct {
	ID     uint   `json:"id"`
	Title  string `json:"title"`
	Author string `json:"author"`
	Body   string `json:"body"`
}

// Product is a shop's product: GET /products?category=….
type Product struct {
	ID         uint   `json:"id"`
	Name       string `json:"name"`
	Category   string `json:"category" gorm:"index"`
	PriceCents int    `json:"price_cents"`
}

// Report is what GET /stats/expensive computes, and keeps for 5 minutes
// through lowlevel.Remember (or until articles or products is written).
type Report struct {
	Articles   int64           `json:"articles"`
	Words      int             `json:"words"`
	Categories []CategoryStats `json:"categories"`
	ComputedAt time.Time       `json:"computed_at"`
	Took       string          `json:"took"`
}

// CategoryStats summarises the products of one category.
type CategoryStats struct {
	Category      string  `json:"category"`
	Products      int64   `json:"products"`
	AvgPriceCents float64 `json:"avg_price_cents"`
	MinPriceCents int     `json:"min_price_cents"`
	MaxPriceCents int     `json:"max_price_cents"`
}

// Seed sizes.
const (
	seedArticles = 100
	seedProducts = 30 // 10 in each of categories
)

var categories = []string{"books", "games", "music"}

// cacheMode says how much of gormcache a server uses; the zero value is the
// example as README shows it. The other modes exist for the load benchmark.
type cacheMode int

const (
	cachePages   cacheMode = iota // the plugin, views cached with viewcache, Remember
	cacheQueries                  // the plugin only: query results cached, pages rendered each time
	cacheNone                     // plain GORM: no plugin
)

func (m cacheMode) String() string {
	switch m {
	case cachePages:
		return "page-cached"
	case cacheQueries:
		return "query-cached"
	case cacheNone:
		return "uncached"
	}
	return "cacheMode(" + strconv.Itoa(int(m)) + ")"
}

// config configures newServer. The zero config is the embedded default:
// SQLite in a temporary directory and the plugin's in-process memory store.
type config struct {
	// PG is a PostgreSQL DSN; "" means SQLite in a temporary directory,
	// removed by the cleanup.
	PG string
	// Redis is a Redis address (host:port) for a store shared by every
	// instance; "" means the in-process memory store.
	Redis string
	// RedisPrefix namespaces the store's keys in Redis; "" means
	// redisstore's default ("gc:").
	RedisPrefix string
	// Mode is how much caching the server uses (benchmarks only).
	Mode cacheMode
	// Conns bounds the database connections (open and idle); 0 means 16.
	Conns int
}

// server holds what the handlers use.
type server struct {
	db     *gorm.DB
	views  *viewcache.Cache // nil unless Mode is cachePages
	values *lowlevel.Cache  // nil under cacheNone
	// console is the cache's page, served at /debug/gormcache (nil under
	// cacheNone). Behind a real application's authentication, like pprof.
	console *console.Console
}

// newServer opens the database (migrating and seeding it when it has no
// articles) and the cache, and returns the API's handler and the function
// releasing what it opened, to call once the HTTP server has stopped.
func newServer(cfg config) (http.Handler, func(), error) {
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (http.Handler, func(), error) {
		cleanup()
		return nil, nil, err
	}

	var dialector gorm.Dialector
	if cfg.PG != "" {
		dialector = postgres.Open(cfg.PG)
	} else {
		dir, err := os.MkdirTemp("", "gormcache-rest-")
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { os.RemoveAll(dir) })
		dialector = sqlite.Open("file:" + filepath.Join(dir, "app.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	}
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return fail(fmt.Errorf("open database: %w", err))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { sqlDB.Close() })
	conns := cfg.Conns
	if conns <= 0 {
		conns = 16
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns) // database/sql keeps 2 by default: busy servers would reconnect all the time

	s := &server{db: db}
	if cfg.Mode != cacheNone {
		var st store.Store // nil: the plugin's own in-process memory store
		if cfg.Redis != "" {
			rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, ContextTimeoutEnabled: true})
			closers = append(closers, func() { rdb.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := rdb.Ping(ctx).Err()
			cancel()
			if err != nil {
				return fail(fmt.Errorf("redis at %s: %w", cfg.Redis, err))
			}
			rs, err := redisstore.New(rdb, redisstore.Config{Prefix: cfg.RedisPrefix})
			if err != nil {
				return fail(err)
			}
			closers = append(closers, func() { rs.Close() }) // the plugin does not own a store it is given
			st = rs
		}
		p := plugin.New(plugin.Config{Store: st})
		if err := db.Use(p); err != nil {
			return fail(fmt.Errorf("install gormcache: %w", err))
		}
		closers = append(closers, func() { p.Close() })
		if s.console, err = console.New(p, console.Options{}); err != nil {
			return fail(err)
		}
		closers = append(closers, s.console.Close)
		if s.values, err = lowlevel.New(p, lowlevel.Config{}); err != nil {
			return fail(err)
		}
		if cfg.Mode == cachePages {
			if s.views, err = viewcache.New(p, viewcache.Config{TTL: 15 * time.Minute}); err != nil {
				return fail(err)
			}
		}
	}
	// Migrated and seeded through the plugin, so that a shared store sees
	// these writes as it sees any other.
	if err := seed(db); err != nil {
		return fail(err)
	}
	return s.routes(), cleanup, nil
}

// seed creates the tables, and fills them when there are no articles.
func seed(db *gorm.DB) error {
	if err := db.AutoMigrate(&Article{}, &Product{}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var n int64
	if err := db.Model(&Article{}).Count(&n).Error; err != nil || n > 0 {
		return err
	}
	articles := make([]Article, seedArticles)
	for i := range articles {
		articles[i] = Article{
			Title:  fmt.Sprintf("Article %d", i+1),
			Author: fmt.Sprintf("author%d", i%7+1),
			Body:   strings.Repeat(fmt.Sprintf("Words of article %d. ", i+1), 3),
		}
	}
	products := make([]Product, seedProducts)
	for i := range products {
		products[i] = Product{
			Name:       fmt.Sprintf("Product %d", i+1),
			Category:   categories[i%len(categories)],
			PriceCents: 199 + 100*(i%13),
		}
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if err := tx.CreateInBatches(articles, 100).Error; err != nil {
			return err
		}
		return tx.CreateInBatches(products, 100).Error
	})
}

// routes returns the API. The handlers have no cache code: the pages are
// cached by wrapping them (page), and a write through GORM makes every
// page, query result and Remember value that read its table stale.
func (s *server) routes() http.Handler {
	page := func(h http.HandlerFunc) http.Handler {
		if s.views == nil {
			return h
		}
		return s.views.Page(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /articles", page(s.listArticles)) // cache_page(60 * 15): Config.TTL
	mux.Handle("GET /articles/{id}", page(s.getArticle))
	mux.HandleFunc("PUT /articles/{id}", s.putArticle)
	mux.Handle("GET /products", page(s.listProducts)) // one entry per ?category=
	mux.HandleFunc("GET /stats/expensive", s.expensiveStats)
	mux.HandleFunc("GET /articles/random", s.randomArticle) // never cached: random() is volatile
	if s.console != nil {
		// The cache's console, mounted like net/http/pprof. It shows the
		// application's SQL (never argument values): in a real application,
		// mount it behind the authentication of its administrators.
		mux.Handle("GET /debug/gormcache", s.console)
	}
	return mux
}

func (s *server) listArticles(w http.ResponseWriter, r *http.Request) {
	var articles []Article
	if err := s.db.WithContext(r.Context()).Order("id").Find(&articles).Error; err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, articles)
}

func (s *server) getArticle(w http.ResponseWriter, r *http.Request) {
	id, ok := articleID(w, r)
	if !ok {
		return
	}
	var a Article
	if err := s.db.WithContext(r.Context()).First(&a, id).Error; err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// randomArticle serves an article picked by the database: a query the
// cache never serves (random() is volatile), which the console lists
// among the shapes never cached.
func (s *server) randomArticle(w http.ResponseWriter, r *http.Request) {
	var a Article
	if err := s.db.WithContext(r.Context()).Order("random()").Take(&a).Error; err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// articleUpdate is the body of PUT /articles/{id}: the fields to change.
type articleUpdate struct {
	Title  *string `json:"title"`
	Author *string `json:"author"`
	Body   *string `json:"body"`
}

// putArticle updates an article with GORM, and that is all: the cached
// pages and values that read articles are stale once the update commits.
func (s *server) putArticle(w http.ResponseWriter, r *http.Request) {
	id, ok := articleID(w, r)
	if !ok {
		return
	}
	var in articleUpdate
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	changes := map[string]any{}
	for column, v := range map[string]*string{"title": in.Title, "author": in.Author, "body": in.Body} {
		if v != nil {
			changes[column] = *v
		}
	}
	if len(changes) == 0 {
		writeError(w, http.StatusBadRequest, "nothing to update: give title, author or body")
		return
	}
	db := s.db.WithContext(r.Context())
	var a Article
	if err := db.First(&a, id).Error; err != nil {
		serverError(w, err)
		return
	}
	if err := db.Model(&a).Updates(changes).Error; err != nil {
		serverError(w, err)
		return
	}
	if err := db.First(&a, id).Error; err != nil { // the article as stored
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *server) listProducts(w http.ResponseWriter, r *http.Request) {
	q := s.db.WithContext(r.Context()).Order("id")
	if c := r.URL.Query().Get("category"); c != "" {
		q = q.Where("category = ?", c)
	}
	products := []Product{}
	if err := q.Find(&products).Error; err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, products)
}

// expensiveStats serves a report computed from both tables, kept for 5
// minutes by lowlevel.Remember or until either table is written. Its
// X-Remember header says whether this request computed it ("miss") or
// not ("hit": a stored value, or one computed by a concurrent request).
func (s *server) expensiveStats(w http.ResponseWriter, r *http.Request) {
	computed := false
	compute := func(ctx context.Context) (Report, error) {
		computed = true
		return s.computeReport(ctx)
	}
	var rep Report
	var err error
	if s.values != nil {
		rep, err = lowlevel.Remember(r.Context(), s.values, "stats:expensive", 5*time.Minute,
			[]string{"articles", "products"}, compute)
	} else {
		rep, err = compute(r.Context())
	}
	if err != nil {
		serverError(w, err)
		return
	}
	if computed {
		w.Header().Set("X-Remember", "miss")
	} else {
		w.Header().Set("X-Remember", "hit")
	}
	writeJSON(w, http.StatusOK, rep)
}

// computeReport is the expensive computation: aggregates per category, and
// a word count over every article's body.
func (s *server) computeReport(ctx context.Context) (Report, error) {
	start := time.Now()
	db := s.db.WithContext(ctx)
	rep := Report{Categories: []CategoryStats{}}
	err := db.Model(&Product{}).
		Select("category, count(*) AS products, avg(price_cents) AS avg_price_cents, min(price_cents) AS min_price_cents, max(price_cents) AS max_price_cents").
		Group("category").Order("category").Scan(&rep.Categories).Error
	if err != nil {
		return Report{}, err
	}
	var bodies []string
	if err := db.Model(&Article{}).Order("id").Pluck("body", &bodies).Error; err != nil {
		return Report{}, err
	}
	rep.Articles = int64(len(bodies))
	for _, b := range bodies {
		rep.Words += len(strings.Fields(b))
	}
	rep.ComputedAt = time.Now().UTC()
	rep.Took = time.Since(start).String()
	return rep, nil
}

// articleID reads the {id} path value, answering 400 when it is not one.
func articleID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, "invalid article id")
		return 0, false
	}
	return id, true
}

// writeJSON writes v as a JSON response with its Content-Length.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		serverError(w, err)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// serverError answers 404 for a record not found, 500 otherwise.
func serverError(w http.ResponseWriter, err error) {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}
