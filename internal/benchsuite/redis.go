package benchsuite

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/gormcache/gormcache/internal/redisprefix"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// RedisStore returns the Options of an Env whose plugin caches in Redis
// through rdb, under a fresh prefix of its own ("gcbench:" and 8 hex
// digits), and a function that deletes every key under that prefix (the
// versions, which have no TTL, and the entries), to call when the Env is no
// longer used.
func RedisStore(rdb redis.UniversalClient) (Options, func(context.Context) error, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "gcbench:" + hex.EncodeToString(b[:]) + ":"
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		return Options{}, nil, err
	}
	opt := Options{
		Store:  st,
		RawGet: func(ctx context.Context, k string) ([]byte, error) { return rdb.Get(ctx, k).Bytes() },
		RawKey: st.EntryKey,
	}
	drop := func(ctx context.Context) error {
		_, err := redisprefix.Delete(ctx, rdb, prefix)
		return err
	}
	return opt, drop, nil
}
