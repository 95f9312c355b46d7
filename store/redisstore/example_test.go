package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// A store on a single Redis. For a cluster, pass a *redis.ClusterClient;
// for Sentinel, redis.NewUniversalClient with MasterName.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer rdb.Close() // the store does not close the client

	st, err := redisstore.New(rdb, redisstore.Config{Prefix: "myapp:", Timeout: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	ctx := context.Background()
	tags := []string{"users"}
	stamp := make([]uint64, 1)
	if _, err := st.Get(ctx, "q1", tags, stamp); err != nil {
		fmt.Println("miss (store unavailable):", err) // fail open: query the database
		return
	}
	// ... query the database, then store the rows with the stamp inside ...
	_ = st.Set(ctx, "q1", []byte("rows stamped with versions"), time.Minute)

	// A write to users: hold, commit, release.
	lease, _ := st.Bump(ctx, tags, 5*time.Second)
	// ... COMMIT ...
	_ = st.Release(ctx, tags, lease)
	fmt.Println(st.Stats().RoundTrips > 0)
}
