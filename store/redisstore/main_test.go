package redisstore

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// TestMain silences go-redis's own logging (dial failures while servers are
// down on purpose) unless GORMCACHE_REDIS_LOG is set.
func TestMain(m *testing.M) {
	if os.Getenv("GORMCACHE_REDIS_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	os.Exit(m.Run())
}
