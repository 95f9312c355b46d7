// Package console is a page for people over a gormcache plugin: what the
// cache serves, per query shape and per table, what it never caches and
// why, how the store is doing, a chart of the hit ratio and the database
// queries per second over the last minutes, and an advisor that names the
// option that would help a query that is rarely served from the cache.
// The same data is served as JSON with ?format=json.
//
// Mount it as net/http/pprof is mounted, behind the application's own
// authentication: it shows the application's SQL (never argument values;
// Options.HideSQL hides the SQL text too).
//
//	cons, err := console.New(p, console.Options{}) // p: the *plugin.Plugin given to db.Use
//	if err != nil { … }
//	defer cons.Close()
//	mux.Handle("/debug/gormcache", requireAdmin(cons))
//
// New starts the plugin's per-shape collection (plugin.Plugin.CollectShapes)
// and a goroutine sampling its counters for the chart (every
// Options.Interval); Close stops both. The page is one HTML document with
// its chart drawn as inline SVG: nothing is fetched from elsewhere.
package console
