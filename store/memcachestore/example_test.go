package memcachestore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/store/memcachestore"
)

func ExampleNew() {
	mc := memcache.New("127.0.0.1:11211")
	mc.MaxIdleConns = 64 // about the peak number of concurrent calls
	s, err := memcachestore.New(mc, memcachestore.Config{Prefix: "myapp:"})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ctx := context.Background()
	versions := make([]uint64, 1)
	if err := s.Versions(ctx, []string{"users"}, versions); err != nil {
		fmt.Println("store unavailable, query the database:", err)
		return
	}
	_ = s.Set(ctx, "query-key", []byte("rows stamped with versions"), 5*time.Minute)

	// A write: hold the table while it runs, release after COMMIT.
	lease, _ := s.Bump(ctx, []string{"users"}, 30*time.Second)
	// ... the write and its COMMIT ...
	_ = s.Release(ctx, []string{"users"}, lease)
}
