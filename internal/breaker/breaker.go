// Package breaker is the circuit breaker of the network stores
// (redisstore, memcachestore): after a number of consecutive failures it
// opens, and calls are refused without touching the network until a
// cool-down has passed; then one call at a time goes through as a probe. A
// success closes it, a failed probe opens it for another cool-down, and a
// probe that ends without telling anything about the server (its caller gave
// up) lets the next call probe.
package breaker

import (
	"cmp"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/store"
)

// DefaultFailures is the number of consecutive failures that opens a
// breaker made with failures 0.
const DefaultFailures = 5

// DefaultCooldown is the cool-down of a breaker made with cooldown 0.
const DefaultCooldown = time.Second

// Breaker is a circuit breaker. It is safe for concurrent use. A call asks
// [Breaker.Allow] first and, when allowed, reports how it ended with exactly
// one of [Breaker.Success], [Breaker.Failure] or [Breaker.Abandon], passing on
// the probe flag Allow returned. (A call made of several requests may report
// each request's Success or Failure with probe false, and then Abandon(probe)
// once at its end.)
type Breaker struct {
	failures int64
	cooldown time.Duration

	fails     atomic.Int64 // consecutive failures
	openUntil atomic.Int64 // unix ns; 0 when closed
	probing   atomic.Bool  // a probe is in flight
	opens     atomic.Uint64
}

// WithDefaults checks the breaker settings of a store's Config, named
// BreakerFailures and BreakerCooldown in every store, and returns them with
// the defaults for 0. Negative is an error wrapping store.ErrInvalidConfig
// (the caller prefixes its package name).
func WithDefaults(failures int, cooldown time.Duration) (int, time.Duration, error) {
	switch {
	case failures < 0:
		return 0, 0, fmt.Errorf("%w: BreakerFailures must not be negative (got %d)", store.ErrInvalidConfig, failures)
	case cooldown < 0:
		return 0, 0, fmt.Errorf("%w: BreakerCooldown must not be negative (got %v)", store.ErrInvalidConfig, cooldown)
	}
	return cmp.Or(failures, DefaultFailures), cmp.Or(cooldown, DefaultCooldown), nil
}

// New returns a closed breaker that opens after failures consecutive
// failures (0 means DefaultFailures) for cooldown (0 means
// DefaultCooldown). Negative values are the caller's to refuse
// ([WithDefaults]).
func New(failures int, cooldown time.Duration) *Breaker {
	if failures == 0 {
		failures = DefaultFailures
	}
	if cooldown == 0 {
		cooldown = DefaultCooldown
	}
	return &Breaker{failures: int64(failures), cooldown: cooldown}
}

// Failures returns the number of consecutive failures that opens b.
func (b *Breaker) Failures() int { return int(b.failures) }

// Cooldown returns how long an open b refuses calls before a probe.
func (b *Breaker) Cooldown() time.Duration { return b.cooldown }

// Allow reports whether a call may go to the server (ok), and whether it is
// the probe of an open breaker. A refused call reports nothing back.
func (b *Breaker) Allow() (probe, ok bool) {
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

// Success records a call that reached the server and got an answer (an
// error reply about the call itself included): it closes the breaker.
func (b *Breaker) Success(probe bool) {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
	}
	if probe {
		b.probing.Store(false)
	}
}

// Failure records a call that could not reach the server or got no answer in
// time. The failures-th in a row, or a failed probe, opens the breaker for
// another cool-down.
func (b *Breaker) Failure(probe bool) {
	n := b.fails.Add(1)
	if probe || n >= b.failures {
		if b.openUntil.Swap(time.Now().Add(b.cooldown).UnixNano()) == 0 {
			b.opens.Add(1)
		}
	}
	if probe {
		b.probing.Store(false)
	}
}

// Abandon records a call that ended without telling anything about the
// server (its caller's context ended). An abandoned probe lets the next call
// probe.
func (b *Breaker) Abandon(probe bool) {
	if probe {
		b.probing.Store(false)
	}
}

// Open tells whether the breaker is open: refusing calls, or past its
// cool-down and waiting for a probe to succeed.
func (b *Breaker) Open() bool { return b.openUntil.Load() != 0 }

// Opens returns the number of times the breaker opened.
func (b *Breaker) Opens() uint64 { return b.opens.Load() }
