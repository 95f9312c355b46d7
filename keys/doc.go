// Package keys builds the cache keys of gormcache.
//
// A key is
//
//	prefix ":" format-version ":" base64url(hash(canonical query))
//
// where the canonical query is what [AppendQuery] writes: the dialect, the
// database identity, the SQL text after [Normalize], and every argument
// encoded by type (the string "1", the int 1, the float 1.0, []byte("1") and
// true all differ). The encoding is length-prefixed and type-tagged, so no two
// different queries share a canonical form. A cache entry stores the canonical
// bytes it was made from, and a hit compares them, so even a hash collision can
// never return another query's rows.
//
// [ParseQuery] reads canonical bytes back (the gormcache CLI's inspect shows
// an entry's query with it).
//
// [Builder] turns canonical bytes into a store key (SHA-256, truncated to 128
// bits); its zero value uses the prefix "gc".
//
// Everything here sits on the path of every cache hit: [Normalize] returns
// its input without allocating when there is nothing to change, [AppendQuery]
// appends to a caller's buffer, and [Builder.Key] allocates only the key
// string.
package keys
