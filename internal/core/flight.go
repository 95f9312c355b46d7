package core

import (
	"context"
	"sync"
)

// Flights lets identical concurrent misses wait for the first one (the
// leader) instead of all doing the work: a leader Joins, does the work and
// Finishes with its result; the others Wait for it.
type Flights[V any] struct {
	mu sync.Mutex
	m  map[string]*Flight[V]
}

// A Flight is one key's work in progress.
type Flight[V any] struct {
	done chan struct{}
	once sync.Once
	fs   *Flights[V]
	key  string
	v    V
}

// Join returns the flight of key, and whether the caller leads it (and
// must Finish it, on every path).
func (fs *Flights[V]) Join(key string) (*Flight[V], bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*Flight[V]{}
	}
	f := &Flight[V]{done: make(chan struct{}), fs: fs, key: key}
	fs.m[key] = f
	return f, true
}

// Finish ends the flight with the leader's result (the zero V: nothing to
// share, the followers look up again). Later calls do nothing.
func (f *Flight[V]) Finish(v V) {
	f.once.Do(func() {
		f.fs.mu.Lock()
		if f.fs.m[f.key] == f {
			delete(f.fs.m, f.key)
		}
		f.fs.mu.Unlock()
		f.v = v
		close(f.done)
	})
}

// Wait waits for the leader, or for ctx; it reports whether the leader
// finished.
func (f *Flight[V]) Wait(ctx context.Context) (V, bool) {
	select {
	case <-f.done:
		return f.v, true
	case <-ctx.Done():
		var zero V
		return zero, false
	}
}

// Done is closed when the leader has finished.
func (f *Flight[V]) Done() <-chan struct{} { return f.done }
