package viewcache

import (
	"sync/atomic"

	"github.com/gormcache/gormcache/internal/core"
)

// Reason says why a request was not looked up (Stats.Bypasses), or a
// response not stored (Stats.NotStored); it is also the detail of the
// Cache-Status field. It is the plugin's type, with the same spelling
// (lower-case snake_case) and the reasons the two share (store_error,
// too_large, write_in_flight, unknown_tables) spelt once.
type Reason = core.Reason

// Reasons a request was not looked up, or a response not stored.
const (
	// Bypasses: the request was not looked up, and its response not stored.
	ReasonMethod   Reason = "method"   // neither GET nor HEAD
	ReasonIdentity Reason = "identity" // an identity header or client certificate, and no VaryOn value
	ReasonRange    Reason = "range"    // a Range request
	ReasonUpgrade  Reason = "upgrade"  // a protocol upgrade (WebSocket)
	ReasonNever    Reason = "never"    // the route says Never

	// NotStored: looked up, served by the handler, and not stored.
	ReasonHead       Reason = "head"                   // a HEAD miss: its response has no body to store
	ReasonStatus     Reason = "status"                 // a status not in Config.Statuses
	ReasonPrivate    Reason = "private"                // Cache-Control: private
	ReasonNoStore    Reason = "no_store"               // Cache-Control: no-store
	ReasonNoCache    Reason = "no_cache"               // Cache-Control: no-cache
	ReasonSetCookie  Reason = "set_cookie"             // the response sets a cookie
	ReasonVaryStar   Reason = "vary_star"              // Vary: *
	ReasonTrailers   Reason = "trailers"               // the response has trailers
	ReasonExpired    Reason = "expired"                // max-age=0, s-maxage=0, or an Expires not after Date
	ReasonTooLarge          = core.ReasonTooLarge      // over Config.MaxBytes (streamed through), or refused by the store
	ReasonFlushed    Reason = "flushed"                // the handler flushed: the response streamed through
	ReasonHijacked   Reason = "hijacked"               // the handler hijacked the connection
	ReasonPanic      Reason = "panic"                  // the handler panicked
	ReasonUnknown           = core.ReasonUnknownTables // a query's tables could not be determined, or it called a volatile function
	ReasonWrote      Reason = "wrote"                  // a query wrote
	ReasonNoQueries  Reason = "no_queries"             // no query recorded, and the route lacks WithoutQueries
	ReasonHeld              = core.ReasonHeld          // a table's version was unknown or held by a write in flight
	ReasonChanged    Reason = "changed"                // a table's version changed while the handler ran
	ReasonVaries     Reason = "varies"                 // an inner route varied on something the outer key lacks
	ReasonStoreError        = core.ReasonStoreError    // the store failed
	ReasonInnerNever Reason = "inner_never"            // an inner route or fragment said Never
	ReasonCancelled  Reason = "cancelled"              // the request's context ended before the response was complete
)

var reasons = []Reason{
	ReasonMethod, ReasonIdentity, ReasonRange, ReasonUpgrade, ReasonNever,
	ReasonHead, ReasonStatus, ReasonPrivate, ReasonNoStore, ReasonNoCache, ReasonSetCookie,
	ReasonVaryStar, ReasonTrailers, ReasonExpired, ReasonTooLarge, ReasonFlushed, ReasonHijacked,
	ReasonPanic, ReasonUnknown, ReasonWrote, ReasonNoQueries, ReasonHeld, ReasonChanged,
	ReasonVaries, ReasonStoreError, ReasonInnerNever, ReasonCancelled,
}

var reasonIndex = func() map[Reason]int {
	m := make(map[Reason]int, len(reasons))
	for i, r := range reasons {
		m[r] = i
	}
	return m
}()

// Stats counts what a Cache did since it was made. Every request a page
// handler gets is exactly one of a bypass (not looked up), a hit, a
// collapsed request, or a miss.
type Stats struct {
	Hits        uint64 // served from a stored response (304s included)
	NotModified uint64 // requests answered 304 Not Modified by the cache (hits, or misses whose fresh response matched)
	Collapsed   uint64 // identical concurrent misses served the response the first one stored (Config.Coalesce)
	Misses      uint64 // looked up and served by the handler
	Stale       uint64 // of the misses, a stored response was found but a table it read has been written since
	Stores      uint64 // responses stored
	// Bypasses counts requests not looked up, by reason (Reason… constants).
	Bypasses map[Reason]uint64
	// NotStored counts misses whose response was not stored, by reason.
	NotStored map[Reason]uint64
	// Corrupt counts entries that did not decode (or were written for
	// another key): misses, and the entry is deleted.
	Corrupt uint64
	// StoreErrors counts failed store calls (the request is served by its
	// handler: the cache fails open).
	StoreErrors uint64

	FragmentHits   uint64 // fragments served from the store
	FragmentMisses uint64 // fragments rendered

	// Unrecorded counts statements run through the plugin without a
	// recorded context while a cacheable request's handler ran
	// (Config.Development; always 0 without it).
	Unrecorded uint64
}

type counters struct {
	hits, notModified, collapsed, misses, stale, stores atomic.Uint64
	corrupt, storeErrors, fragHits, fragMisses          atomic.Uint64
	unrecorded                                          atomic.Uint64
	bypasses, notStored                                 [32]atomic.Uint64
}

func (c *counters) bypass(reason Reason)   { c.bypasses[reasonIndex[reason]].Add(1) }
func (c *counters) notStore(reason Reason) { c.notStored[reasonIndex[reason]].Add(1) }

func (c *counters) snapshot() Stats {
	s := Stats{
		Hits:           c.hits.Load(),
		NotModified:    c.notModified.Load(),
		Collapsed:      c.collapsed.Load(),
		Misses:         c.misses.Load(),
		Stale:          c.stale.Load(),
		Stores:         c.stores.Load(),
		Corrupt:        c.corrupt.Load(),
		StoreErrors:    c.storeErrors.Load(),
		FragmentHits:   c.fragHits.Load(),
		FragmentMisses: c.fragMisses.Load(),
		Unrecorded:     c.unrecorded.Load(),
		Bypasses:       map[Reason]uint64{},
		NotStored:      map[Reason]uint64{},
	}
	for i, r := range reasons {
		if n := c.bypasses[i].Load(); n > 0 {
			s.Bypasses[r] = n
		}
		if n := c.notStored[i].Load(); n > 0 {
			s.NotStored[r] = n
		}
	}
	return s
}
