// Package viewcache caches whole HTTP responses — per view, like Django's
// cache_page, or site-wide, like its cache middleware — and invalidates
// them with the same table versions that invalidate gormcache's query
// results. A stored page goes stale the moment a write to a table it read
// commits through GORM: no timeout to wait for, no cache.delete to write.
//
//	views, err := viewcache.New(p, viewcache.Config{TTL: 15 * time.Minute}) // p: the *plugin.Plugin given to db.Use
//	mux.Handle("GET /articles", views.Page(http.HandlerFunc(listArticles)))
//	handler := views.Middleware(mux) // or site-wide
//
// Inside listArticles, db.WithContext(r.Context()).Find(&articles) is all
// there is to write.
//
// # Dependencies
//
// While a cacheable request runs, its context carries a plugin.Recorder:
// every GORM statement made with it (db.WithContext(r.Context())) records
// the tables it read, with the version each had before the request's first
// read of it — whether the statement was served from the query cache, from
// the database, or bypassed the cache (Skip, a transaction). The response
// is stored with those versions and served only while every one is
// current. So a write that commits while the handler runs makes the stored
// page stale at once, and nothing is stored while a write to one of its
// tables is in flight (its version reads as 0).
//
// A response is not stored when a statement's tables were unknown (Raw SQL
// the classifier cannot read, a volatile function such as random()), when
// any statement wrote, or when no statement was recorded at all (the
// handler read without r.Context(), or from elsewhere) unless the route
// says [WithoutQueries]. [Tags] adds tables by hand; their versions are
// read before the handler runs. Fragments ([Cache.Fragment]) and inner
// pages served from the store add their own tables to the page around
// them. Every entry also depends on store.GlobalTag (the plugin's Flush)
// and on this cache's own tag ([Cache.Flush]).
//
// # Keys and Vary
//
// Only GET and HEAD are cached, and they share entries: a HEAD is answered
// from the GET's response without its body (a HEAD that misses is passed
// to the handler and not stored). The key is the scheme, host, escaped
// path, the query parameters sorted by name (repeated ones keep their
// order), the forwarding headers (X-Forwarded-Host, X-Forwarded-Proto,
// Forwarded), [Config.Key]'s value and the route's [VaryOn] value; then, as
// Django does, the request's values of the headers the response names in
// Vary: a response with Vary is stored under the full key, and the base
// key holds a small record of the Vary names. The key text is hashed into
// the store key and kept in the entry, and a hit must match it exactly.
//
// # Round trips
//
// store.Store.Get reads an entry and the versions of tags named up front,
// but a page's tags are known only from its entry. The cache keeps, in
// process, a hint per URL (and per route, for URLs not seen yet): the Vary
// names and tags last stored. With a hint that is right, a hit is one
// round trip (one Get of the full key with every tag). Without one (a
// cold process, a new URL of a route whose tables change with its
// parameters), a hit is two: the entry, then its tags' versions; three
// when the response varies (the vary record, the entry, the versions).
// A hint can only cost a round trip, never a wrong answer: the entry is
// always checked against its own tags. A miss also stores with one Set
// (two when the vary record must be written). On the in-process memstore
// entries are kept as Go values and a hit decodes nothing.
//
// # Privacy
//
// A request that carries an identity — Authorization, Proxy-Authorization,
// Cookie, X-Api-Key (see [Config.IdentityHeaders]) or a TLS client
// certificate — is neither served from nor stored in the cache, unless its
// route declares what its response varies on with [VaryOn] (say, the user
// id): then each value gets its own entries. A response is never stored
// when it sets a cookie, says Cache-Control private, no-store or no-cache,
// or Vary: *.
//
// # HTTP
//
// Responses served carry an RFC 9211 Cache-Status field ("gormcache; hit;
// ttl=287", "gormcache; fwd=stale; fwd-status=200; stored; ttl=300",
// "gormcache; fwd=bypass; detail=identity"). A stored response keeps its
// ETag, or gets a strong one computed from its body, and If-None-Match and
// If-Modified-Since are answered with 304 from the cache (the handler's
// request has them removed on a miss, so that its full response can be
// stored). The stored header is replayed as it was, less hop-by-hop fields
// and the fields an enclosing middleware had already set, with Age added.
// The TTL is the response's Cache-Control s-maxage, else its max-age, else
// its Expires, else the route's [TTL], else [Config.TTL]. A response larger
// than [Config.MaxBytes], or whose handler flushes or hijacks, streams
// through unbuffered and is not stored; requests that bypass the cache get
// the server's ResponseWriter itself, so http.Flusher and http.Hijacker
// work as without the cache. A handler that panics stores nothing, and the
// panic goes on.
//
// Browsers cannot see our invalidations: a page a browser keeps for its
// max-age is stale there after a write. So the cache adds no max-age by
// default, and browsers revalidate each time, getting a 304 from the cache
// when nothing changed. [Config.BrowserMaxAge] turns max-age (and Expires)
// on, for pages where that staleness is acceptable.
//
// # Stores
//
// The cache uses the plugin's store (plugin.Plugin.Store): the in-process
// memstore, Redis, Memcached, or any store.Store. Entries in byte stores
// are the envelope the low-level cache uses too (a format byte, the kind,
// the key text, the tables and their versions, the times), followed by the
// response in msgpack (S2-compressed above 1 KiB when that saves an
// eighth); an entry of another format (one written by an older version
// among them), or that does not decode, is a miss, counted in [Stats], and
// deleted. The cache fails open: a store
// error is a miss, and the handler runs.
package viewcache
