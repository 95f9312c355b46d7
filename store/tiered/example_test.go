package tiered_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/tiered"
	"github.com/redis/go-redis/v9"
)

// Two instances share an L2 and a bus; a bump through one is seen by the
// other. (A memstore and a LocalBus stand in for Redis here.)
func ExampleNew() {
	ctx := context.Background()
	shared, _ := memstore.New(memstore.Config{})
	defer shared.Close()
	bus := tiered.NewLocalBus()
	a, _ := tiered.New(shared, tiered.Config{Bus: bus})
	defer a.Close()
	b, _ := tiered.New(shared, tiered.Config{Bus: bus})
	defer b.Close()

	tags := []string{"users", store.GlobalTag}
	before := make([]uint64, 2)
	_ = b.Versions(ctx, tags, before) // b now knows them locally

	lease, _ := a.Bump(ctx, tags[:1], 30*time.Second) // a write begins
	during := make([]uint64, 2)
	_ = b.Versions(ctx, tags, during)
	_ = a.Release(ctx, tags[:1], lease) // ... and commits
	after := make([]uint64, 2)
	_ = b.Versions(ctx, tags, after)

	fmt.Println("held during the write:", during[0] == 0)
	fmt.Println("new version after it:", after[0] != before[0] && after[0] != 0)
	fmt.Println("global tag unchanged:", after[1] == before[1])
	// Output:
	// held during the write: true
	// new version after it: true
	// global tag unchanged: true
}

// In production, L2 is a shared store on Redis and the bus is Redis
// pub/sub through the same client.
func ExampleNewRedisBus() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	var l2 store.Store // redisstore.New(rdb, redisstore.Config{}) in practice
	s, err := tiered.New(l2, tiered.Config{
		Bus:    tiered.NewRedisBus(rdb, "myapp:gc:invalidations"),
		L1TTL:  time.Minute,
		Encode: func(v any) ([]byte, error) { return v.([]byte), nil }, // the entry codec
		Decode: func(b []byte) (any, error) { return b, nil },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
}
