package plugin

import (
	"sync"
	"sync/atomic"
)

// Reasons a statement bypassed the cache, as counted in [Stats].Bypasses.
const (
	reasonTransaction      = "transaction"       // inside a transaction: reads go to the database
	reasonConnection       = "connection"        // on a dedicated connection (db.Connection) or a pool we cannot see through
	reasonWrite            = "write"             // the statement writes (RETURNING, writable CTE, UPDATE through Raw)
	reasonNotSelect        = "not_select"        // SET, SHOW, EXPLAIN, savepoints…: nothing to cache
	reasonLocking          = "locking"           // FOR UPDATE / FOR SHARE
	reasonVolatile         = "volatile_function" // now(), random(), nextval(), an unknown function…
	reasonCatalog          = "catalog"           // system catalogs: nothing bumps them
	reasonUnknownTables    = "unknown_tables"    // the tables read could not all be determined
	reasonInto             = "select_into"       // SELECT … INTO
	reasonUnsupportedArg   = "unsupported_arg"   // an argument that cannot be encoded into a key
	reasonUnsupportedValue = "unsupported_value" // a result value that is not a driver value
	reasonTooManyRows      = "too_many_rows"     // over MaxRows
	reasonTooLarge         = "too_large"         // over MaxBytes
	reasonPartialRead      = "partial_read"      // the caller did not read the result to the end
	reasonHeld             = "write_in_flight"   // a write to one of its tables has not committed yet
	reasonStoreError       = "store_error"       // the store failed: served from the database
	reasonBumpFailed       = "bump_failed"       // a table whose invalidation did not reach the store
	reasonMultiStatement   = "multi_statement"   // several statements in one query
	reasonClosed           = "closed"            // the plugin was closed
	reasonSkip             = "skip"              // the Skip option
	reasonDenied           = "denied"            // reads a table in Config.Deny
	reasonNotAllowed       = "not_allowed"       // reads a table not in Config.Allow
	reasonOptIn            = "opt_in"            // Config.OptIn and the statement did not ask
	reasonEmpty            = "empty"             // no rows, and Config.SkipEmpty
	reasonBadOption        = "bad_option"        // a per-query option was invalid (the statement failed)
	reasonReplicaBehind    = "replica_behind"    // read through a replica whose heartbeat is older than ReplicaWindow: served, not stored
	reasonReplicaLag       = "replica_lag"       // read through a replica (or another pool) within ReplicaWindow of a bump of its tables: served, not stored
)

// Stats counts what the plugin did since it was created.
type Stats struct {
	Hits   uint64 // queries answered from the cache
	Misses uint64 // cacheable queries answered by the database
	Stores uint64 // results stored
	// Bypasses counts statements that neither read nor filled the cache, by reason.
	Bypasses map[string]uint64
	// Invalidations counts table version bumps sent to the store: a write
	// bumps each of its tables twice (when it starts, holding them, and when
	// it commits, releasing them).
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
	// StoreErrors counts failed store calls (each one served from the database).
	StoreErrors uint64
	// StoreCanceled counts store calls that ended because the application
	// cancelled the query's context (or its own deadline passed): served
	// from the database, not counted as store errors, and no outage.
	StoreCanceled uint64
	// Outages counts the times a shared store failed with
	// store.ErrUnavailable while nothing was being held back for an
	// earlier failure: each time, nothing is served from the store until
	// everything there has been invalidated once (the epoch bump).
	Outages uint64
	// CorruptEntries counts entries that would not decode (treated as misses and overwritten).
	CorruptEntries uint64
	// Collisions counts entries found under a query's key that belonged to
	// another query (a hash collision, or a foreign entry): treated as misses.
	Collisions uint64
	// CatalogErrors counts failed reads of the database's foreign keys,
	// views and triggers (retried; until then writes follow only their own tables).
	CatalogErrors uint64
	// Coalesced counts misses answered by an identical query already
	// running (stampede protection): they did not query the database.
	Coalesced uint64
	// Revalidations counts entries served past their TTL while a
	// background query refreshed them (Config.StaleWhileRevalidate).
	Revalidations uint64
	// Tables counts hits and misses by table read (a query reading two
	// tables counts for both).
	Tables map[string]TableStats
}

// TableStats are the hits and misses of the queries that read one table.
type TableStats struct {
	Hits, Misses uint64
}

type counters struct {
	hits, misses, stores, invalidations, renewals, unknownOutcomes, refused, storeErrors, storeCanceled, outages, corrupt, collisions, catalogErrors, coalesced, revalidations atomic.Uint64
	tables                                                                                                                                                                     tableCounts
	bypass                                                                                                                                                                     sync.Map // reason → *atomic.Uint64
}

func (c *counters) bypassed(reason string) {
	v, ok := c.bypass.Load(reason)
	if !ok {
		v, _ = c.bypass.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Hits:            c.hits.Load(),
		Misses:          c.misses.Load(),
		Stores:          c.stores.Load(),
		Invalidations:   c.invalidations.Load(),
		StoreErrors:     c.storeErrors.Load(),
		StoreCanceled:   c.storeCanceled.Load(),
		HoldRenewals:    c.renewals.Load(),
		UnknownOutcomes: c.unknownOutcomes.Load(),
		WritesRefused:   c.refused.Load(),
		Outages:         c.outages.Load(),
		CorruptEntries:  c.corrupt.Load(),
		Collisions:      c.collisions.Load(),
		CatalogErrors:   c.catalogErrors.Load(),
		Coalesced:       c.coalesced.Load(),
		Revalidations:   c.revalidations.Load(),
		Tables:          map[string]TableStats{},
		Bypasses:        map[string]uint64{},
	}
	c.bypass.Range(func(k, v any) bool {
		s.Bypasses[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	c.tables.m.Range(func(k, v any) bool {
		tc := v.(*tableCount)
		s.Tables[k.(string)] = TableStats{Hits: tc.hits.Load(), Misses: tc.misses.Load()}
		return true
	})
	return s
}
