package plugin

import (
	"context"
	"sync"
	"time"
)

// background tracks the plugin's work outside statements (bumps in flight,
// retries, refreshes): Close cancels its context, which ends retries and
// refreshes, and waits for the work in flight. Unlike a sync.WaitGroup, it
// lets work start while Close waits (a write's bump still runs after
// Close: other processes may read the store).
type background struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	n    int
	idle sync.Cond
}

func (b *background) init() {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.idle.L = &b.mu
}

func (b *background) add() {
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
}

func (b *background) done() {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		b.idle.Broadcast()
	}
	b.mu.Unlock()
}

// wait returns once no work is in flight.
func (b *background) wait() {
	b.mu.Lock()
	for b.n > 0 {
		b.idle.Wait()
	}
	b.mu.Unlock()
}

// sleep waits for d, or until Close; it reports whether the plugin is
// still open.
func (b *background) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}
