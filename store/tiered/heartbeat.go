package tiered

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHeartbeatInterval is the HeartbeatInterval of a store whose
// Config.HeartbeatInterval is 0; the default HeartbeatTimeout is three
// times the interval.
const DefaultHeartbeatInterval = time.Second

// heartbeat checks a store's bus end to end, over the path the bumps take:
// a subscription can be up, its connection answering its own PING, and
// still deliver nothing (a partitioned cluster bus, a subscriber left on an
// isolated node). Each store publishes a heartbeat, a message with no tags,
// once it has heard nothing for an interval; every message heard counts,
// its own heartbeats included, since they too travel through the server.
// If the subscription is up but nothing arrives for the timeout, the store
// stops using its local versions, as when the subscription is down, and
// drops them all when a message arrives again.
//
// Only this store's clock is used: the time since the last message heard.
// A heartbeat carries nothing, not even the sender's id: arrival is all the
// check needs, and an instance of an earlier version of this package reads
// a message with no tags as a bump of no tags, which costs it at most one
// extra L2 comparison per entry it stored (a new payload format would make
// it drop all its versions at every heartbeat).
type heartbeat struct {
	vt                *versionTable
	bus               Bus
	interval, timeout time.Duration

	mu     sync.Mutex
	up     bool      // the subscription's last report
	silent bool      // up, but nothing heard for timeout
	heard  time.Time // last message heard, or when the subscription came up

	sending             atomic.Bool
	outages, silences   atomic.Uint64
	sent, publishErrors atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newHeartbeat(vt *versionTable, bus Bus, interval, timeout time.Duration) *heartbeat {
	return &heartbeat{vt: vt, bus: bus, interval: interval, timeout: timeout}
}

// onState handles the subscription's reports, as [Bus.Subscribe] makes
// them.
func (h *heartbeat) onState(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up, h.silent = up, false
	if up {
		h.heard = time.Now()
	} else {
		h.outages.Add(1)
	}
	h.vt.reset(up)
}

// onTags handles a message: tags bumped through some instance, or none
// for a heartbeat.
func (h *heartbeat) onTags(tags []string) {
	if len(tags) > 0 {
		h.vt.invalidate(tags, true)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.heard = time.Now()
	if h.silent {
		// What was published during the silence may be lost.
		h.silent = false
		h.vt.reset(h.up)
	}
}

// check makes the store stop using local versions if the subscription is
// up but silent since timeout. It reports how long it has heard nothing.
func (h *heartbeat) check(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	quiet := now.Sub(h.heard)
	if h.up && !h.silent && quiet > h.timeout {
		h.silent = true
		h.silences.Add(1)
		h.vt.reset(false)
	}
	return quiet
}

// start runs the heartbeat until stop.
func (h *heartbeat) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(1)
	go h.run(ctx)
}

// stop ends the heartbeat and waits for a publish in flight.
func (h *heartbeat) stop() {
	h.cancel()
	h.wg.Wait()
}

// run checks every quarter interval or so (at random, so that instances
// started together do not keep publishing together), and publishes a
// heartbeat when it has heard nothing and sent nothing for an interval. On
// a healthy bus a message thus arrives at least every 1.5 intervals plus a
// round trip; a silence is noticed within timeout plus half an interval.
func (h *heartbeat) run(ctx context.Context) {
	defer h.wg.Done()
	tick := max(h.interval/4, time.Millisecond)
	t := time.NewTimer(tick)
	defer t.Stop()
	var lastSent time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if h.check(now) >= h.interval && now.Sub(lastSent) >= h.interval && !h.sending.Load() {
			lastSent = now
			h.sending.Store(true)
			h.wg.Add(1)
			go h.publish(ctx) // a hung PUBLISH must not delay the check
		}
		t.Reset(tick + rand.N(tick))
	}
}

func (h *heartbeat) publish(ctx context.Context) {
	defer h.wg.Done()
	defer h.sending.Store(false)
	pctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if err := h.bus.Publish(pctx, nil); err != nil {
		if ctx.Err() == nil { // not stopped by Close
			h.publishErrors.Add(1)
		}
		return
	}
	h.sent.Add(1)
}
