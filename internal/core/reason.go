package core

// A Reason says why a cache neither served nor stored something: the keys
// of the Bypasses (plugin) and NotStored (viewcache) counters, the reason
// label of the Prometheus metrics, the detail of viewcache's Cache-Status
// header. Reasons are lower-case snake_case words; the ones the caches
// share are here, each with one spelling.
type Reason string

// Reasons shared by the caches.
const (
	ReasonStoreError    Reason = "store_error"     // the store failed (or the caller gave up during the call)
	ReasonTooLarge      Reason = "too_large"       // over the cache's byte limit, or refused by the store
	ReasonHeld          Reason = "write_in_flight" // a tag was held by a write in flight, or its version unknown
	ReasonUnknownTables Reason = "unknown_tables"  // the tables read could not all be determined
)
