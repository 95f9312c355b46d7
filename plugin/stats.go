package plugin

import (
	"github.com/gormcache/gormcache/internal/core"
	"sync"
	"sync/atomic"
)

// Reason says why a statement bypassed the cache: the keys of
// [Stats].Bypasses, [Explanation].Reason, the reason label of the
// Prometheus metrics. The page cache (viewcache) uses the same type and
// spelling.
type Reason = core.Reason

// Reasons a statement bypassed the cache. README.md has the same list,
// with an example of each.
const (
	ReasonTransaction      Reason = "transaction"            // inside a transaction: reads go to the database
	ReasonConnection       Reason = "connection"             // on a dedicated connection (db.Connection's *sql.Conn)
	ReasonWrite            Reason = "write"                  // a write sent as a query returning rows: INSERT … RETURNING (GORM's Create on PostgreSQL, SQLite, MariaDB), UPDATE … RETURNING, writable CTEs, DDL through Raw; writes sent with Exec are not counted
	ReasonNotSelect        Reason = "not_select"             // SET, SHOW, EXPLAIN, PRAGMA, savepoints… sent as a query: nothing to cache
	ReasonLocking          Reason = "locking"                // FOR UPDATE / FOR SHARE
	ReasonVolatile         Reason = "volatile_function"      // now(), random(), nextval(), an unknown function (which also invalidates everything)…
	ReasonCatalog          Reason = "catalog"                // system catalogs: nothing bumps them
	ReasonUnknownTables           = core.ReasonUnknownTables // the tables read could not all be determined (SQL not followed, a view of unknown tables)
	ReasonInto             Reason = "select_into"            // SELECT … INTO (MySQL variables, OUTFILE)
	ReasonUnsupportedArg   Reason = "unsupported_arg"        // an argument that cannot be encoded into a key
	ReasonUnsupportedValue Reason = "unsupported_value"      // after a miss: a result value that is not a driver value
	ReasonTooManyRows      Reason = "too_many_rows"          // after a miss: over MaxRows
	ReasonTooLarge                = core.ReasonTooLarge      // after a miss: over MaxBytes, or more than the store accepts
	ReasonPartialRead      Reason = "partial_read"           // after a miss: the caller did not read the result to the end
	ReasonHeld                    = core.ReasonHeld          // a write to one of its tables has not committed yet
	ReasonStoreError              = core.ReasonStoreError    // the lookup failed (or the caller gave up during it): served from the database
	ReasonBumpFailed       Reason = "bump_failed"            // a table whose invalidation did not reach the store (after an outage: every table until the epoch bump)
	ReasonMultiStatement   Reason = "multi_statement"        // several statements in one query
	ReasonClosed           Reason = "closed"                 // the plugin was closed (on a store it does not own; on its own store it steps aside and counts nothing)
	ReasonSkip             Reason = "skip"                   // the Skip option
	ReasonDenied           Reason = "denied"                 // reads a table in Config.Deny
	ReasonNotAllowed       Reason = "not_allowed"            // reads a table not in Config.Allow
	ReasonOptIn            Reason = "opt_in"                 // Config.OptIn and the statement did not ask
	ReasonEmpty            Reason = "empty"                  // after a miss: no rows, and Config.SkipEmpty
	ReasonBadOption        Reason = "bad_option"             // a per-query option from the context was invalid (the statement failed); a bad clause fails the statement before the plugin sees it
	ReasonReplicaBehind    Reason = "replica_behind"         // read through a replica whose heartbeat is older than ReplicaWindow: served, not stored
	ReasonTempTable        Reason = "temp_table"             // reads a name a temporary table (or view) was created under, through the plugin: it exists in one session, and shadows a table of that name there
	ReasonReplicaLag       Reason = "replica_lag"            // read through a replica (or another pool) within ReplicaWindow of a bump of its tables: served, not stored
	ReasonNoCatalog        Reason = "no_catalog"             // the database's catalog has not been read yet (or cannot be: another dialect, without Config.WithoutCatalog), or was read again while the statement ran (served, not stored)
)

// Stats counts what the plugin did since it was created.
type Stats struct {
	// Hits counts statements answered from a fresh entry (entries served
	// past their TTL under Config.StaleWhileRevalidate included), not the
	// Coalesced ones.
	Hits uint64
	// Misses counts cacheable reads that were looked up, found no fresh
	// entry (or had the Refresh option) and ran on the database with their
	// result captured for the store. A miss whose result is then not stored
	// is also counted in Bypasses (too_many_rows, too_large,
	// unsupported_value, partial_read, empty).
	Misses uint64
	// Stores counts results the store accepted, background refreshes
	// (Config.StaleWhileRevalidate) included.
	Stores uint64
	// Bypasses counts, by reason, statements the cache neither served nor
	// stored: reads it did not look up, reads looked up but not usable
	// (store_error, write_in_flight, bump_failed, replicas), and misses whose
	// result was not stored. Writes are counted only when they are sent as
	// queries returning rows (write: GORM's Create with INSERT … RETURNING);
	// writes sent with Exec (Update, Delete) are not.
	Bypasses map[Reason]uint64
	// Invalidations counts table versions bumped in the store, one per
	// table per successful bump: a write bumps each of its tables (with what
	// its cascades, partitions and triggers reach, or just "*") twice, when
	// it starts, holding them, and when it is over or its transaction ends,
	// releasing them; Invalidate bumps each table once, Flush bumps "*" once,
	// and a background retry of a failed bump counts when it succeeds.
	Invalidations uint64
	// HoldRenewals counts holds renewed because a write (a transaction, a
	// statement waiting on a lock) ran for longer than WriteLease/2.
	HoldRenewals uint64
	// UnknownOutcomes counts writes and commits that ended with a context
	// or connection error, so that the database may still have committed
	// them: their tables stayed held for WriteLease.
	UnknownOutcomes uint64
	// WritesRefused counts writes failed before they ran because their
	// tables could not be invalidated first (Config.BumpFailure FailWrite).
	WritesRefused uint64
	// StoreErrors counts failed store calls: a lookup or version read (the
	// query is served from the database), a store of a result, or a bump
	// that still failed after its retries. A StoreTimeout that expires is
	// a failure.
	StoreErrors uint64
	// StoreCanceled counts store calls that ended because the application
	// cancelled the query's context (or its own deadline passed): served
	// from the database, not counted as store errors, and no outage.
	StoreCanceled uint64
	// Outages counts the times a shared store failed a call (a lookup, a
	// version read, a store, or a refused write's bump) with
	// store.ErrUnavailable while nothing was being held back
	// for an earlier failure: each time, nothing is served from the store
	// until everything there has been invalidated once (the epoch bump).
	// Never counted for the plugin's own in-process store.
	Outages uint64
	// CorruptEntries counts entries that would not decode (treated as misses and overwritten).
	CorruptEntries uint64
	// Collisions counts entries found under a query's key that belonged to
	// another query (a hash collision, or a foreign entry): treated as misses.
	Collisions uint64
	// CatalogErrors counts failed reads of the database's foreign keys,
	// views and triggers (retried; before the first successful one nothing
	// is cached and every write invalidates everything; after it, the last
	// one read is used). CatalogReads counts the successful ones: at
	// Initialize, after DDL through the plugin, after a statement named a
	// table the catalog did not list, and every Config.CatalogRefresh.
	CatalogErrors, CatalogReads uint64
	// Coalesced counts misses answered by an identical query already
	// running (stampede protection): they did not query the database, and
	// are counted neither in Hits nor in Misses.
	Coalesced uint64
	// Revalidations counts the background refreshes started for entries
	// served past their TTL (Config.StaleWhileRevalidate), at most one at a
	// time per key; the stale hits themselves are counted in Hits.
	Revalidations uint64
	// RowWrites counts writes to a table with keyed columns (row-level
	// invalidation: an integer primary key, integer foreign keys and
	// indexes) that named the rows they change by one of them (results of
	// other rows stay cached); TableWrites counts writes to such a table
	// that named them by none (a range, an upsert: every row-level result
	// of the table is invalidated).
	RowWrites, TableWrites uint64
	// Tables counts hits and misses by table read, under the table's
	// lower-case name (a query reading two tables counts for both).
	Tables map[string]TableStats
}

// TableStats are the hits and misses of the queries that read one table.
type TableStats struct {
	Hits, Misses uint64
}

type counters struct {
	hits, misses, stores, storeErrors, storeCanceled, corrupt, collisions, catalogErrors, catalogReads, coalesced, revalidations, rowWrites, tableWrites atomic.Uint64
	tables                                                                                                                                               tableCounts
	bypass                                                                                                                                               sync.Map // reason → *atomic.Uint64
}

func (c *counters) bypassed(reason Reason) {
	v, ok := c.bypass.Load(reason)
	if !ok {
		v, _ = c.bypass.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// snapshot reads the counters, with those of the invalidator (nil before
// setup).
func (c *counters) snapshot(inv *core.Counters) Stats {
	if inv == nil {
		inv = new(core.Counters)
	}
	s := Stats{
		Hits:            c.hits.Load(),
		Misses:          c.misses.Load(),
		Stores:          c.stores.Load(),
		Invalidations:   inv.Invalidations.Load(),
		StoreErrors:     c.storeErrors.Load() + inv.StoreErrors.Load(),
		StoreCanceled:   c.storeCanceled.Load(),
		HoldRenewals:    inv.Renewals.Load(),
		UnknownOutcomes: inv.UnknownOutcomes.Load(),
		WritesRefused:   inv.Refused.Load(),
		Outages:         inv.Outages.Load(),
		CorruptEntries:  c.corrupt.Load(),
		Collisions:      c.collisions.Load(),
		CatalogErrors:   c.catalogErrors.Load(),
		CatalogReads:    c.catalogReads.Load(),
		Coalesced:       c.coalesced.Load(),
		Revalidations:   c.revalidations.Load(),
		RowWrites:       c.rowWrites.Load(),
		TableWrites:     c.tableWrites.Load(),
		Tables:          map[string]TableStats{},
		Bypasses:        map[Reason]uint64{},
	}
	c.bypass.Range(func(k, v any) bool {
		s.Bypasses[k.(Reason)] = v.(*atomic.Uint64).Load()
		return true
	})
	c.tables.m.Range(func(k, v any) bool {
		tc := v.(*tableCount)
		s.Tables[k.(string)] = TableStats{Hits: tc.hits.Load(), Misses: tc.misses.Load()}
		return true
	})
	return s
}
