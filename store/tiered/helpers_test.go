package tiered

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/redis/go-redis/v9"
)

// redisAddr is the server scripts/services starts; GORMCACHE_REDIS
// overrides it.
var redisAddr = func() string {
	if v := os.Getenv("GORMCACHE_REDIS"); v != "" {
		return v
	}
	return "127.0.0.1:6379"
}()

var bg = context.Background()

// newRedis returns a client of the test server, closed when the test ends.
// opt may set fields; Addr defaults to redisAddr.
func newRedis(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	if opt == nil {
		opt = &redis.Options{}
	}
	if opt.Addr == "" {
		opt.Addr = redisAddr
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		testdb.Unavailable(t, "redis at "+opt.Addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// clusterAddrs are the Redis Cluster nodes scripts/services starts;
// GORMCACHE_REDIS_CLUSTER overrides them.
var clusterAddrs = func() []string {
	if v := os.Getenv("GORMCACHE_REDIS_CLUSTER"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"}
}()

// newCluster returns a client of the test cluster, closed when the test
// ends.
func newCluster(t testing.TB) redis.UniversalClient {
	t.Helper()
	if err := rediscluster.Use(t); err != nil {
		testdb.Unavailable(t, "redis cluster", err)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: clusterAddrs})
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		testdb.Unavailable(t, "redis cluster", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newL2 is the shared level of a test: one memstore that several tiered
// stores share, as instances share a Redis.
func newL2(t testing.TB) *memstore.Store {
	t.Helper()
	l2, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l2.Close() })
	return l2
}

// newTiered returns a tiered store over l2, closed when the test ends, and
// waits until its bus is up.
func newTiered(t testing.TB, l2 store.Store, cfg Config) *Store {
	t.Helper()
	s, err := New(l2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	testsupport.Eventually(t, "bus up", s.vt.live.Load)
	return s
}

// countingStore counts the calls that reach L2.
type countingStore struct {
	store.Store
	gets, versions atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key, tags, versions)
}

func (c *countingStore) Versions(ctx context.Context, tags []string, versions []uint64) error {
	c.versions.Add(1)
	return c.Store.Versions(ctx, tags, versions)
}

func (c *countingStore) calls() int64 { return c.gets.Load() + c.versions.Load() }

// hookBus lets a test watch what a store's subscription hears, after the
// store has handled it.
type hookBus struct {
	Bus
	onTags  func([]string)
	onState func(bool)
}

func (h *hookBus) Subscribe(ctx context.Context, onTags func([]string), onState func(bool)) (func(), error) {
	return h.Bus.Subscribe(ctx,
		func(tags []string) {
			onTags(tags)
			if h.onTags != nil {
				h.onTags(tags)
			}
		},
		func(up bool) {
			onState(up)
			if h.onState != nil {
				h.onState(up)
			}
		})
}

// stateCounter counts a subscription's state changes.
type stateCounter struct{ ups, downs atomic.Int64 }

func (c *stateCounter) hook(up bool) {
	if up {
		c.ups.Add(1)
	} else {
		c.downs.Add(1)
	}
}

// stamp encodes versions as a value, the way the plugin stamps an entry
// with the versions it read before its query; stampOf decodes it.
func stamp(versions []uint64) []byte {
	b := make([]byte, 0, 8*len(versions))
	for _, v := range versions {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func stampOf(b []byte) []uint64 {
	v := make([]uint64, len(b)/8)
	for i := range v {
		v[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return v
}

// served reports whether a value read with versions is a hit by the
// plugin's rule: present, stamped with exactly the current versions, none
// of them 0.
func served(b []byte, versions []uint64) bool {
	return b != nil && !slices.Contains(versions, 0) && slices.Equal(stampOf(b), versions)
}

// pubsubClientIDs lists the ids of the pub/sub connections named name.
func pubsubClientIDs(t testing.TB, admin *redis.Client, name string) []string {
	t.Helper()
	list, err := admin.Do(bg, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		var id, n string
		for _, f := range strings.Fields(line) {
			switch {
			case strings.HasPrefix(f, "id="):
				id = f[3:]
			case strings.HasPrefix(f, "name="):
				n = f[5:]
			}
		}
		if id != "" && n == name {
			ids = append(ids, id)
		}
	}
	return ids
}

// killPubsub kills the pub/sub connections named name and reports how many.
func killPubsub(t testing.TB, admin *redis.Client, name string) int {
	t.Helper()
	ids := pubsubClientIDs(t, admin, name)
	for _, id := range ids {
		if err := admin.Do(bg, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatalf("CLIENT KILL ID %s: %v", id, err)
		}
	}
	return len(ids)
}

// blackhole is a TCP proxy to Redis that can stop forwarding without
// closing anything, as a dead route or a vanished server does.
type blackhole struct {
	ln    net.Listener
	dead  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func newBlackhole(t testing.TB, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// pipe copies src to dst, dropping what it reads while the proxy is dead.
func (p *blackhole) pipe(src, dst net.Conn) {
	defer func() { _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = src.Close()
			}
			return
		}
	}
}

func (p *blackhole) addr() string { return p.ln.Addr().String() }

// percentile returns the q-quantile (0..1) of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// outage tells every subscriber that messages may have been lost, then
// that delivery is reliable again, as a reconnect would (for tests).
func (b *LocalBus) outage() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		s.mu.Lock()
		s.onState(false)
		s.onState(true)
		s.mu.Unlock()
	}
}
