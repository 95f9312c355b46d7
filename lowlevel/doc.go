// Package lowlevel is gormcache's low-level cache: Django's cache API
// (get, set, add, get_or_set, delete, delete_many, touch, incr), typed, on
// the store the GORM plugin uses, for values computed from the database —
// reports, aggregates, rendered fragments — that must go stale when the
// tables they were computed from are written.
//
//	c, err := lowlevel.New(p, lowlevel.Config{}) // p is the *plugin.Plugin given to db.Use
//	report, err := lowlevel.Remember(ctx, c, "report:daily", time.Hour, []string{"orders"},
//		func(ctx context.Context) (Report, error) { return buildReport(ctx, db) })
//
// A write to orders through a *gorm.DB with the plugin installed (Create,
// Save, Update, Delete, Exec, in a transaction or not) makes that entry
// stale, as it does the plugin's cached queries of orders; so do
// [plugin.Plugin.Invalidate], [Cache.Invalidate], [plugin.Plugin.Flush]
// (everything) and [Cache.Flush] (this cache's entries).
//
// # Values
//
// Go methods cannot have type parameters, so the typed operations are
// generic functions: [Get], [Set], [SetStamped], [Add], [GetOrSet],
// [Remember]. Values are
// encoded with msgpack (exported fields, msgpack tags; a time.Time keeps
// its instant, not its location), in an envelope that records the value's
// tables and their versions (the page cache's envelope too). An entry that
// will not decode — corrupt, written by something else or by an older
// version of gormcache, or of another type than asked — is a miss,
// counted in [Stats], and is deleted or overwritten. Fields that T lacks
// count as another type, so entries written before a field was removed
// are misses rather than half-read values.
//
// With the in-process memstore (the plugin's default), values of types
// without references are kept as Go values, and a hit costs no decoding;
// see [Config.ShareValues] for the others.
//
// # Tables and staleness
//
// An entry depends on the tables it is stored with, on the cache (its
// Prefix), and on everything (store.GlobalTag). Before a value is computed,
// the versions of those are read; the value is stored with them, and served
// only while they are unchanged. A write bumps its tables' versions before
// it runs and again once it has committed, and holds them meanwhile, so a
// value computed from data older than a committed write is never served,
// and nothing is stored for a table while a write to it is in flight.
//
// [Remember] reads the versions before it runs its function, as the plugin
// does before its query. [Set], [Add] and [GetOrSet] take a value already
// computed, and read the versions when called: if the value was computed
// before a write that has committed since, it is stored as fresh. For
// values computed from the database, use Remember, or take a [Stamp] with
// [Cache.Stamp] before computing and store with [SetStamped].
//
// Table names are normalised as the plugin does (invalidation.TableName:
// `public.orders`, `"Orders"` and orders are one table). Name the tables
// the same on every call for a key: a read that names other tables than
// the entry was stored with is a miss (counted as a mismatch). Name the
// tables a value is computed from, not views: the plugin's knowledge of
// views and of Config.Dependencies is not applied to low-level entries, so
// for a value read from a view, name the tables under it.
//
// # TTLs, and Django's settings
//
//   - A TTL of 0 means [Config.TTL], whose default is 5 minutes (Django's
//     300 s).
//   - plugin.Forever keeps a value until it is invalidated or evicted
//     (Django's TIMEOUT=None).
//   - [Skip] stores nothing (Django's TIMEOUT=0, "do not cache"): Set with
//     Skip deletes the key, Touch with Skip expires it.
//   - Django's KEY_PREFIX is [Config.Prefix]; for its VERSION, put a version
//     in the prefix.
//   - clear() is [Cache.Flush]; delete_many is [Cache.Delete] with several
//     keys; decr is [Cache.Incr] with a negative delta.
//
// # Errors
//
// A cache must not break what it caches: [Remember] and [GetOrSet] fail
// open (a store error is counted and logged, and the value is computed or
// returned as given). The plain operations return store errors, wrapping
// store.ErrUnavailable, store.ErrTooLarge or store.ErrClosed, for callers
// that want to know.
//
// # Atomicity
//
// [Add], [GetOrSet], [Cache.Incr] and [Cache.Touch] read, decide and
// write. On a store that implements [Swapper] (compare-and-swap) they are
// atomic across processes; on the others — all the stores shipped today —
// they are atomic within one process only (a lock per key), which is exact
// for the in-process memstore but not for a store shared by several
// processes: two processes may then both Add one key, or lose one
// another's increments.
package lowlevel
