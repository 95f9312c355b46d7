package testsupport_test

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
)

// The memstore's ValueStore side is what the wrappers hide.
func TestStoresHideValues(t *testing.T) {
	t.Parallel()
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if _, ok := any(ms).(store.ValueStore); !ok {
		t.Fatal("memstore is no ValueStore: the premise of these wrappers is gone")
	}
	for name, s := range map[string]store.Store{
		"BytesStore":        testsupport.BytesStore{Store: ms},
		"RecordingStore":    &testsupport.RecordingStore{Store: ms},
		"NewRecordingStore": testsupport.NewRecordingStore(),
	} {
		if _, ok := s.(store.ValueStore); ok {
			t.Errorf("%s shows the ValueStore side", name)
		}
		if _, ok := s.(store.CodecUser); ok {
			t.Errorf("%s shows the CodecUser side", name)
		}
	}
}

func TestRecordingStoreSetKeys(t *testing.T) {
	t.Parallel()
	s := testsupport.NewRecordingStore()
	defer s.Close()
	ctx := context.Background()
	for _, k := range []string{"b", "a", "b"} {
		if err := s.Set(ctx, k, []byte(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.SetKeys(), []string{"b", "a", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SetKeys() = %q, want %q", got, want)
	}
	if v, err := s.Get(ctx, "a", nil, nil); err != nil || string(v) != "a" {
		t.Fatalf("Get(a) = %q, %v: the set did not reach the store below", v, err)
	}
}

func TestEventually(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	testsupport.Eventually(t, "the third poll", func() bool { return n.Add(1) >= 3 })
}
