package benchsuite

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The workload benchmark (gormcache-bench -workload): one request sequence,
// drawn from a seeded generator, run against plain GORM, gormcache
// table-level and gormcache row-level on PostgreSQL, and simulated for an
// ideal cache (see ideal).

// The workload's data and mix.
const (
	WorkloadUsers = 5000   // rows of users
	WorkloadPosts = 20_000 // rows of posts (posts.user_id → users.id)
	// WorkloadZipf is the exponent s of the Zipf distribution of the ids
	// read and written (id 1 the most frequent; math/rand/v2's Zipf, v = 1).
	WorkloadZipf = 1.1
)

// wUser and wPost are the workload's tables, users and posts.
type wUser struct {
	ID     uint   `gorm:"primaryKey"`
	Name   string `gorm:"size:64"`
	Email  string `gorm:"size:128"`
	Visits int64  `gorm:"index"` // (the 10 most visited read it in order)
}

func (wUser) TableName() string { return "users" }

type wPost struct {
	ID     uint   `gorm:"primaryKey"`
	UserID uint   `gorm:"index"`
	User   wUser  // belongs-to: the foreign key posts.user_id → users.id
	Title  string `gorm:"size:128"`
	Body   string
}

func (wPost) TableName() string { return "posts" }

// op is a request's kind.
type op uint8

const (
	opUser    op = iota // read: First(&u, id)
	opLatest            // read: a user's 10 latest posts
	opPost              // read: a post by id, Preload("User")
	opCount             // read: a user's post count
	opTop               // read: the 10 most visited users
	opVisit             // write: a user's visit counter +1
	opNewPost           // write: Create a post
	opTitle             // write: a post's title by id
	numOps

	// opPreloadUser is not a request: the key of the users query a post
	// read's Preload sends (ideal's bookkeeping).
	opPreloadUser = numOps
)

var opNames = [numOps]string{
	opUser:    "user by id",
	opLatest:  "user's 10 latest posts",
	opPost:    "post by id + Preload(User)",
	opCount:   "user's post count",
	opTop:     "10 most visited users",
	opVisit:   "visits + 1",
	opNewPost: "new post",
	opTitle:   "post title",
}

func (o op) isRead() bool { return o <= opTop }

// request is one request of the sequence: a user id (opUser, opLatest,
// opCount, opVisit, opNewPost) or a post id (opPost, opTitle), 1-based.
type request struct {
	op op
	id int
}

// requestAt returns request i of the sequence of seed at writePct percent
// writes. Each request is drawn from a generator of its own, seeded by
// (seed, i), so that any client may draw any index and the sequence is the
// same whoever runs it. The reads keep the proportions 50:20:10:5:5;
// the writes are a third each.
func requestAt(seed uint64, writePct float64, i int) request {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	userID := func() int { return int(rand.NewZipf(r, WorkloadZipf, 1, WorkloadUsers-1).Uint64()) + 1 }
	postID := func() int { return int(rand.NewZipf(r, WorkloadZipf, 1, WorkloadPosts-1).Uint64()) + 1 }
	if r.Float64()*100 < writePct {
		switch r.IntN(3) {
		case 0:
			return request{opVisit, userID()}
		case 1:
			return request{opNewPost, userID()}
		}
		return request{opTitle, postID()}
	}
	switch x := r.IntN(90); {
	case x < 50:
		return request{opUser, userID()}
	case x < 70:
		return request{opLatest, userID()}
	case x < 80:
		return request{opPost, postID()}
	case x < 85:
		return request{opCount, userID()}
	}
	return request{opTop, 0}
}

// workloadData returns the seeded rows: users whose visits follow their
// popularity (as if counted by an earlier run of the same requests: 200,000
// × id^-s, plus 0…9, so the most visited are the users visited most) and
// posts whose authors are Zipf-distributed like the requests (the users read
// most have the most posts). It is the same for every seed and
// configuration.
func workloadData() ([]wUser, []wPost) {
	r := rand.New(rand.NewPCG(15, 5))
	z := rand.NewZipf(r, WorkloadZipf, 1, WorkloadUsers-1)
	users := make([]wUser, WorkloadUsers)
	for i := range users {
		visits := int64(200_000*math.Pow(float64(i+1), -WorkloadZipf)) + int64(r.IntN(10))
		users[i] = wUser{ID: uint(i + 1), Name: fmt.Sprintf("user %d", i+1), Email: fmt.Sprintf("user%d@example.com", i+1), Visits: visits}
	}
	posts := make([]wPost, WorkloadPosts)
	for i := range posts {
		posts[i] = wPost{ID: uint(i + 1), UserID: uint(z.Uint64() + 1), Title: fmt.Sprintf("post %d", i+1), Body: "a post of the workload benchmark"}
	}
	return users, posts
}

// readKey marks, in a query's context, the reads whose database queries the
// tracer counts, with the request's kind.
type readKey struct{}

// queryCounter is a pgx tracer counting the queries sent for reads, by kind.
type queryCounter struct {
	n [numOps]atomic.Int64
}

var _ pgx.QueryTracer = (*queryCounter)(nil)

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if o, ok := ctx.Value(readKey{}).(op); ok {
		c.n[o].Add(1)
	}
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// WorkloadOptions configure Workload. Zero fields mean the defaults.
type WorkloadOptions struct {
	DSN      string        // PostgreSQL, key=value; its users and posts tables are replaced
	Clients  int           // concurrent clients; 0 means 8
	Duration time.Duration // per configuration and write rate; 0 means 10 s
	// Requests, when positive, runs exactly that many requests per
	// configuration instead of for Duration. With Clients 1 every
	// configuration reads the same results, which Workload then checks.
	Requests int
	Writes   []float64 // percentages of writes, one run each; nil means 10 and 1
	Seed     uint64    // the request sequence's seed
	// Progress, if not nil, is told of each configuration's figures.
	Progress func(format string, args ...any)
}

// configuration is one of the measured setups: nil cfg is plain GORM.
type configuration struct {
	name string
	cfg  *plugin.Config
}

var configurations = []configuration{
	{"plain GORM", nil},
	{"gormcache table-level", &plugin.Config{TableLevel: true}},
	{"gormcache row-level", &plugin.Config{}},
}

// WorkloadRun is what one configuration did at one write rate.
type WorkloadRun struct {
	Config   string
	Requests int // the first Requests of the sequence, all completed
	Reads    int
	Elapsed  time.Duration
	Queries  [numOps]int64 // database queries sent for reads, by kind
	ReadsBy  [numOps]int64 // reads by kind
	Checksum uint64        // sum of a hash of (index, rows) over every read
	Stats    *plugin.Stats // nil for plain GORM
	Ideal    idealResult   // the ideal cache over the same Requests
}

// QueriesPerRead is the database queries sent for reads per read.
func (r WorkloadRun) QueriesPerRead() float64 { return perRead(r.Queries[:], r.Reads) }

// RPS is requests (reads and writes) per second.
func (r WorkloadRun) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

func perRead(q []int64, reads int) float64 {
	if reads == 0 {
		return 0
	}
	return float64(total(q)) / float64(reads)
}

func total(q []int64) int64 {
	var n int64
	for _, v := range q {
		n += v
	}
	return n
}

// WorkloadRate is the runs of every configuration at one write rate.
type WorkloadRate struct {
	WritePct float64
	Runs     []WorkloadRun
}

// WorkloadReport is what Workload measured.
type WorkloadReport struct {
	Options            WorkloadOptions
	Server             string // PostgreSQL's server_version
	LoadStart, LoadEnd string // /proc/loadavg's first three fields, "" where unreadable
	// Compared says whether the configurations' read results were
	// compared (Requests with one client) and found identical.
	Compared bool
	Rates    []WorkloadRate
}

// Workload measures opt's write rates, each configuration from the same
// request sequence and the same initial data (restored before each run), in
// one process, one after the other.
func Workload(ctx context.Context, opt WorkloadOptions) (*WorkloadReport, error) {
	if opt.Clients <= 0 {
		opt.Clients = 8
	}
	if opt.Duration <= 0 {
		opt.Duration = 10 * time.Second
	}
	if opt.Writes == nil {
		opt.Writes = []float64{10, 1}
	}
	if opt.Progress == nil {
		opt.Progress = func(string, ...any) {}
	}
	admin, err := gorm.Open(postgres.Open(opt.DSN), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		return nil, fmt.Errorf("workload: open: %w", err)
	}
	defer func() {
		if sqlDB, err := admin.DB(); err == nil {
			_ = sqlDB.Close()
		}
	}()
	if err := workloadSeed(admin); err != nil {
		return nil, fmt.Errorf("workload: seed: %w", err)
	}
	rep := &WorkloadReport{Options: opt, LoadStart: loadAverage(), Compared: opt.Requests > 0 && opt.Clients == 1}
	if err := admin.Raw("SHOW server_version").Scan(&rep.Server).Error; err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	for _, w := range opt.Writes {
		rate := WorkloadRate{WritePct: w}
		for _, c := range configurations {
			if err := workloadRestore(admin); err != nil {
				return nil, fmt.Errorf("workload: restore: %w", err)
			}
			run, err := workloadRun(ctx, opt, w, c)
			if err != nil {
				return nil, fmt.Errorf("workload: %g%% writes, %s: %w", w, c.name, err)
			}
			run.Ideal = simulateIdeal(opt.Seed, w, run.Requests)
			opt.Progress("%g%% writes, %s: %d requests in %v, %.0f req/s, %.3f queries/read (ideal %.3f)",
				w, c.name, run.Requests, run.Elapsed.Round(time.Millisecond), run.RPS(), run.QueriesPerRead(), run.Ideal.QueriesPerRead())
			rate.Runs = append(rate.Runs, run)
		}
		if rep.Compared {
			for _, r := range rate.Runs[1:] {
				if r.Checksum != rate.Runs[0].Checksum {
					return nil, fmt.Errorf("workload: %g%% writes: %s read other results than %s (checksum %x, %x)", w, r.Config, rate.Runs[0].Config, r.Checksum, rate.Runs[0].Checksum)
				}
			}
		}
		rep.Rates = append(rep.Rates, rate)
	}
	rep.LoadEnd = loadAverage()
	return rep, nil
}

// loadAverage returns the 1, 5 and 15-minute load averages of Linux, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// workloadSeed creates users and posts with the seeded rows, and copies of
// them (users_seed, posts_seed) that workloadRestore copies back.
func workloadSeed(db *gorm.DB) error {
	if err := db.Migrator().DropTable(&wPost{}, &wUser{}, "users_seed", "posts_seed"); err != nil {
		return err
	}
	if err := db.AutoMigrate(&wUser{}, &wPost{}); err != nil {
		return err
	}
	users, posts := workloadData()
	if err := db.CreateInBatches(users, 1000).Error; err != nil {
		return err
	}
	if err := db.Omit("User").CreateInBatches(posts, 1000).Error; err != nil {
		return err
	}
	for _, q := range []string{"CREATE TABLE users_seed AS TABLE users", "CREATE TABLE posts_seed AS TABLE posts"} {
		if err := db.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// workloadRestore puts users and posts back as seeded, the posts' id
// sequence included, and analyzes them, so that every run starts alike.
func workloadRestore(db *gorm.DB) error {
	for _, q := range []string{
		"TRUNCATE posts, users",
		"INSERT INTO users SELECT * FROM users_seed",
		"INSERT INTO posts SELECT * FROM posts_seed",
		"SELECT setval(pg_get_serial_sequence('posts', 'id'), (SELECT max(id) FROM posts))",
		"SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))",
		"VACUUM ANALYZE users, posts",
	} {
		if err := db.Exec(q).Error; err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// workloadRun runs the sequence against one configuration: a new pool (and
// a new plugin with an empty in-process store), opt.Clients clients taking
// the sequence's requests in turn until the time is up.
func workloadRun(ctx context.Context, opt WorkloadOptions, writePct float64, c configuration) (WorkloadRun, error) {
	pcfg, err := pgx.ParseConfig(opt.DSN)
	if err != nil {
		return WorkloadRun{}, err
	}
	counter := new(queryCounter)
	pcfg.Tracer = counter
	sqlDB := stdlib.OpenDB(*pcfg)
	defer sqlDB.Close()
	sqlDB.SetMaxIdleConns(2*opt.Clients + 4) // no reconnecting under load
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		return WorkloadRun{}, err
	}
	var p *plugin.Plugin
	if c.cfg != nil {
		p = plugin.New(*c.cfg)
		defer p.Close()
		if err := db.Use(p); err != nil {
			return WorkloadRun{}, err
		}
	}

	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		run      = WorkloadRun{Config: c.name}
	)
	start := time.Now()
	deadline := start.Add(opt.Duration)
	for range opt.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sum uint64
			var reads [numOps]int64
			defer func() {
				mu.Lock()
				run.Checksum += sum
				for o, n := range reads {
					run.ReadsBy[o] += n
				}
				mu.Unlock()
			}()
			for {
				if opt.Requests <= 0 && !time.Now().Before(deadline) {
					return
				}
				i := int(next.Add(1) - 1)
				if opt.Requests > 0 && i >= opt.Requests {
					return
				}
				req := requestAt(opt.Seed, writePct, i)
				h, err := doRequest(ctx, db, req, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("request %d (%s %d): %w", i, opNames[req.op], req.id, err)
					}
					mu.Unlock()
					return
				}
				if req.op.isRead() {
					sum += h
					reads[req.op]++
				}
			}
		}()
	}
	wg.Wait()
	run.Elapsed = time.Since(start)
	if firstErr != nil {
		return run, firstErr
	}
	run.Requests = int(next.Load())
	if opt.Requests > 0 {
		run.Requests = opt.Requests
	}
	for o := range numOps {
		run.Queries[o] = counter.n[o].Load()
		run.Reads += int(run.ReadsBy[o])
	}
	if p != nil {
		s := p.Stats()
		run.Stats = &s
	} else if want := int64(run.Reads) + run.ReadsBy[opPost]; total(run.Queries[:]) != want {
		// Plain GORM sends one query a read, two for a Preload: the
		// tracer must have seen exactly that.
		return run, fmt.Errorf("plain GORM: the tracer counted %v queries for %d reads, want %d", run.Queries, run.Reads, want)
	}
	return run, nil
}

// doRequest runs req, and for a read returns a hash of its index and rows.
func doRequest(ctx context.Context, db *gorm.DB, req request, i int) (uint64, error) {
	if !req.op.isRead() {
		db = db.WithContext(ctx)
		switch req.op {
		case opVisit:
			return 0, db.Model(&wUser{ID: uint(req.id)}).UpdateColumn("visits", gorm.Expr("visits + 1")).Error
		case opNewPost:
			return 0, db.Create(&wPost{UserID: uint(req.id), Title: fmt.Sprintf("new post %d", i), Body: "a post of the workload benchmark"}).Error
		default: // opTitle; a title no post had before, so the write always changes the row
			return 0, db.Model(&wPost{ID: uint(req.id)}).Update("title", fmt.Sprintf("title %d", i)).Error
		}
	}
	db = db.WithContext(context.WithValue(ctx, readKey{}, req.op))
	h := newRowHash(req, i)
	switch req.op {
	case opUser:
		var u wUser
		if err := db.First(&u, req.id).Error; err != nil {
			return 0, err
		}
		h.user(u)
	case opLatest:
		var ps []wPost
		if err := db.Where("user_id = ?", req.id).Order("id desc").Limit(10).Find(&ps).Error; err != nil {
			return 0, err
		}
		for _, p := range ps {
			h.post(p)
		}
	case opPost:
		var p wPost
		if err := db.Preload("User").First(&p, req.id).Error; err != nil {
			return 0, err
		}
		h.post(p)
		h.user(p.User)
	case opCount:
		var n int64
		if err := db.Model(&wPost{}).Where("user_id = ?", req.id).Count(&n).Error; err != nil {
			return 0, err
		}
		h.int(n)
	case opTop:
		// id breaks the ties of visits, so that every configuration reads
		// the same rows.
		var us []wUser
		if err := db.Order("visits desc, id").Limit(10).Find(&us).Error; err != nil {
			return 0, err
		}
		for _, u := range us {
			h.user(u)
		}
	}
	return h.d.Sum64(), nil
}

// rowHash hashes a read's rows, with its index.
type rowHash struct {
	d   *xxhash.Digest
	buf [8]byte
}

func newRowHash(req request, i int) *rowHash {
	h := &rowHash{d: xxhash.New()}
	h.int(int64(i))
	h.int(int64(req.op))
	return h
}

func (h *rowHash) int(v int64) {
	binary.LittleEndian.PutUint64(h.buf[:], uint64(v))
	_, _ = h.d.Write(h.buf[:])
}

func (h *rowHash) str(s string) {
	h.int(int64(len(s)))
	_, _ = h.d.WriteString(s)
}

func (h *rowHash) user(u wUser) {
	h.int(int64(u.ID))
	h.str(u.Name)
	h.str(u.Email)
	h.int(u.Visits)
}

func (h *rowHash) post(p wPost) {
	h.int(int64(p.ID))
	h.int(int64(p.UserID))
	h.str(p.Title)
	h.str(p.Body)
}
