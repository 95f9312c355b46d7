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
	return store.WithTimeout(ctx, c.Timeout)
}
