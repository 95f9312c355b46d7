// Package store defines the [Store] interface that every gormcache backend
// implements, and the errors callers classify.
//
// A store holds two kinds of data:
//
//   - entries: opaque byte values under a key, each with a TTL;
//   - tag versions: one version number per tag (a table name, or the global
//     tag [GlobalTag]), which a bump replaces with a number never used before.
//
// A cached value records the versions of its tags as they were before the
// value was computed; it is fresh only while they are unchanged. Invalidation
// is therefore one write per tag, whatever the number of entries, and an entry
// computed from old data and stored late is stored under old versions, where
// nobody reads it.
//
// A tag may also be held: between the start of a write and its commit, the
// writer holds its tags, and a held tag reads as version 0 (unknown), so that
// no reader serves or stores a value for it until the write has committed and
// its final bump has landed. Holds expire by themselves, so a writer that dies
// cannot block a tag for ever.
//
// The conformance suite in package storetest runs against every backend.
//
// # Configs
//
// The stores of this module (memstore, redisstore, memcachestore, filestore,
// tiered) take a Config whose zero value is all defaults. Each checks and
// completes it in one place, a withDefaults method that New calls first: a
// bad field is an error from New, never a panic, prefixed with the package
// name, naming the field, and wrapping [ErrInvalidConfig].
package store
