package redisprefix_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/redisprefix"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/redis/go-redis/v9"
)

func TestPattern(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, prefix, want string }{
		{"plain", "gctest:ab12:", "gctest:ab12:*"},
		{"glob characters", `a*b?c[d]e\f^`, `a\*b\?c\[d\]e\\f\^*`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := redisprefix.Pattern(tc.prefix); got != tc.want {
				t.Errorf("Pattern(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
}

// TestDelete: the keys under the prefix go, on every master of a cluster
// too; a key the prefix would match as a glob stays.
func TestDelete(t *testing.T) {
	t.Parallel()
	single := os.Getenv("GORMCACHE_REDIS")
	if single == "" {
		single = "127.0.0.1:6379"
	}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) redis.UniversalClient
	}{
		{"single", func(t *testing.T) redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: single})
		}},
		{"cluster", func(t *testing.T) redis.UniversalClient {
			if err := rediscluster.Use(t); err != nil {
				testdb.Unavailable(t, "redis cluster", err)
			}
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: rediscluster.Addrs})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := tc.open(t)
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rdb.Ping(ctx).Err(); err != nil {
				testdb.Unavailable(t, "redis "+tc.name, err)
			}
			var b [6]byte
			_, _ = rand.Read(b[:])
			base := "gcprefixtest:" + hex.EncodeToString(b[:]) + ":"
			prefix := base + "a*[b]:"
			testdb.CleanRedis(t, redis.UniversalOptions{Addrs: strings.Split(addrs(rdb), ",")}, base)
			var under []string
			for i := 0; i < 20; i++ { // spread over the cluster's slots
				under = append(under, prefix+hex.EncodeToString([]byte{byte(i)}))
			}
			under = append(under, prefix+"{t:users}:v")
			sibling := base + "aXb:k" // matched by the unescaped glob a*[b]:*
			for _, k := range append(under, sibling) {
				if err := rdb.Set(ctx, k, "1", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
			n, err := redisprefix.Delete(ctx, rdb, prefix)
			if err != nil || n != len(under) {
				t.Fatalf("Delete = %d, %v; want %d", n, err, len(under))
			}
			for _, k := range under {
				if rdb.Exists(ctx, k).Val() != 0 {
					t.Errorf("%s left", k)
				}
			}
			if rdb.Exists(ctx, sibling).Val() != 1 {
				t.Errorf("%s, not under the prefix, was deleted", sibling)
			}
			if _, err := redisprefix.Delete(ctx, rdb, ""); err == nil {
				t.Error("Delete with an empty prefix did not refuse")
			}
		})
	}
}

// addrs are the addresses rdb connects to, comma-separated.
func addrs(rdb redis.UniversalClient) string {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return strings.Join(c.Options().Addrs, ",")
	}
	return rdb.(*redis.Client).Options().Addr
}
