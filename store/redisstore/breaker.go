package redisstore

import (
	"sync/atomic"
	"time"
)

// breaker is a circuit breaker: after threshold consecutive failures it
// opens, and calls are refused without touching the network until cooldown
// has passed; then one call at a time goes through as a probe. A success
// closes it, a failed probe opens it for another cooldown.
type breaker struct {
	threshold int64
	cooldown  time.Duration

	failures  atomic.Int64 // consecutive failures
	openUntil atomic.Int64 // unix ns; 0 when closed
	probing   atomic.Bool  // a probe is in flight
	opens     atomic.Uint64
}

// allow reports whether a call may go to Redis, and whether it is the probe
// of an open breaker.
func (b *breaker) allow() (probe, ok bool) {
	until := b.openUntil.Load()
	if until == 0 {
		return false, true
	}
	if time.Now().UnixNano() < until {
		return false, false
	}
	if b.probing.CompareAndSwap(false, true) {
		return true, true
	}
	return false, false
}

// success records a call that reached Redis and got an answer.
func (b *breaker) success(probe bool) {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
	}
	if probe {
		b.probing.Store(false)
	}
}

// failure records a call that could not reach Redis or got no answer in time.
func (b *breaker) failure(probe bool) {
	n := b.failures.Add(1)
	if probe || n >= b.threshold {
		if b.openUntil.Swap(time.Now().Add(b.cooldown).UnixNano()) == 0 {
			b.opens.Add(1)
		}
	}
	if probe {
		b.probing.Store(false)
	}
}

// abandon records a call that ended without telling anything about Redis
// (its caller's context ended).
func (b *breaker) abandon(probe bool) {
	if probe {
		b.probing.Store(false)
	}
}

func (b *breaker) isOpen() bool { return b.openUntil.Load() != 0 }
