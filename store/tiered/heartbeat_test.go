package tiered

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/redis/go-redis/v9"
)

// cutBus delivers messages until cut is set and drops them after, while
// the subscription stays up and its connection keeps answering its own
// PING: messages lost on the way (a partitioned cluster bus, a subscriber
// left on an isolated old master), which the connection cannot notice.
type cutBus struct {
	Bus
	cut atomic.Bool
}

func (c *cutBus) Subscribe(ctx context.Context, onTags func([]string), onState func(bool)) (func(), error) {
	return c.Bus.Subscribe(ctx, func(tags []string) {
		if !c.cut.Load() {
			onTags(tags)
		}
	}, onState)
}

// Short heartbeat settings for tests: the bound is generous against the
// interval, so that a loaded machine does not make a healthy bus look
// silent.
const (
	testHeartbeatEvery = 20 * time.Millisecond
	testHeartbeatBound = 300 * time.Millisecond
)

// TestBusSilence cuts a's subscription behind its back (messages stop
// arriving, the connection stays healthy) while b writes and bumps and a
// reads: within the heartbeat bound, a must stop serving from L1 what b's
// bumps replaced, and once messages flow again it must use L1 again.
func TestBusSilence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(testing.TB) redis.UniversalClient
	}{
		{"Redis", singleClient},
		{"Cluster", newCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkBusSilence(t, tc.client)
		})
	}
}

func checkBusSilence(t *testing.T, client func(testing.TB) redis.UniversalClient) {
	ch := testdb.RandomName("gctest:tiered:")
	l2 := newL2(t)
	aL2 := &countingStore{Store: l2}
	cut := &cutBus{Bus: NewRedisBus(client(t), ch)}
	var states stateCounter
	cfg := Config{HeartbeatInterval: testHeartbeatEvery, HeartbeatTimeout: testHeartbeatBound}
	cfg.Bus = &hookBus{Bus: cut, onState: states.hook}
	a := newTiered(t, aL2, cfg)
	cfg.Bus = NewRedisBus(client(t), ch)
	b := newTiered(t, l2, cfg)
	p := &reconnectPair{a: a, b: b, aL2: aL2}
	v := p.warm(t)

	// Load: b bumps and stores entries of another tag; a reads them and k.
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	wg.Add(2)
	go func() {
		defer wg.Done()
		ov := make([]uint64, 2)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := b.Bump(bg, []string{"orders"}, 0); err != nil {
				errc <- fmt.Errorf("b bump: %w", err)
				return
			}
			if err := b.Versions(bg, []string{"orders", "*"}, ov); err != nil {
				errc <- fmt.Errorf("b versions: %w", err)
				return
			}
			_ = b.Set(bg, fmt.Sprint("o", i%4), stamp(ov), time.Minute)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	go func() {
		defer wg.Done()
		ov := make([]uint64, 2)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := a.Get(bg, fmt.Sprint("o", i%4), []string{"orders", "*"}, ov); err != nil {
				errc <- fmt.Errorf("a get: %w", err)
				return
			}
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
	}()

	// Under load, b's bumps of orders made a compare k with L2 again; it
	// then serves k from L1 until it hears of a bump of users. (On a
	// loaded machine a delivery may stall past the bound, and a then reads
	// L2 until the next message: wait until it trusts its L1 again.)
	time.Sleep(2 * testHeartbeatBound)
	testsupport.Eventually(t, "a to serve k from L1", func() bool {
		before := aL2.calls()
		p.readA(t, 0, "before the cut")
		return aL2.calls() == before
	})

	silences := a.Stats().BusSilences
	cut.cut.Store(true)
	start := time.Now()
	if _, err := b.Bump(bg, rcTags[:1], 0); err != nil {
		t.Fatal(err)
	}
	// a reads k until it no longer gets the version b's bump replaced.
	got := make([]uint64, len(rcTags))
	stale := 0
	for {
		if _, err := a.Get(bg, "k", rcTags, got); err != nil {
			t.Fatal(err)
		}
		if got[0] != v[0] {
			break
		}
		stale++
		if time.Since(start) > testHeartbeatBound+5*time.Second {
			t.Fatalf("a still reads the users version b's bump replaced %v after the cut (%d stale reads; L1TTL is %v)", time.Since(start), stale, a.l1TTL)
		}
		time.Sleep(100 * time.Microsecond)
	}
	noticed := time.Since(start)
	t.Logf("messages cut: a stopped reading the replaced version after %v and %d stale reads (heartbeat every %v, bound %v; %d silences before the cut)", noticed, stale, testHeartbeatEvery, testHeartbeatBound, silences)
	if d := states.downs.Load(); d != 0 {
		t.Fatalf("a's subscription went down %d times: the test did not cut the messages behind the connection's back", d)
	}
	if noticed > testHeartbeatBound+2*time.Second {
		t.Errorf("noticed after %v; the bound is %v", noticed, testHeartbeatBound)
	}
	st := a.Stats()
	if st.BusSilences == silences || st.L1Trusted {
		t.Fatalf("after the cut: %+v; want a silence, L1 not trusted", st)
	}
	// While cut, every read of k asks L2, and none returns the old version.
	for range 20 {
		before := aL2.calls()
		p.readA(t, v[0], "while the messages are cut")
		if aL2.calls() == before {
			t.Fatal("while the messages are cut, a served k from L1")
		}
	}

	// Messages flow again: a trusts its L1 again, and still never reads
	// the replaced version.
	cut.cut.Store(false)
	testsupport.Eventually(t, "a to trust its L1 again", func() bool { return a.Stats().L1Trusted })
	p.readA(t, v[0], "after the messages flow again")
	testsupport.Eventually(t, "a to serve k from L1 again", func() bool {
		before := aL2.calls()
		p.readA(t, v[0], "after the messages flow again")
		return aL2.calls() == before
	})
	if d := states.downs.Load(); d != 0 {
		t.Fatalf("a's subscription went down %d times", d)
	}
}

// TestHeartbeatIdle checks that an idle, healthy instance alone on its
// channel keeps its L1 for many bounds: its own heartbeats, heard back
// through Redis, keep it trusted.
func TestHeartbeatIdle(t *testing.T) {
	t.Parallel()
	aL2 := &countingStore{Store: newL2(t)}
	a := newTiered(t, aL2, Config{
		Bus:               NewRedisBus(newRedis(t, nil), testdb.RandomName("gctest:tiered:")),
		HeartbeatInterval: testHeartbeatEvery,
		HeartbeatTimeout:  testHeartbeatBound,
	})
	p := &reconnectPair{a: a, aL2: aL2}
	p.warm(t)
	time.Sleep(4 * testHeartbeatBound)
	st := a.Stats()
	if st.BusSilences != 0 || !st.L1Trusted {
		t.Fatalf("idle for %v: %+v; want no silence", 4*testHeartbeatBound, st)
	}
	if st.HeartbeatsSent < 4 {
		t.Fatalf("idle for %v: %d heartbeats sent; want one about every %v", 4*testHeartbeatBound, st.HeartbeatsSent, testHeartbeatEvery)
	}
	p.warm(t) // still served from L1
	t.Logf("idle for %v: %+v", 4*testHeartbeatBound, st)
}
