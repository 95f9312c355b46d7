package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/store"
)

// CutBumps wraps a store whose bumps and releases fail with an error
// wrapping store.ErrUnavailable while Cut is set; reads and writes of
// entries still work. It stands for a path to the store that fails for one
// instance only, or a write's invalidation that does not reach the store.
//
// While LoseReplies is above 0, each bump and release runs on the store but
// reports a failure (returning the lease a bump placed), as a call whose
// reply was lost to a client timeout does, and counts LoseReplies down.
type CutBumps struct {
	store.Store
	Cut         atomic.Bool
	LoseReplies atomic.Int64
}

var _ store.Store = (*CutBumps)(nil)

// Bump implements [store.Store].
func (c *CutBumps) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if c.Cut.Load() {
		return 0, fmt.Errorf("storetest: bumps cut: %w", store.ErrUnavailable)
	}
	id, err := c.Store.Bump(ctx, tags, hold)
	if err == nil && c.LoseReplies.Add(-1) >= 0 {
		err = fmt.Errorf("storetest: the bump's reply was lost: %w", store.ErrUnavailable)
	}
	return id, err
}

// Release implements [store.Store].
func (c *CutBumps) Release(ctx context.Context, tags []string, id uint64) error {
	if c.Cut.Load() {
		return fmt.Errorf("storetest: bumps cut: %w", store.ErrUnavailable)
	}
	err := c.Store.Release(ctx, tags, id)
	if err == nil && c.LoseReplies.Add(-1) >= 0 {
		err = fmt.Errorf("storetest: the release's reply was lost: %w", store.ErrUnavailable)
	}
	return err
}
