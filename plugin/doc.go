// Package plugin is gormcache's GORM plugin: it serves query results from a
// cache and invalidates them, by table, when writes commit.
//
//	db.Use(plugin.New(plugin.Config{})) // zero Config: in-memory store, 5-minute TTL
//
// # How it works
//
// The plugin wraps GORM's query, row, create, update, delete and raw
// callbacks in place. While one runs, the statement's pool is a per-statement
// pool: the one place where the final SQL and arguments are known. There each
// statement is classified (package invalidation): a plain read of known
// tables may be cached; anything else goes to the database, counted by reason
// in [Stats].
//
// A cached read is keyed by the dialect, the database's identity, the
// normalised SQL and its arguments encoded by type (package keys). The entry
// holds the raw result set — columns, column types and driver values — not
// the destination, and is replayed through GORM's own gorm.Scan, so every
// destination, hook, error and RowsAffected behaves as against the database.
// A hit into a struct, a slice or a scalar assigns the cached values directly
// (the fast path); maps, Row() and Rows() get a real *sql.Rows from a tiny
// in-process replay driver. An entry is verified against the exact query
// bytes on every hit, so even a hash collision cannot serve another query's
// rows.
//
// # The guarantee
//
// A read never returns data older than a write that had committed, through
// any process sharing the store, before the read began. (With the default
// in-memory store, "sharing the store" means the same process.)
//
// Each table has a version in the store; an entry records the versions of
// its tables as they were before its query ran, and is served only while
// they are unchanged. A write bumps its tables and holds them before it runs
// (reads of held tables go to the database, and nothing is stored for them),
// and bumps them again when it is over — for a transaction, when it commits
// or rolls back. (A transaction on PostgreSQL or SQLite places its holds
// just before its COMMIT: no other session sees its rows before, so its
// tables stay served meanwhile; one that rolls back bumps nothing.) A
// reader that raced a write therefore stores its rows under versions nobody
// reads. Invalidation is one store write per table, whatever the number of
// entries.
//
// # Limits
//
// Writes that do not go through this *gorm.DB — another application, psql,
// a cron job, or SQL run on db.DB() directly — are not seen: their rows may
// be served stale until the TTL ends (call [Plugin.Invalidate] after them).
// The in-memory store is per process: with several instances, use a shared
// store. Sessions that scope rows per connection (row-level security, SET
// ROLE, search_path changed by SET) must not cache those tables.
package plugin
