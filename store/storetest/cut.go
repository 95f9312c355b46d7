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
type CutBumps struct {
	store.Store
	Cut atomic.Bool
}

var _ store.Store = (*CutBumps)(nil)

// Bump implements [store.Store].
func (c *CutBumps) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if c.Cut.Load() {
		return 0, fmt.Errorf("storetest: bumps cut: %w", store.ErrUnavailable)
	}
	return c.Store.Bump(ctx, tags, hold)
}

// Release implements [store.Store].
func (c *CutBumps) Release(ctx context.Context, tags []string, id uint64) error {
	if c.Cut.Load() {
		return fmt.Errorf("storetest: bumps cut: %w", store.ErrUnavailable)
	}
	return c.Store.Release(ctx, tags, id)
}
