package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
)

// failingStore fails every call, as an unreachable store does.
type failingStore struct{ calls sync.Map }

var errDown = errors.Join(store.ErrUnavailable, errors.New("connection refused"))

func (f *failingStore) Get(context.Context, string, []string, []uint64) ([]byte, error) {
	return nil, errDown
}
func (f *failingStore) Set(context.Context, string, []byte, time.Duration) error { return errDown }
func (f *failingStore) Delete(context.Context, ...string) error                  { return errDown }
func (f *failingStore) Versions(context.Context, []string, []uint64) error       { return errDown }
func (f *failingStore) Bump(context.Context, []string, time.Duration) (uint64, error) {
	return 0, errDown
}
func (f *failingStore) Release(context.Context, []string, uint64) error { return errDown }
func (f *failingStore) Close() error                                    { return nil }

var _ store.Store = (*failingStore)(nil)

// releaseFailsStore fails the first n Release calls (as a store that went
// away between a write's start and its end).
type releaseFailsStore struct {
	*testsupport.RecordingStore
	mu sync.Mutex
	n  int
}

func (s *releaseFailsStore) Release(ctx context.Context, tags []string, lease uint64) error {
	s.mu.Lock()
	fail := s.n > 0
	if fail {
		s.n--
	}
	s.mu.Unlock()
	if fail {
		return fmt.Errorf("release: %w", store.ErrUnavailable)
	}
	return s.RecordingStore.Release(ctx, tags, lease)
}
