package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/store"
	"github.com/redis/go-redis/v9"
)

// The servers scripts/services starts; environment variables override them.
var (
	singleAddr    = env("GORMCACHE_REDIS", "127.0.0.1:6379")
	clusterAddrs  = strings.Split(env("GORMCACHE_REDIS_CLUSTER", "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005"), ",")
	sentinelAddrs = strings.Split(env("GORMCACHE_REDIS_SENTINEL", "127.0.0.1:26379"), ",")
	sentinelName  = env("GORMCACHE_REDIS_MASTER", "gcmaster")
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var bg = context.Background()

// guardHook records commands no store path may send.
type guardHook struct {
	cluster   bool
	forbidden atomic.Value // string: the first forbidden command
}

func (h *guardHook) check(cmd redis.Cmder) {
	switch name := cmd.Name(); {
	case name == "keys", name == "scan", name == "flushall", name == "flushdb", name == "mget" && h.cluster:
		h.forbidden.CompareAndSwap(nil, fmt.Sprint(cmd.Args()))
	}
}

// slot is the cluster hash slot of key (CRC16/XMODEM of its hash tag).
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func (h *guardHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *guardHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.check(cmd)
		return next(ctx, cmd)
	}
}

func (h *guardHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.check(c)
		}
		return next(ctx, cmds)
	}
}

// guard adds a guardHook to rdb and checks it when the test ends. MGET is
// forbidden on a cluster only.
func guard(t testing.TB, rdb redis.UniversalClient) {
	_, cluster := rdb.(*redis.ClusterClient)
	h := &guardHook{cluster: cluster}
	rdb.AddHook(h)
	t.Cleanup(func() {
		if f := h.forbidden.Load(); f != nil {
			t.Errorf("the store sent a forbidden command: %s", f)
		}
	})
}

// countHook counts what a client sends: each ProcessHook or
// ProcessPipelineHook call is one request on the wire for a node client.
type countHook struct {
	process, pipeline, dial atomic.Int64
	mu                      sync.Mutex
	cmds                    [][]any // args of the commands sent, when record is set
	record                  atomic.Bool
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dial.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.process.Add(1)
		h.keep(cmd)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipeline.Add(1)
		for _, c := range cmds {
			h.keep(c)
		}
		return next(ctx, cmds)
	}
}

func (h *countHook) keep(cmd redis.Cmder) {
	if h.record.Load() {
		h.mu.Lock()
		h.cmds = append(h.cmds, cmd.Args())
		h.mu.Unlock()
	}
}

func (h *countHook) requests() int64 { return h.process.Load() + h.pipeline.Load() }

// cleanOpts says how to reach the server of each shared client (singleClient,
// clusterClient, sentinelClient), for cleanup.
var cleanOpts sync.Map // redis.UniversalClient → redis.UniversalOptions

// cleanup deletes every key under prefix from rdb's server when the test
// ends (testdb.CleanRedis: a SCAN with MATCH on the test's own prefix,
// through a client of its own, which no guard watches).
func cleanup(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	var opt redis.UniversalOptions
	if o, ok := cleanOpts.Load(rdb); ok {
		opt = o.(redis.UniversalOptions)
	} else if c, ok := rdb.(*redis.Client); ok { // a private server
		opt = redis.UniversalOptions{Addrs: []string{c.Options().Addr}, DB: c.Options().DB}
	} else {
		t.Fatalf("cleanup: unknown client %T", rdb)
	}
	testdb.CleanRedis(t, opt, prefix)
}

// Clients of the shared servers. Each skips the test when its server cannot
// be reached, and fails it under CI=true.

func singleClient(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	if opt == nil {
		opt = &redis.Options{}
	}
	opt.Addr = singleAddr
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		testdb.Unavailable(t, "Redis at "+singleAddr, err)
	}
	cleanOpts.Store(rdb, redis.UniversalOptions{Addrs: []string{singleAddr}, DB: opt.DB})
	t.Cleanup(func() { rdb.Close(); cleanOpts.Delete(rdb) })
	return rdb
}

func clusterClient(t testing.TB, opt *redis.ClusterOptions) *redis.ClusterClient {
	t.Helper()
	if err := rediscluster.Use(t); err != nil {
		testdb.Unavailable(t, "Redis Cluster at "+strings.Join(clusterAddrs, ","), err)
	}
	if opt == nil {
		opt = &redis.ClusterOptions{}
	}
	opt.Addrs = clusterAddrs
	rdb := redis.NewClusterClient(opt)
	cleanOpts.Store(redis.UniversalClient(rdb), redis.UniversalOptions{Addrs: clusterAddrs})
	t.Cleanup(func() { rdb.Close(); cleanOpts.Delete(redis.UniversalClient(rdb)) })
	return rdb
}

func sentinelClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	opt := redis.UniversalOptions{MasterName: sentinelName, Addrs: sentinelAddrs}
	rdb := redis.NewUniversalClient(&opt)
	ctx, cancel := context.WithTimeout(bg, 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		testdb.Unavailable(t, "Redis Sentinel at "+strings.Join(sentinelAddrs, ","), err)
	}
	cleanOpts.Store(rdb, opt)
	t.Cleanup(func() { rdb.Close(); cleanOpts.Delete(rdb) })
	return rdb
}

// waitClusterOK waits until every node of the cluster answers and reports
// cluster_state:ok.
func waitClusterOK(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := clusterOK()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func clusterOK() error {
	for _, addr := range clusterAddrs {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		ctx, cancel := context.WithTimeout(bg, time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		cancel()
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster state not ok", addr)
		}
	}
	return nil
}

// newTestStore returns a store with a fresh prefix on rdb, whose keys are
// deleted when the test ends.
func newTestStore(t testing.TB, rdb redis.UniversalClient, cfg Config) *Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = testdb.KeyPrefix("gctest:")
	}
	cleanup(t, rdb, cfg.Prefix)
	s, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// server is a private redis-server on a free loopback port, for tests that
// flush, stop or kill it. It is killed when the test ends.
type server struct {
	t    testing.TB
	port int
	dir  string
	args []string // more arguments of redis-server
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testdb.Unavailable(t, "redis-server", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{t: t, port: port, dir: t.TempDir(), args: args}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start starts the server (again, on the same port) and waits until it answers.
func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "log"))
	cmd.Args = append(cmd.Args, s.args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(bg).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %d did not answer: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the running server.
func (s *server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("server not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill kills the server (even a stopped one) and waits for it to exit.
func (s *server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// admin returns a plain client of the server, for the test's own commands.
func (s *server) admin() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// commandCalls returns cmdstat_<name>:calls from INFO commandstats.
func commandCalls(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(bg, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		calls[name] = n
	}
	return calls
}

// isUnavailable tells whether err wraps store.ErrUnavailable.
func isUnavailable(err error) bool { return err != nil && errors.Is(err, store.ErrUnavailable) }
