// Package core is what the three caches of gormcache share: the query
// cache (plugin), the low-level cache (lowlevel) and the page cache
// (viewcache) are fronts over it.
//
// It owns the rules that keep a cached value true:
//
//   - tags: what a value depends on and what a write invalidates (tags.go);
//   - bounded store calls (Calls);
//   - the invalidator: bumps, the holds of writes in flight, tags whose
//     invalidation did not reach the store (broken tags, retried in the
//     background), the epoch after an outage of a shared store, the
//     background work Close stops (Invalidator);
//   - fail-open handling: counted store errors and rate-limited logs
//     (Counters, Log);
//   - one stampede primitive (Flights).
//
// A front asks the invalidator before it serves or stores anything
// (Judge, Serving), reports the store errors it meets (StoreFailed), and
// invalidates through it (Bump, Hold). The plugin's invalidator is the one
// its lowlevel and viewcache caches use (Of), so that an outage or a lost
// bump met by any of the three stops all three.
package core
