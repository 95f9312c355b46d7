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
//   - one stampede primitive (Flights);
//   - versioned values (stamp.go): a value is stored with a Stamp, the
//     versions of its tags read before the work that made it, its
//     creation time and its deadline, and is served only while Fresh (every
//     current version known and equal; 0, unknown or held, is never
//     fresh) and not Expired;
//   - one envelope for what the low-level and page caches put in a byte
//     store (envelope.go): a format byte, the kind, the check text, the
//     tags, the stamp and the front's payload, which S2 compresses behind
//     the same guards as the plugin's entries (compress.go). Bytes of any
//     other format (an older version's entries) are ErrUnsupported, and
//     damaged ones ErrCorrupt: the fronts count both as corrupt, treat
//     them as a miss and delete them.
//
// A front asks the invalidator before it serves or stores anything
// (Judge, Serving), reports the store errors it meets (StoreFailed), and
// invalidates through it (Bump, Hold). The plugin's invalidator is the one
// its lowlevel and viewcache caches use (Of), so that an outage or a lost
// bump met by any of the three stops all three.
//
// The plugin's entries keep their own format (package serializer: a
// version byte, the check bytes and the versions, then the rows), and
// share the stamp's rule (FreshExcept, for row-level entries that ignore
// their table's tag) and the S2 guards, not the envelope. That was decided
// by measurement: the plugin's hit benchmarks (go test -run '^$' -bench
// '(First|Find100|NullDB)/.*/^hit$' ./plugin/) never read a header, since
// the in-process store keeps decoded entries (and a byte store's hit that
// reads the same bytes again reuses its decoded entry, plugin/decoded.go),
// so the envelope could not make them faster; reading a First-sized head
// (BenchmarkHead, on a busy 2-core machine) costs 0.2–0.3 µs with 2
// allocations in the envelope, 0.2–0.4 µs and none with
// serializer.ParseHeader, 0.6–1.1 µs and 2 with serializer.DecodeHeader
// (Decode's part): a byte-store hit that has to decode (its bytes not
// among the decoded entries) would gain under 1 µs, under 1% of a Redis
// round trip (27–45 µs here), for no fewer allocations. That does not pay
// for changing a public, versioned format that the CLI and keys.ParseQuery
// decode, and for making every query entry in a shared store a miss on
// upgrade. (If the serializer's format changes for another reason, its
// head can become the envelope's then.)
package core
