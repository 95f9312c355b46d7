package core

import (
	"context"
	"sync"
	"time"
)

// Background tracks a cache's work outside its callers' calls (bumps in
// flight, retries, refreshes): Stop cancels its context, which ends
// retries and refreshes, and Wait waits for the work in flight. Unlike a
// sync.WaitGroup, it lets work start while Wait waits (a write's bump
// still runs after Close: other processes may read the store).
type Background struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	n    int
	idle sync.Cond
}

// NewBackground returns a Background whose context is live until Stop.
func NewBackground() *Background {
	b := &Background{}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.idle.L = &b.mu
	return b
}

// Ctx is cancelled by Stop.
func (b *Background) Ctx() context.Context { return b.ctx }

// Stop cancels Ctx: retries and refreshes end.
func (b *Background) Stop() { b.cancel() }

// Add counts one piece of work in flight; Done ends it.
func (b *Background) Add() {
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
}

// Done ends a piece of work counted by Add.
func (b *Background) Done() {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		b.idle.Broadcast()
	}
	b.mu.Unlock()
}

// Go runs f in a goroutine counted as work in flight.
func (b *Background) Go(f func()) {
	b.Add()
	go func() {
		defer b.Done()
		f()
	}()
}

// Wait returns once no work is in flight.
func (b *Background) Wait() {
	b.mu.Lock()
	for b.n > 0 {
		b.idle.Wait()
	}
	b.mu.Unlock()
}

// Sleep waits for d, or until Stop; it reports whether Stop has not been
// called.
func (b *Background) Sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}
