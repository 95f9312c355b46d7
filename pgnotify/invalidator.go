package pgnotify

import (
	"context"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
)

// Invalidator makes cached results that read tables stale. *plugin.Plugin
// implements it (its Invalidate also follows the views and foreign keys it
// knows); [StoreInvalidator] adapts a bare store.
//
// Tables are named as in SQL: `articles`, `public.articles`, `"Articles"`;
// an implementation normalises them as invalidation.TableName does.
// Invalidate must be safe for concurrent use.
type Invalidator interface {
	Invalidate(ctx context.Context, tables ...string) error
}

// InvalidatorFunc adapts a function to [Invalidator].
type InvalidatorFunc func(ctx context.Context, tables ...string) error

// Invalidate calls f.
func (f InvalidatorFunc) Invalidate(ctx context.Context, tables ...string) error {
	return f(ctx, tables...)
}

var (
	_ Invalidator = InvalidatorFunc(nil)
	_ Invalidator = storeInvalidator{}
)

// StoreInvalidator returns an [Invalidator] that bumps the tables' tags in
// st directly, in one Bump call: for a process without the plugin (the CLI,
// a sidecar) sharing the application's store. Unlike the plugin's, it does
// not know the database's views and foreign keys: name every table whose
// cached results should go.
func StoreInvalidator(st store.Store) Invalidator { return storeInvalidator{st} }

type storeInvalidator struct{ st store.Store }

func (s storeInvalidator) Invalidate(ctx context.Context, tables ...string) error {
	tags := make([]string, 0, len(tables))
	seen := make(map[string]bool, len(tables))
	for _, t := range tables {
		tag := invalidation.TableName(t)
		if tag == "" || seen[tag] {
			continue
		}
		seen[tag] = true
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return nil
	}
	_, err := s.st.Bump(ctx, core.Wide(tags), 0) // the rows tags too: row-level entries
	return err
}
