package tiered

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/redis/go-redis/v9"
)

// windowPair is two instances over one L2 and one Redis channel, each with
// its own Redis connections, as two processes would have. b's hook reports
// every bump b has heard of (not the heartbeats).
type windowPair struct {
	a, b  *Store
	heard chan []string
}

func newWindowPair(t testing.TB, client func(testing.TB) redis.UniversalClient) *windowPair {
	t.Helper()
	ch := testdb.RandomName("gctest:tiered:")
	l2 := newL2(t)
	p := &windowPair{heard: make(chan []string, 16)}
	p.a = newTiered(t, l2, Config{Bus: NewRedisBus(client(t), ch)})
	p.b = newTiered(t, l2, Config{Bus: &hookBus{
		Bus: NewRedisBus(client(t), ch),
		onTags: func(tags []string) {
			if len(tags) > 0 {
				p.heard <- tags
			}
		},
	}})
	return p
}

func singleClient(t testing.TB) redis.UniversalClient { return newRedis(t, nil) }

// measure bumps a tag through a n times and returns, sorted, the time from
// the start of each bump until b has dropped its copy of the tag's version:
// the cross-instance window (an upper bound: it includes a's bump in L2).
func (p *windowPair) measure(t testing.TB, n int) []time.Duration {
	t.Helper()
	tags := []string{"users"}
	v := make([]uint64, 1)
	out := make([]time.Duration, 0, n)
	for range n {
		if err := p.b.Versions(bg, tags, v); err != nil {
			t.Fatal(err)
		}
		if !p.b.vt.lookup(tags, make([]uint64, 1)) {
			t.Fatal("b did not keep the version it read")
		}
		old := v[0]
		start := time.Now()
		if _, err := p.a.Bump(bg, tags, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-p.heard:
			out = append(out, time.Since(start))
			if !slices.Equal(got, tags) {
				t.Fatalf("b heard %q, want %q", got, tags)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("b never heard of a's bump")
		}
		if err := p.b.Versions(bg, tags, v); err != nil || v[0] == old || v[0] == 0 {
			t.Fatalf("after the message b reads %d (before the bump %d), %v", v[0], old, err)
		}
	}
	slices.Sort(out)
	return out
}

// TestCrossInstanceWindow measures how long after a bump through one
// instance another instance may still serve from L1 under the old version,
// over Redis pub/sub on loopback. It logs the figures and asserts only a
// generous bound; BenchmarkCrossInstanceWindow reports them as metrics.
func TestCrossInstanceWindow(t *testing.T) {
	// Not parallel: the figures mean more on a quiet machine.
	p := newWindowPair(t, singleClient)
	p.measure(t, 50) // warm up connections
	d := p.measure(t, 1000)
	p50, p99, worst := percentile(d, 0.50), percentile(d, 0.99), d[len(d)-1]
	t.Logf("cross-instance window over %d bumps: p50 %s, p99 %s, max %s", len(d), fmtDur(p50), fmtDur(p99), fmtDur(worst))
	if p99 > time.Second {
		t.Fatalf("p99 window %v; want well under a second", p99)
	}
}

// TestClusterBus runs the bus on Redis Cluster, where each instance's
// subscription may sit on a different node.
func TestClusterBus(t *testing.T) {
	t.Parallel()
	p := newWindowPair(t, newCluster)
	d := p.measure(t, 200)
	t.Logf("cluster window over %d bumps: p50 %s, p99 %s", len(d), fmtDur(percentile(d, 0.5)), fmtDur(percentile(d, 0.99)))
}

// TestHeartbeatQuiet checks that a quiet, healthy subscription answers its
// heartbeat and stays up.
func TestHeartbeatQuiet(t *testing.T) {
	t.Parallel()
	var states stateCounter
	bus := NewRedisBus(newRedis(t, nil), testdb.RandomName("gctest:tiered:"))
	bus.pingEvery, bus.pingTimeout = 20*time.Millisecond, 200*time.Millisecond
	s := newTiered(t, newL2(t), Config{Bus: &hookBus{Bus: bus, onState: states.hook}})
	time.Sleep(400 * time.Millisecond)
	if d := states.downs.Load(); d != 0 || !s.vt.live.Load() {
		t.Fatalf("quiet subscription went down %d times", d)
	}
}

func BenchmarkCrossInstanceWindow(b *testing.B) {
	p := newWindowPair(b, singleClient)
	p.measure(b, 50)
	b.ResetTimer()
	d := p.measure(b, b.N)
	b.StopTimer()
	b.ReportMetric(float64(percentile(d, 0.50))/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(d, 0.99))/1e3, "p99-µs")
	b.ReportMetric(float64(d[len(d)-1])/1e3, "max-µs")
}

// reconnectPair is two instances over one L2 and one channel; a's Redis
// connections carry a unique client name so a test can kill them, and
// a's subscription states are counted.
type reconnectPair struct {
	a, b   *Store
	aL2    *countingStore
	admin  *redis.Client
	name   string
	states stateCounter
}

func newReconnectPair(t *testing.T, aOpt *redis.Options, tune func(*RedisBus)) *reconnectPair {
	t.Helper()
	ch := testdb.RandomName("gctest:tiered:")
	p := &reconnectPair{name: testdb.RandomName("gctest-a-"), admin: newRedis(t, nil)}
	l2 := newL2(t)
	p.aL2 = &countingStore{Store: l2}
	if aOpt == nil {
		aOpt = &redis.Options{}
	}
	aOpt.ClientName = p.name
	abus := NewRedisBus(newRedis(t, aOpt), ch)
	if tune != nil {
		tune(abus)
	}
	p.a = newTiered(t, p.aL2, Config{Bus: &hookBus{Bus: abus, onState: p.states.hook}})
	p.b = newTiered(t, l2, Config{Bus: NewRedisBus(newRedis(t, nil), ch)})
	return p
}

var rcTags = []string{"users", store.GlobalTag}

// warm stores an entry through a, stamped with the current versions, and
// checks that a serves it from L1. It returns the versions.
func (p *reconnectPair) warm(t *testing.T) []uint64 {
	t.Helper()
	v := make([]uint64, len(rcTags))
	if err := p.a.Versions(bg, rcTags, v); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Set(bg, "k", stamp(v), time.Minute); err != nil {
		t.Fatal(err)
	}
	before := p.aL2.calls()
	got := make([]uint64, len(rcTags))
	if b, err := p.a.Get(bg, "k", rcTags, got); err != nil || !served(b, got) || p.aL2.calls() != before {
		t.Fatalf("warm: served %v, err %v, L2 calls %d; want an L1 hit", served(b, got), err, p.aL2.calls()-before)
	}
	return v
}

// readA reads k through a and fails if a returns the users version old.
func (p *reconnectPair) readA(t *testing.T, old uint64, when string) {
	t.Helper()
	v := make([]uint64, len(rcTags))
	b, err := p.a.Get(bg, "k", rcTags, v)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if v[0] == old {
		t.Fatalf("%s: a reads the users version b's bump replaced (entry served: %v)", when, served(b, v))
	}
}

func (p *reconnectPair) kill(t *testing.T) {
	t.Helper()
	if n := killPubsub(t, p.admin, p.name); n != 1 {
		t.Fatalf("killed %d pub/sub connections named %s; want 1", n, p.name)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()

	// The connection is killed while Redis cannot be reached again (a
	// proxy drops everything), b bumps while a is unsubscribed: from the
	// moment a notices, every read goes to L2, until it has subscribed
	// again and after.
	t.Run("BumpWhileDown", func(t *testing.T) {
		t.Parallel()
		newRedis(t, nil) // skip early without Redis
		proxy := newBlackhole(t, redisAddr)
		p := newReconnectPair(t,
			&redis.Options{Addr: proxy.addr(), DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond},
			func(b *RedisBus) { b.subscribeTimeout = 200 * time.Millisecond })
		v := p.warm(t)
		ups := p.states.ups.Load()
		proxy.dead.Store(true)
		p.kill(t)
		testsupport.Eventually(t, "a to notice the kill", func() bool { return p.states.downs.Load() > 0 })
		if _, err := p.b.Bump(bg, rcTags[:1], 0); err != nil {
			t.Fatal(err)
		}
		reads := 0
		for deadline := time.Now().Add(150 * time.Millisecond); time.Now().Before(deadline); reads++ {
			p.readA(t, v[0], "between the kill and the resubscription")
			time.Sleep(100 * time.Microsecond)
		}
		if p.states.ups.Load() != ups {
			t.Fatal("a subscribed again through a dead proxy")
		}
		proxy.dead.Store(false)
		testsupport.Eventually(t, "a to come back", func() bool { return p.states.ups.Load() > ups && p.a.vt.live.Load() })
		p.readA(t, v[0], "after the resubscription")
		t.Logf("%d reads while unsubscribed", reads)
	})

	// b bumps right after the kill, before a can have noticed it: a may
	// serve the old entry until it notices (the FIN's delivery), never
	// after it has subscribed again.
	t.Run("BumpBeforeNotice", func(t *testing.T) {
		t.Parallel()
		p := newReconnectPair(t, nil, nil)
		v := p.warm(t)
		ups := p.states.ups.Load()
		p.kill(t)
		if _, err := p.b.Bump(bg, rcTags[:1], 0); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, "a to subscribe again", func() bool { return p.states.ups.Load() > ups && p.a.vt.live.Load() })
		p.readA(t, v[0], "after the resubscription")
	})

	// No bump at all: a still drops what it learned while it was
	// subscribed, and reads L2 again.
	t.Run("DropsL1State", func(t *testing.T) {
		t.Parallel()
		p := newReconnectPair(t, nil, nil)
		p.warm(t)
		ups := p.states.ups.Load()
		p.kill(t)
		testsupport.Eventually(t, "a to subscribe again", func() bool { return p.states.ups.Load() > ups && p.a.vt.live.Load() })
		before := p.aL2.calls()
		v := make([]uint64, len(rcTags))
		if b, err := p.a.Get(bg, "k", rcTags, v); err != nil || !served(b, v) {
			t.Fatalf("after reconnect: served %v, %v; the entry is still fresh", served(b, v), err)
		}
		if p.aL2.calls() == before {
			t.Fatal("after reconnect a served from L1 without asking L2")
		}
		// And then from L1 again.
		p.warm(t)
	})
}

// TestSilentLoss cuts a's connection without closing it, as a dead route
// does: the heartbeat must notice, and a must then stop serving from L1
// until it has subscribed again.
func TestSilentLoss(t *testing.T) {
	t.Parallel()
	newRedis(t, nil) // skip early without Redis
	proxy := newBlackhole(t, redisAddr)
	const every, timeout = 50 * time.Millisecond, 100 * time.Millisecond
	p := newReconnectPair(t,
		&redis.Options{Addr: proxy.addr(), DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond},
		func(b *RedisBus) {
			b.pingEvery, b.pingTimeout, b.subscribeTimeout = every, timeout, 300*time.Millisecond
		})
	v := p.warm(t)
	ups := p.states.ups.Load()

	proxy.dead.Store(true)
	cut := time.Now()
	if _, err := p.b.Bump(bg, rcTags[:1], 0); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the heartbeat to notice", func() bool { return p.states.downs.Load() > 0 })
	noticed := time.Since(cut)
	t.Logf("silent loss noticed after %v (heartbeat every %v, timeout %v)", noticed, every, timeout)
	if noticed > every+timeout+2*time.Second {
		t.Errorf("silent loss noticed after %v; the heartbeat promises about %v", noticed, every+timeout)
	}
	p.readA(t, v[0], "after the loss was noticed")
	proxy.dead.Store(false)
	testsupport.Eventually(t, "a to subscribe again", func() bool { return p.states.ups.Load() > ups && p.a.vt.live.Load() })
	p.readA(t, v[0], "after the resubscription")
}

// TestStress runs reads, writes, bumps, holds and releases on two
// instances at once, while a's subscription is killed now and then, and
// checks the same-instance guarantee on both (run it with -race).
func TestStress(t *testing.T) {
	t.Parallel()
	p := newReconnectPair(t, nil, nil)
	tags := [][]string{{"users", "*"}, {"orders", "*"}, {"users", "orders", "*"}}
	keys := []string{"a", "b", "c", "d", "e"}
	type instance struct {
		s       *Store
		retired retiredSet // versions this instance's completed bumps replaced
	}
	insts := []*instance{{s: p.a}, {s: p.b}}
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ops atomic.Int64
	errc := make(chan error, 64)
	fail := func(format string, args ...any) {
		select {
		case errc <- fmt.Errorf(format, args...):
		default:
		}
	}
	for _, in := range insts {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for ctx.Err() == nil {
					ops.Add(1)
					tg := tags[r.IntN(len(tags))]
					key := keys[r.IntN(len(keys))] + fmt.Sprint(len(tg))
					switch op := r.IntN(10); {
					case op < 6:
						old := in.retired.snapshot()
						v := make([]uint64, len(tg))
						var b []byte
						var err error
						if op%2 == 0 {
							b, err = in.s.Get(bg, key, tg, v)
						} else {
							var x any
							x, err = in.s.GetValue(bg, key, tg, v)
							b, _ = x.([]byte)
						}
						if err != nil {
							fail("get: %v", err)
							return
						}
						for _, x := range v {
							if old[x] {
								fail("%v read a version its own completed bump replaced", tg)
								return
							}
						}
						if !served(b, v) && !slices.Contains(v, 0) {
							if err := in.s.Set(bg, key, stamp(v), time.Minute); err != nil {
								fail("set: %v", err)
								return
							}
						}
					case op < 8:
						bt := tg[:1]
						before := make([]uint64, 1)
						if err := in.s.l2.Versions(bg, bt, before); err != nil {
							fail("versions: %v", err)
							return
						}
						if _, err := in.s.Bump(bg, bt, 0); err != nil {
							fail("bump: %v", err)
							return
						}
						in.retired.add(before[0])
					case op < 9:
						bt := tg[:1]
						lease, err := in.s.Bump(bg, bt, time.Minute)
						if err != nil {
							fail("hold: %v", err)
							return
						}
						time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
						if err := in.s.Release(bg, bt, lease); err != nil {
							fail("release: %v", err)
							return
						}
					default:
						_ = in.s.Delete(bg, key)
					}
				}
			}()
		}
	}
	// Kill a's subscription twice during the run.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 2 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(600 * time.Millisecond):
			}
			ids := pubsubClientIDs(t, p.admin, p.name)
			for _, id := range ids {
				_ = p.admin.Do(bg, "CLIENT", "KILL", "ID", id).Err()
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	t.Logf("%d operations; a's subscription went down %d times", ops.Load(), p.states.downs.Load())
	if p.states.downs.Load() == 0 {
		t.Error("a's subscription never went down")
	}
	// Quiet again: both instances agree with L2.
	testsupport.Eventually(t, "a to subscribe again", p.a.vt.live.Load)
	want := make([]uint64, 2)
	if err := p.a.l2.Versions(bg, []string{"users", "orders"}, want); err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		got := make([]uint64, 2)
		testsupport.Eventually(t, "instances to agree with L2", func() bool {
			_ = in.s.Versions(bg, []string{"users", "orders"}, got)
			return slices.Equal(got, want)
		})
	}
}
