// Package redisprefix deletes every key under a prefix from Redis: one
// server, the master behind Sentinel, or each master of a Redis Cluster. It
// uses SCAN with MATCH on the prefix, so it is for tests and benchmark
// programs that write under a prefix of their own; store code never scans
// (store/redisstore).
package redisprefix

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Delete deletes every key whose name starts with prefix and returns how
// many it deleted. prefix must not be empty: Delete will not clear a
// database.
func Delete(ctx context.Context, rdb redis.UniversalClient, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("redisprefix: empty prefix")
	}
	match := Pattern(prefix)
	var n atomic.Int64
	del := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			// One key per DEL: in a cluster, the keys of one node are in
			// many slots.
			d, err := c.Del(ctx, iter.Val()).Result()
			if err != nil {
				return err
			}
			n.Add(d)
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	} else {
		err = del(ctx, rdb)
	}
	return int(n.Load()), err
}

// Pattern is the SCAN MATCH pattern of the keys that start with prefix: its
// glob characters escaped, then "*".
func Pattern(prefix string) string {
	var b strings.Builder
	for _, c := range prefix {
		if strings.ContainsRune(`*?[]\^`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('*')
	return b.String()
}
