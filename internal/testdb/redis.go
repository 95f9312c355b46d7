package testdb

import (
	"context"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/redisprefix"
	"github.com/redis/go-redis/v9"
)

// KeyPrefix returns a new key prefix for a test's keys on a shared Redis
// or Memcached: lead, twelve random hex digits, and a colon (as
// "gctest:3f9a0c61b2d4:"). With Redis, pass it to [CleanRedis] too.
func KeyPrefix(lead string) string {
	return RandomName(lead) + ":"
}

// CleanRedis deletes, when t ends, every key under prefix (which must be
// the test's own) from the Redis that opt names, as
// redis.NewUniversalClient reads it: one address (and DB), a cluster
// (several addresses), or a master through Sentinel (MasterName). It uses a
// client of its own, made then: the test's may be closed by that time, or
// forbid SCAN. Call it before writing, so that a test that fails half-way
// cleans up too.
func CleanRedis(t testing.TB, opt redis.UniversalOptions, prefix string) {
	t.Helper()
	if prefix == "" {
		t.Fatal("testdb: CleanRedis with an empty prefix")
	}
	t.Cleanup(func() {
		rdb := redis.NewUniversalClient(&opt)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := redisprefix.Delete(ctx, rdb, prefix); err != nil {
			t.Logf("testdb: delete the keys under %q: %v", prefix, err)
		}
	})
}
