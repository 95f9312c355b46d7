package testsupport

import (
	"context"
	"sync"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
)

// BytesStore is its Store with only the methods of [store.Store]: the
// ValueStore side of a memstore (and its type) hidden, so that a cache
// encodes its entries as it does on Redis or Memcached.
type BytesStore struct{ store.Store }

// RecordingStore is a [BytesStore] that also remembers the keys set
// through it.
type RecordingStore struct {
	store.Store
	mu   sync.Mutex
	keys []string
}

var (
	_ store.Store = BytesStore{}
	_ store.Store = (*RecordingStore)(nil)
)

// NewRecordingStore returns a RecordingStore over a new memstore of a zero
// Config.
func NewRecordingStore() *RecordingStore {
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		panic(err) // a zero Config is valid
	}
	return &RecordingStore{Store: ms}
}

// Set remembers key, then sets it in the store below.
func (s *RecordingStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.Store.Set(ctx, key, value, ttl)
}

// SetKeys returns the keys set so far, in the order of the calls.
func (s *RecordingStore) SetKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}
