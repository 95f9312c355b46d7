package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/storetest"
	"github.com/redis/go-redis/v9"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"Single", func(t *testing.T) redis.UniversalClient { return singleClient(t, nil) }},
		{"SingleContextTimeout", func(t *testing.T) redis.UniversalClient {
			return singleClient(t, &redis.Options{ContextTimeoutEnabled: true})
		}},
		{"Cluster", func(t *testing.T) redis.UniversalClient { return clusterClient(t, nil) }},
		{"Sentinel", func(t *testing.T) redis.UniversalClient { return sentinelClient(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := tc.client(t)
			guard(t, rdb)
			storetest.Run(t, func(t *testing.T) store.Store {
				return newTestStore(t, rdb, Config{Timeout: time.Second})
			})
		})
	}
}

func TestModeDetection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		rdb     redis.UniversalClient
		oneNode bool
		direct  bool
	}{
		{"Client", redis.NewClient(&redis.Options{}), true, false},
		{"ClientContextTimeout", redis.NewClient(&redis.Options{ContextTimeoutEnabled: true}), true, true},
		{"Failover", redis.NewUniversalClient(&redis.UniversalOptions{MasterName: "m", Addrs: []string{"127.0.0.1:1"}}), true, false},
		{"ClusterIgnoresDeadlines", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), false, false},
		{"Cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.rdb.Close()
			s, err := New(tc.rdb, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if s.oneNode != tc.oneNode || s.direct != tc.direct {
				t.Fatalf("oneNode %v direct %v; want %v %v", s.oneNode, s.direct, tc.oneNode, tc.direct)
			}
			if s.Client() != tc.rdb {
				t.Fatal("Client() is not the client given to New")
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for none
	}{
		{"Zero", Config{}, ""},
		{"NegativeTimeout", Config{Timeout: -1}, "Timeout"},
		{"NegativeBreakerFailures", Config{BreakerFailures: -1}, "BreakerFailures"},
		{"NegativeCooldown", Config{BreakerCooldown: -time.Second}, "BreakerCooldown"},
		{"NegativeMaxValue", Config{MaxValueBytes: -1}, "MaxValueBytes"},
		{"HugeMaxValue", Config{MaxValueBytes: 1 << 30}, "MaxValueBytes"},
		{"NegativeTTL", Config{DefaultTTL: -time.Second}, "DefaultTTL"},
		{"BracesInPrefix", Config{Prefix: "{app}:"}, "Prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(rdb, tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.keys.entry("k") != "gc:e:k" || s.timeout != DefaultTimeout || s.maxValue != DefaultMaxValueBytes ||
					s.ttl != DefaultTTL || s.br.Failures() != DefaultBreakerFailures || s.br.Cooldown() != DefaultBreakerCooldown {
					t.Fatalf("zero Config did not give the defaults: %+v", s)
				}
				return
			}
			if !errors.Is(err, store.ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "redisstore: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v; want an error about %s", tc.cfg, err, tc.want)
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("New(nil) accepted")
	}
	for _, opt := range []redis.ClusterOptions{{ReadOnly: true}, {RouteByLatency: true}, {RouteRandomly: true}} {
		opt.Addrs = []string{"127.0.0.1:1"}
		c := redis.NewClusterClient(&opt)
		if _, err := New(c, Config{}); err == nil || !strings.Contains(err.Error(), "replicas") {
			t.Errorf("cluster client reading from replicas (%+v): New = %v", opt, err)
		}
		c.Close()
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:2"}})
	defer ring.Close()
	if _, err := New(ring, Config{}); err == nil || !strings.HasPrefix(err.Error(), "redisstore: ") || !strings.Contains(err.Error(), "Ring") {
		t.Errorf("New(*redis.Ring) = %v; want an error about the ring", err)
	}
}

// TestRoundTripsSingle counts requests on the wire (a hook), scripts run by
// the server (INFO commandstats of a private server) and the store's own
// count.
func TestRoundTripsSingle(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	admin := srv.admin()
	hook := &countHook{}
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer rdb.Close()
	rdb.AddHook(hook)
	guard(t, rdb)
	s, err := New(rdb, Config{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("x"), 1024)
	tags := []string{"a", "b"}
	v := make([]uint64, 2)
	// Warm up: connect, load both scripts.
	if err := s.Set(bg, "k", val, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(bg, "k", tags, v); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Versions(bg, []string{"users"}, v[:1]); err != nil {
		t.Fatal(err)
	}
	var lease uint64

	for _, tc := range []struct {
		name     string
		op       func() error
		requests int64            // requests on the wire
		calls    map[string]int64 // commands the server runs (top level and inside scripts)
	}{
		{"GetHit", func() error {
			b, err := s.Get(bg, "k", tags, v)
			if err == nil && !bytes.Equal(b, val) {
				err = errors.New("wrong value")
			}
			return err
		}, 1, map[string]int64{"mget": 1}},
		{"GetMiss", func() error { _, err := s.Get(bg, "absent", tags, v); return err }, 1, map[string]int64{"mget": 1}},
		{"Versions", func() error { return s.Versions(bg, tags, v) }, 1, map[string]int64{"mget": 1}},
		{"Bump3", func() error { _, err := s.Bump(bg, []string{"a", "b", "c"}, 0); return err }, 1, map[string]int64{"evalsha": 1}},
		{"Bump3Hold", func() error { _, err := s.Bump(bg, []string{"a", "b", "c"}, time.Minute); return err }, 1, map[string]int64{"evalsha": 1}},
		// A held tag reads 0 after a second round trip, a script that asks
		// the server's clock.
		{"GetHeld", func() error {
			b, err := s.Get(bg, "k", []string{"a", "users"}, v)
			if err == nil && (b == nil || v[0] != 0 || v[1] == 0) {
				err = errors.New("held tag not read as 0")
			}
			return err
		}, 2, map[string]int64{"mget": 1, "evalsha": 1, "time": 1}},
		{"Release3", func() error { return s.Release(bg, []string{"a", "b", "c"}, lease) }, 1, map[string]int64{"evalsha": 1}},
		// A tag never seen gets its version from a script, once.
		{"GetNewTag", func() error { _, err := s.Get(bg, "k", []string{"a", "orders"}, v); return err }, 2, map[string]int64{"mget": 1, "evalsha": 1}},
		{"GetNewTagAgain", func() error { _, err := s.Get(bg, "k", []string{"a", "orders"}, v); return err }, 1, map[string]int64{"mget": 1}},
		{"Set", func() error { return s.Set(bg, "k", val, time.Minute) }, 1, map[string]int64{"set": 1}},
		{"Delete3", func() error { return s.Delete(bg, "d1", "d2", "d3") }, 1, map[string]int64{"del": 1}},
	} {
		if tc.name == "Bump3Hold" {
			// keep the lease for Release3
			tc.op = func() error {
				var err error
				lease, err = s.Bump(bg, []string{"a", "b", "c"}, time.Minute)
				return err
			}
		}
		before, stats := commandCalls(t, admin), s.Stats()
		reqs := hook.requests()
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after := commandCalls(t, admin)
		after["info"]-- // ours
		if got := hook.requests() - reqs; got != tc.requests {
			t.Errorf("%s: %d requests on the wire, want %d", tc.name, got, tc.requests)
		}
		if got := s.Stats().RoundTrips - stats.RoundTrips; got != uint64(tc.requests) {
			t.Errorf("%s: Stats.RoundTrips +%d, want %d", tc.name, got, tc.requests)
		}
		for name, n := range tc.calls {
			if got := after[name] - before[name]; got != n {
				t.Errorf("%s: %d %s, want %d", tc.name, got, name, n)
			}
		}
		for _, c := range []string{"eval", "keys", "scan", "flushall"} {
			if after[c] != before[c] {
				t.Errorf("%s: %s called", tc.name, c)
			}
		}
		t.Logf("%s: %d request(s)", tc.name, hook.requests()-reqs)
	}

	// A server that lost its scripts (a restart): EVALSHA, then EVAL, once.
	if err := admin.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	reqs := hook.requests()
	if _, err := s.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	if got := hook.requests() - reqs; got != 2 {
		t.Errorf("Bump after SCRIPT FLUSH: %d requests, want 2 (EVALSHA, EVAL)", got)
	}
	reqs = hook.requests()
	if _, err := s.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	if got := hook.requests() - reqs; got != 1 {
		t.Errorf("Bump after reload: %d requests, want 1", got)
	}
}

// TestRoundTripsCluster checks that a Get and a Bump are one pipeline of
// single-key commands on a cluster client, split into at most one request
// per node.
func TestRoundTripsCluster(t *testing.T) {
	t.Parallel()
	rdb := clusterClient(t, nil)
	top := &countHook{} // the cluster client: one call per Get or Bump
	nodes := &countHook{}
	nodes.record.Store(true)
	rdb.AddHook(top)
	rdb.OnNewNode(func(c *redis.Client) { c.AddHook(nodes) })
	guard(t, rdb)
	s := newTestStore(t, rdb, Config{Timeout: time.Second})
	ks := s.keys

	tags := []string{"users", "orders", "a", "b", "c", "t"}
	slots := map[int]bool{slot(ks.entry("k")): true}
	for _, tag := range tags {
		slots[slot(ks.tag(tag).version)] = true
	}
	v := make([]uint64, len(tags))
	if err := s.Set(bg, "k", []byte("value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // warm up: scripts on every node, cluster state
		if _, err := s.Get(bg, "k", tags, v); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bump(bg, tags, 0); err != nil {
			t.Fatal(err)
		}
	}
	var masters atomic.Int64
	if err := rdb.ForEachMaster(bg, func(context.Context, *redis.Client) error { masters.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Get", func() error {
			b, err := s.Get(bg, "k", tags, v)
			if err == nil && string(b) != "value" {
				err = errors.New("wrong value " + string(b))
			}
			return err
		}},
		{"Versions", func() error { return s.Versions(bg, tags, v) }},
		{"Bump", func() error { _, err := s.Bump(bg, tags, 0); return err }},
		{"BumpHold", func() error { _, err := s.Bump(bg, tags, time.Second); return err }},
		{"Delete", func() error { return s.Delete(bg, "d1", "d2", "d3", "k") }},
	} {
		var topBefore, nodesBefore int64
		var rtBefore uint64
		for attempt := 0; ; attempt++ {
			topBefore, rtBefore = top.requests(), s.Stats().RoundTrips
			nodesBefore = nodes.pipeline.Load() + nodes.process.Load()
			nodes.mu.Lock()
			nodes.cmds = nil
			nodes.mu.Unlock()
			checks := s.Stats().MasterChecks
			if err := tc.op(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			// A new connection (the pool grows or replaces one on a loaded
			// machine) makes the next call check the masters first
			// (master.go): measure the steady state again.
			if s.Stats().MasterChecks == checks || attempt == 3 {
				break
			}
			t.Logf("%s: a master check ran (a new connection); measuring again", tc.name)
		}
		if got := top.requests() - topBefore; got != 1 {
			t.Errorf("%s: %d calls on the cluster client, want 1 pipeline", tc.name, got)
		}
		if got := s.Stats().RoundTrips - rtBefore; got != 1 {
			t.Errorf("%s: Stats.RoundTrips +%d, want 1", tc.name, got)
		}
		perNode := nodes.pipeline.Load() + nodes.process.Load() - nodesBefore
		if perNode < 1 || perNode > masters.Load() {
			t.Errorf("%s: %d node requests, want 1..%d (one per master at most, sent in parallel)", tc.name, perNode, masters.Load())
		}
		nodes.mu.Lock()
		sent := nodes.cmds
		nodes.cmds = nil
		nodes.mu.Unlock()
		for _, args := range sent {
			name := strings.ToLower(fmt.Sprint(args[0]))
			switch name {
			case "evalsha", "eval":
				// A script touches one tag: its keys share a slot.
				n, _ := strconv.Atoi(fmt.Sprint(args[2]))
				if n != 3 || len(args) < 3+n {
					t.Errorf("%s: a script with %d keys in cluster mode: %v", tc.name, n, args)
					continue
				}
				for _, k := range args[4 : 3+n] {
					if slot(fmt.Sprint(k)) != slot(fmt.Sprint(args[3])) {
						t.Errorf("%s: a cross-slot script: %v", tc.name, args)
					}
				}
			case "get", "del":
				if len(args) != 2 {
					t.Errorf("%s: a multi-key %s in cluster mode: %v", tc.name, name, args)
				}
			default:
				t.Errorf("%s: unexpected command %v", tc.name, args)
			}
		}
		t.Logf("%s: 1 pipeline, %d node request(s) in parallel over %d slots", tc.name, perNode, len(slots))
	}
}

// TestVersionsSurviveLoss: Redis losing its data (FLUSHALL on a private
// server, or one version key evicted) never brings an old version back.
func TestVersionsSurviveLoss(t *testing.T) {
	t.Parallel()
	t.Run("Flushall", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
		defer rdb.Close()
		s, err := New(rdb, Config{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		tags := []string{"users", "orders"}
		stamp := make([]uint64, 2)
		if err := s.Versions(bg, tags, stamp); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bump(bg, tags[:1], 0); err != nil {
			t.Fatal(err)
		}
		seen := make([]uint64, 2)
		_ = s.Versions(bg, tags, seen)
		if err := s.Set(bg, "k", []byte("old rows"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := srv.admin().FlushAll(bg).Err(); err != nil {
			t.Fatal(err)
		}
		v := make([]uint64, 2)
		b, err := s.Get(bg, "k", tags, v)
		if err != nil || b != nil {
			t.Fatalf("after FLUSHALL Get = %q, %v", b, err)
		}
		for i := range tags {
			if v[i] == 0 || v[i] == stamp[i] || v[i] == seen[i] {
				t.Errorf("%s: version %d after FLUSHALL; before: %d, %d", tags[i], v[i], stamp[i], seen[i])
			}
		}
	})

	t.Run("VersionKeyEvicted", func(t *testing.T) {
		t.Parallel()
		rdb := singleClient(t, nil)
		s := newTestStore(t, rdb, Config{Timeout: time.Second})
		tags := []string{"users", "orders"}
		stamp := make([]uint64, 2)
		if err := s.Versions(bg, tags, stamp); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(bg, "k", []byte("rows"), time.Hour); err != nil {
			t.Fatal(err)
		}
		// Eviction of one version key (allkeys-lru): the entry survives, its
		// stamp must no longer match.
		if err := rdb.Del(bg, s.keys.tag("users").version).Err(); err != nil {
			t.Fatal(err)
		}
		v := make([]uint64, 2)
		b, err := s.Get(bg, "k", tags, v)
		if err != nil || string(b) != "rows" {
			t.Fatalf("Get = %q, %v", b, err)
		}
		if v[0] == 0 || v[0] == stamp[0] {
			t.Errorf("users: version %d after its key was lost, stamp %d", v[0], stamp[0])
		}
		if v[1] != stamp[1] {
			t.Errorf("orders changed: %d → %d", stamp[1], v[1])
		}
	})

	t.Run("BumpOfMissingVersion", func(t *testing.T) {
		t.Parallel()
		rdb := singleClient(t, nil)
		s := newTestStore(t, rdb, Config{Timeout: time.Second})
		before := make([]uint64, 1)
		if err := s.Versions(bg, []string{"t"}, before); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Del(bg, s.keys.tag("t").version).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bump(bg, []string{"t"}, 0); err != nil {
			t.Fatal(err)
		}
		after := make([]uint64, 1)
		if err := s.Versions(bg, []string{"t"}, after); err != nil {
			t.Fatal(err)
		}
		if after[0] == 0 || after[0] >= 1<<63 || after[0] == before[0] || after[0] == before[0]+1 {
			t.Fatalf("bump of a lost version gave %d (before the loss %d); want a fresh random version", after[0], before[0])
		}
	})

	t.Run("Overflow", func(t *testing.T) {
		t.Parallel()
		rdb := singleClient(t, nil)
		s := newTestStore(t, rdb, Config{Timeout: time.Second})
		if err := rdb.Set(bg, s.keys.tag("t").version, int64(1<<63-1), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bump(bg, []string{"t"}, 0); err != nil {
			t.Fatal(err)
		}
		v := make([]uint64, 1)
		if err := s.Versions(bg, []string{"t"}, v); err != nil {
			t.Fatal(err)
		}
		if v[0] == 0 || v[0] >= 1<<63 || v[0] == 1<<63-1 {
			t.Fatalf("bump at the top of the range gave %d", v[0])
		}
	})
}

// TestHoldsAcrossInstances: two stores on one prefix (two application
// instances) see each other's holds and bumps; leases are unique; dead
// holds leave nothing behind.
func TestHoldsAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"Single", func(t *testing.T) redis.UniversalClient { return singleClient(t, nil) }},
		{"Cluster", func(t *testing.T) redis.UniversalClient { return clusterClient(t, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := tc.client(t)
			s1 := newTestStore(t, rdb, Config{Timeout: time.Second})
			s2, err := New(rdb, Config{Prefix: s1.keys.entryPrefix[:len(s1.keys.entryPrefix)-2], Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			tags := []string{"users", "orders", "a"}
			v := make([]uint64, 3)
			if err := s2.Versions(bg, tags, v); err != nil {
				t.Fatal(err)
			}
			before := append([]uint64(nil), v...)

			l1, err := s1.Bump(bg, tags[:2], time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := s2.Bump(bg, tags[1:], 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if l1 == 0 || l2 == 0 || l1 == l2 {
				t.Fatalf("leases %d, %d", l1, l2)
			}
			_ = s2.Versions(bg, tags, v)
			if v[0] != 0 || v[1] != 0 || v[2] != 0 {
				t.Fatalf("held tags read %v through the other instance", v)
			}
			if err := s2.Release(bg, tags[:2], l1); err != nil { // anyone may release a lease
				t.Fatal(err)
			}
			_ = s1.Versions(bg, tags, v)
			if v[0] == 0 || v[0] == before[0] {
				t.Errorf("users after release: %d (before %d)", v[0], before[0])
			}
			if v[1] != 0 || v[2] != 0 {
				t.Errorf("tags still held by the second lease read %v", v[1:])
			}
			// The second lease dies without a release: its hold expires,
			// and the next write drops it.
			time.Sleep(250 * time.Millisecond)
			_ = s1.Versions(bg, tags, v)
			if v[1] == 0 || v[2] == 0 || v[2] == before[2] {
				t.Errorf("after the hold expired: %v (before %v)", v, before)
			}
			if _, err := s1.Bump(bg, tags, 0); err != nil {
				t.Fatal(err)
			}
			for _, tag := range tags {
				k := s1.keys.tag(tag)
				for _, key := range []string{k.heldUntil, k.leases} {
					if n, err := rdb.Exists(bg, key).Result(); err != nil || n != 0 {
						t.Errorf("%s: %s still there (%v) after its holds ended", tag, key, err)
					}
				}
			}
			seen := map[uint64]bool{}
			for i := 0; i < 200; i++ {
				id, err := s1.Bump(bg, []string{"x"}, time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				if id == 0 || seen[id] {
					t.Fatalf("lease %d repeated or zero", id)
				}
				seen[id] = true
			}
		})
	}
}

func TestTooLargeAndTTL(t *testing.T) {
	t.Parallel()
	rdb := singleClient(t, nil)
	s := newTestStore(t, rdb, Config{MaxValueBytes: 1000, DefaultTTL: time.Hour})
	err := s.Set(bg, "k", make([]byte, 1001), time.Minute)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Set of 1001 bytes with MaxValueBytes 1000: %v", err)
	}
	if s.Stats().RoundTrips != 0 {
		t.Fatal("a value too large reached Redis")
	}
	if err := s.Set(bg, "k", make([]byte, 1000), 0); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(bg, s.keys.entry("k")).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("entry Set with ttl 0 has TTL %v (%v); want DefaultTTL", ttl, err)
	}
	v := make([]uint64, 1)
	if _, err := s.Get(bg, "k", []string{"t"}, v); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(bg, s.keys.tag("t").version).Result(); err != nil || ttl != -1 {
		t.Fatalf("version key TTL %v (%v); want none", ttl, err)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s, err := New(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, 1)
	for name, err := range map[string]error{
		"Set":      s.Set(bg, "k", nil, 0),
		"Delete":   s.Delete(bg, "k"),
		"Versions": s.Versions(bg, []string{"t"}, v),
		"Release":  s.Release(bg, []string{"t"}, 1),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if _, err := s.Get(bg, "k", []string{"t"}, v); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Bump(bg, []string{"t"}, 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Bump after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The client is the caller's: still usable (it answers, with an error
	// about the address, not about being closed).
	if err := rdb.Ping(bg).Err(); errors.Is(err, redis.ErrClosed) {
		t.Fatal("Close closed the caller's client")
	}
}

func TestCallerContext(t *testing.T) {
	t.Parallel()
	rdb := singleClient(t, nil)
	s := newTestStore(t, rdb, Config{BreakerFailures: 1})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := s.Get(ctx, "k", []string{"t"}, make([]uint64, 1))
	if isUnavailable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v; want context.Canceled, not ErrUnavailable (the store did not fail)", err)
	}
	if st := s.Stats(); st.BreakerOpen || st.Canceled != 1 || st.Errors != 0 {
		t.Fatalf("a caller's cancellation counted as a failure: %+v", st)
	}
}

// TestDeadlines: against a hung Redis, a deadline the cache in front set
// itself (store.WithTimeout), even one as short as the store's own Timeout,
// is Redis failing: ErrUnavailable, counted, and the breaker opens. The
// application's own deadline is not.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		failed bool
	}{
		{"cache's deadline", func() (context.Context, context.CancelFunc) { return store.WithTimeout(bg, 50*time.Millisecond) }, true},
		{"application's deadline", func() (context.Context, context.CancelFunc) { return context.WithTimeout(bg, 50*time.Millisecond) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			defer rdb.Close()
			s, err := New(rdb, Config{Timeout: 50 * time.Millisecond, BreakerFailures: 2})
			if err != nil {
				t.Fatal(err)
			}
			// Connect and store the entry without the store's 50ms (a
			// loaded machine may take longer).
			if err := rdb.Set(bg, s.keys.entry("k"), "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			srv.signal(syscall.SIGSTOP)
			defer srv.signal(syscall.SIGCONT)
			for range 2 {
				ctx, cancel := tc.ctx()
				_, err := s.Get(ctx, "k", nil, nil)
				cancel()
				if isUnavailable(err) != tc.failed {
					t.Fatalf("Get: %v; want ErrUnavailable: %v", err, tc.failed)
				}
			}
			st := s.Stats()
			if tc.failed && (!st.BreakerOpen || st.Timeouts != 2 || st.Errors != 2) {
				t.Fatalf("two timeouts of the cache's deadline: %+v; want the breaker open", st)
			}
			if !tc.failed && (st.BreakerOpen || st.Errors != 0 || st.Canceled != 2) {
				t.Fatalf("two application deadlines: %+v; want them counted as Canceled only", st)
			}
		})
	}
}

// TestNoKeysOrScan: no source file of the store sends KEYS or SCAN (the
// guard hook checks the same at run time in every test).
func TestNoKeysOrScan(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := regexp.MustCompile(`(?i)\.(Keys|Scan|ScanType|SScan|HScan|ZScan)\(|ScanIterator|call\('(keys|scan)'|"(keys|scan)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := forbidden.Find(src); m != nil {
			t.Errorf("%s: %s", f, m)
		}
	}
}

// WaitReplicas: on Sentinel (a master with one replica) a bump returns only
// once the replica has it; asking for more replicas than exist fails the
// bump with ErrUnavailable.
func TestWaitReplicas(t *testing.T) {
	rdb := sentinelClient(t)
	ctx := context.Background()
	st := newTestStore(t, rdb, Config{WaitReplicas: 1, Timeout: time.Second})
	// The replica's address, from the master's INFO.
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	var replica string
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "slave0:") {
			var ip, port string
			for _, kv := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "slave0:")), ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "ip":
					ip = v
				case "port":
					port = v
				}
			}
			replica = ip + ":" + port
		}
	}
	if replica == "" {
		t.Fatalf("the Sentinel master has no replica: %s", info)
	}
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	for i := 0; i < 20; i++ {
		if _, err := st.Bump(ctx, []string{"w"}, 0); err != nil {
			t.Fatal(err)
		}
		onMaster, err := rdb.Get(ctx, st.keys.tag("w").version).Result()
		if err != nil {
			t.Fatal(err)
		}
		onReplica, err := rc.Get(ctx, st.keys.tag("w").version).Result()
		if err != nil || onReplica != onMaster {
			t.Fatalf("bump %d: the replica has %q (%v), the master %q: Bump returned before the replica had it", i, onReplica, err, onMaster)
		}
	}
	// The bump fails, but only after the master has it.
	two := newTestStore(t, rdb, Config{WaitReplicas: 2, Timeout: 200 * time.Millisecond})
	if _, err := two.Bump(ctx, []string{"w"}, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("WaitReplicas 2 with one replica: %v, want ErrUnavailable", err)
	}
	if _, err := New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: clusterAddrs}), Config{WaitReplicas: 1}); err == nil {
		t.Fatal("WaitReplicas on a cluster client must be refused")
	}
}

// Row tags (their name holds 0x1f) get versions that expire rowTagTTL after
// they were set; other tags keep theirs. Hold keys expire with their last
// hold.
func TestRowTagVersionsExpire(t *testing.T) {
	t.Parallel()
	if !strings.Contains(readScript.src, strconv.Itoa(int(rowTagTTL/time.Millisecond))) ||
		!strings.Contains(writeScript.src, strconv.Itoa(int(rowTagTTL/time.Millisecond))) {
		t.Fatal("the scripts' row-tag TTL is not rowTagTTL")
	}
	rdb := singleClient(t, nil)
	s := newTestStore(t, rdb, Config{Timeout: time.Second})
	ctx := context.Background()
	row, table := "users\x1fid=i5", "users"
	v := make([]uint64, 2)
	if err := s.Versions(ctx, []string{row, table}, v); err != nil {
		t.Fatal(err)
	}
	ttl := func(k string) time.Duration {
		d, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	check := func(when string) {
		t.Helper()
		if d := ttl(s.VersionKey(row)); d <= rowTagTTL-time.Minute || d > rowTagTTL {
			t.Errorf("%s: row tag version TTL %v, want about %v", when, d, rowTagTTL)
		}
		if d := ttl(s.VersionKey(table)); d != -1 {
			t.Errorf("%s: table tag version TTL %v, want none (-1)", when, d)
		}
	}
	check("created")
	id, err := s.Bump(ctx, []string{row, table}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	check("bumped")
	for _, k := range []string{s.keys.tag(row).heldUntil, s.keys.tag(row).leases} {
		if d := ttl(k); d <= 0 || d > time.Minute {
			t.Errorf("hold key %q TTL %v, want within the hold's minute", k, d)
		}
	}
	if err := s.Release(ctx, []string{row, table}, id); err != nil {
		t.Fatal(err)
	}
	check("released")
}
