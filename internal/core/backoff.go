package core

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff spaces a listener's attempts to reconnect and its retries of a
// bump: the delay doubles from Min up to Max (Next), and each wait takes
// up to a quarter off it, staying within the bounds (Jitter).
type Backoff struct{ Min, Max time.Duration }

// BackoffProblem describes what is wrong with the bounds min and max of a
// Config ("" when nothing: zero means a default).
func BackoffProblem(min, max time.Duration) string {
	switch {
	case min < 0 || max < 0:
		return "negative reconnect delay"
	case min > 0 && max > 0 && min > max:
		return "ReconnectMin " + min.String() + " exceeds ReconnectMax " + max.String()
	}
	return ""
}

// Next returns the delay after d.
func (b Backoff) Next(d time.Duration) time.Duration { return min(2*d, b.Max) }

// Jitter takes up to a quarter off d, staying within the bounds.
func (b Backoff) Jitter(d time.Duration) time.Duration {
	if q := int64(d / 4); q > 0 {
		d -= time.Duration(rand.Int64N(q))
	}
	return min(max(d, b.Min), b.Max)
}

// Sleep waits for d, or until ctx is done: false then.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
