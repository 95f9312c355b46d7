package core

import (
	"context"
	"time"

	"github.com/gormcache/gormcache/store"
)

// Calls bounds the calls to one store.
type Calls struct {
	// Timeout bounds a call to a store that is not in-process.
	Timeout time.Duration
	// InProcess: calls are not bounded (they do not wait on a network).
	InProcess bool
	// Latency, when not nil and on, records how long each call to a store
	// that is not in-process took (from Ctx to its cancel function).
	Latency *Latency
}

// Ctx bounds a store call made under ctx; a detached call (a bump, a
// store of a result) also outlives the caller's cancellation.
func (c Calls) Ctx(ctx context.Context, detached bool) (context.Context, context.CancelFunc) {
	if detached {
		ctx = context.WithoutCancel(ctx)
	}
	if c.InProcess {
		return ctx, func() {}
	}
	ctx, cancel := store.WithTimeout(ctx, c.Timeout)
	if l := c.Latency; l != nil && l.On() {
		start := time.Now()
		return ctx, func() {
			cancel()
			l.Observe(time.Since(start))
		}
	}
	return ctx, cancel
}
