package store

import (
	"context"
	"errors"
	"time"
)

// ErrDeadline is the cause of a deadline that a cache set on a store call
// itself (with [WithTimeout]): the store did not answer in time, which is a
// failure of the store, unlike a caller that gave up.
var ErrDeadline = errors.New("gormcache/store: no answer within the call's timeout")

// WithTimeout bounds a store call by d, with [ErrDeadline] as the cause of
// its deadline, so that the store can tell it from its caller's own
// cancellation (see [CallerGaveUp]).
func WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, ErrDeadline)
}

// CallerGaveUp reports whether ctx is done because the application
// cancelled it or its own deadline passed. A store says nothing about its
// health in that case: it returns an error that wraps ctx.Err() but not
// [ErrUnavailable], and a circuit breaker does not count it. A deadline set
// with [WithTimeout] is not the caller giving up: a store that did not
// answer within it has failed.
//
// A deadline that has passed counts even if ctx's timer has not fired yet
// (a socket deadline taken from it may fire first): CallerGaveUp then waits
// for it, which takes no longer than the timer's own delay.
func CallerGaveUp(ctx context.Context) bool {
	if ctx.Err() == nil {
		dl, ok := ctx.Deadline()
		if !ok || time.Now().Before(dl) {
			return false
		}
		<-ctx.Done()
	}
	return !errors.Is(context.Cause(ctx), ErrDeadline)
}
