package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
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

// oneKeyStore keeps every entry under one key, as if every query's key
// hashed to the same value.
type oneKeyStore struct{ store.Store }

// newOneKeyStore returns a oneKeyStore over a memstore, as a ValueStore or
// (bytes) as a byte store.
func newOneKeyStore(bytes bool) store.Store {
	if bytes {
		ms, err := memstore.New(memstore.Config{})
		if err != nil {
			panic(err)
		}
		return oneKeyStore{testsupport.BytesStore{Store: ms}}
	}
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		panic(err)
	}
	return oneKeyValueStore{oneKeyStore{ms}, ms}
}

const theKey = "collision"

func (s oneKeyStore) Get(ctx context.Context, _ string, tags []string, v []uint64) ([]byte, error) {
	return s.Store.Get(ctx, theKey, tags, v)
}
func (s oneKeyStore) Set(ctx context.Context, _ string, value []byte, ttl time.Duration) error {
	return s.Store.Set(ctx, theKey, value, ttl)
}
func (s oneKeyStore) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	return s.Store.Delete(ctx, theKey)
}

// oneKeyValueStore is oneKeyStore over a ValueStore, keeping its values as
// they are.
type oneKeyValueStore struct {
	oneKeyStore
	vs store.ValueStore
}

func (s oneKeyValueStore) GetValue(ctx context.Context, _ string, tags []string, v []uint64) (any, error) {
	return s.vs.GetValue(ctx, theKey, tags, v)
}
func (s oneKeyValueStore) SetValue(ctx context.Context, _ string, v any, size int, ttl time.Duration) error {
	return s.vs.SetValue(ctx, theKey, v, size, ttl)
}
