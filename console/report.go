package console

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gormcache/gormcache/plugin"
)

// Report is what the page shows, and what ?format=json returns.
type Report struct {
	// Time is when the report was made; Since when the console started
	// collecting (the per-shape and per-table figures count from then).
	Time  time.Time `json:"time"`
	Since time.Time `json:"since"`
	// Totals are the plugin's counters (plugin.Stats) since it was created.
	Totals Totals `json:"totals"`
	// Shapes are the Options.TopShapes shapes read or written most.
	Shapes []Shape `json:"shapes"`
	// Never are the shapes that are never cached, with why, most database
	// queries first.
	Never []Shape `json:"never_cached"`
	// ShapesTracked counts the shapes kept in memory (Shapes shows the top
	// of them); ShapesDropped those dropped to stay within the bound.
	ShapesTracked int    `json:"shapes_tracked"`
	ShapesDropped uint64 `json:"shapes_dropped"`
	// Tables are the tables read or written, most reads first.
	Tables []Table `json:"tables"`
	// Store is the store's health.
	Store StoreHealth `json:"store"`
	// Series is one point per Options.Interval over Options.Window.
	Series []Point `json:"series"`
	// Advice lists the shapes an option would help, and the shapes that
	// are cacheable but bypassed most of the time.
	Advice []Advice `json:"advice"`
	// Threshold is the hit ratio under which a shape is advised on.
	Threshold float64 `json:"threshold"`
	// SQLHidden: Options.HideSQL (shapes carry their ID only).
	SQLHidden bool `json:"sql_hidden"`
}

// Totals are the plugin's counters.
type Totals struct {
	Hits          uint64            `json:"hits"`
	Misses        uint64            `json:"misses"`
	Stores        uint64            `json:"stores"`
	Coalesced     uint64            `json:"coalesced"`
	Bypasses      map[string]uint64 `json:"bypasses"`
	Invalidations uint64            `json:"invalidations"`
	// DBQueries counts the statements the read path sent to the database:
	// misses, bypassed reads, and writes sent as queries (INSERT …
	// RETURNING); writes sent with Exec are not counted by the plugin.
	DBQueries uint64  `json:"db_queries"`
	HitRatio  float64 `json:"hit_ratio"`
}

// Shape is one query shape: the SQL with every literal and argument
// replaced by "?".
type Shape struct {
	ID  string `json:"id"`
	SQL string `json:"sql,omitempty"`
	// Tables are the tables read (or written, for a write).
	Tables    []string `json:"tables"`
	Cacheable bool     `json:"cacheable"`
	// Reason is why it is never cached (Cacheable false); Why says it in
	// words.
	Reason string `json:"reason,omitempty"`
	Why    string `json:"why,omitempty"`
	Write  bool   `json:"write,omitempty"`
	Reads  uint64 `json:"reads"`
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	Stores uint64 `json:"stores"`
	// Bypasses counts the statements neither served nor stored, by reason.
	Bypasses map[string]uint64 `json:"bypasses"`
	HitRatio float64           `json:"hit_ratio"`
	// Invalidated counts entries found invalidated when looked up, and
	// InvalidatedBy by what (a table, "t rows by c", "*").
	Invalidated   uint64            `json:"invalidated"`
	InvalidatedBy map[string]uint64 `json:"invalidated_by"`
	// BytesStored adds up the sizes of the results stored.
	BytesStored uint64 `json:"bytes_stored"`
	// DBQueries counts its statements that went to the database.
	DBQueries uint64 `json:"db_queries"`
	Writes    uint64 `json:"writes,omitempty"`
	// LastSeen is when a statement of the shape was last seen.
	LastSeen time.Time `json:"last_seen"`
}

// Table is one table's figures, added up over the shapes that read or
// write it.
type Table struct {
	Name     string  `json:"name"`
	Reads    uint64  `json:"reads"`
	Hits     uint64  `json:"hits"`
	Misses   uint64  `json:"misses"`
	HitRatio float64 `json:"hit_ratio"`
	// Writes counts the writes through GORM that invalidated it.
	Writes uint64 `json:"writes"`
	// InvalidationsPerSec is its writes per second over the last minute.
	InvalidationsPerSec float64 `json:"invalidations_per_sec"`
	// CostliestWriters are the tables whose writes invalidated the most
	// entries that read this one (each invalidated entry costs a hit).
	CostliestWriters []Cost `json:"costliest_writers"`
}

// Cost is the hits a table's writes cost.
type Cost struct {
	By       string `json:"by"`
	HitsLost uint64 `json:"hits_lost"`
}

// StoreHealth is how the store is doing.
type StoreHealth struct {
	// Kind is the store's Go type.
	Kind string `json:"kind"`
	// InProcess: the plugin's own memory store (nothing to fail, calls not
	// timed).
	InProcess bool   `json:"in_process"`
	Errors    uint64 `json:"errors"`
	Canceled  uint64 `json:"canceled"`
	// Outages counts the outages of a shared store, each ended by an epoch
	// bump (everything invalidated once).
	Outages       uint64 `json:"outages"`
	WritesRefused uint64 `json:"writes_refused"`
	Corrupt       uint64 `json:"corrupt_entries"`
	Collisions    uint64 `json:"collisions"`
	// Breaker is "open", "closed", or "" when the store has none.
	Breaker      string `json:"breaker,omitempty"`
	BreakerOpens uint64 `json:"breaker_opens"`
	// Calls timed since the console started, and their percentiles (upper
	// bounds of power-of-two buckets), in microseconds.
	Calls uint64 `json:"calls_timed"`
	P50us int64  `json:"p50_us"`
	P90us int64  `json:"p90_us"`
	P99us int64  `json:"p99_us"`
}

// Point is one interval of the chart. HitRatio is nil for an interval
// without reads.
type Point struct {
	Time          time.Time `json:"time"`
	HitRatio      *float64  `json:"hit_ratio"`
	DBQueriesPerS float64   `json:"db_queries_per_sec"`
}

// Advice is a shape the advisor flags.
type Advice struct {
	ShapeID  string  `json:"shape_id"`
	SQL      string  `json:"sql,omitempty"`
	Reads    uint64  `json:"reads"`
	HitRatio float64 `json:"hit_ratio"`
	// Problem says what was seen; Option is the option that would help
	// (Skip, Deny, TableTTL, or another Config field), Suggestion how.
	Problem    string `json:"problem"`
	Option     string `json:"option"`
	Suggestion string `json:"suggestion"`
}

// reasonWords says what each bypass reason means (README's Bypass reasons).
var reasonWords = map[plugin.Reason]string{
	plugin.ReasonTransaction:      "read inside a transaction: goes to the database",
	plugin.ReasonConnection:       "read on a dedicated connection (db.Connection)",
	plugin.ReasonWrite:            "a write sent as a query returning rows",
	plugin.ReasonNotSelect:        "nothing to cache (SET, SHOW, EXPLAIN, savepoints…)",
	plugin.ReasonLocking:          "FOR UPDATE / FOR SHARE",
	plugin.ReasonVolatile:         "calls a volatile or unknown function (declare stable ones in Config.StableFunctions)",
	plugin.ReasonCatalog:          "reads system catalogs: nothing invalidates them",
	plugin.ReasonUnknownTables:    "its tables could not all be determined",
	plugin.ReasonInto:             "SELECT … INTO",
	plugin.ReasonUnsupportedArg:   "an argument that cannot be encoded into a key",
	plugin.ReasonUnsupportedValue: "a result value the codec cannot encode",
	plugin.ReasonTooManyRows:      "more rows than Config.MaxRows",
	plugin.ReasonTooLarge:         "larger than Config.MaxBytes or the store accepts",
	plugin.ReasonPartialRead:      "the caller did not read the result to the end",
	plugin.ReasonHeld:             "a write to one of its tables was in flight",
	plugin.ReasonStoreError:       "the store failed the lookup",
	plugin.ReasonBumpFailed:       "a table whose invalidation did not reach the store",
	plugin.ReasonMultiStatement:   "several statements in one query",
	plugin.ReasonClosed:           "the plugin was closed",
	plugin.ReasonSkip:             "the Skip option",
	plugin.ReasonDenied:           "reads a table in Config.Deny",
	plugin.ReasonNotAllowed:       "reads a table not in Config.Allow",
	plugin.ReasonOptIn:            "Config.OptIn, and the statement did not ask",
	plugin.ReasonEmpty:            "no rows, and Config.SkipEmpty",
	plugin.ReasonBadOption:        "an invalid per-query option",
	plugin.ReasonReplicaBehind:    "read through a replica that lags",
	plugin.ReasonTempTable:        "reads a temporary table's name",
	plugin.ReasonReplicaLag:       "read through a replica just after a write",
	plugin.ReasonNoCatalog:        "the database's catalog has not been read yet (or cannot be, on another dialect without Config.WithoutCatalog)",
}

// deliberate are the bypass reasons the application asked for.
var deliberate = map[string]bool{
	string(plugin.ReasonSkip): true, string(plugin.ReasonDenied): true,
	string(plugin.ReasonNotAllowed): true, string(plugin.ReasonOptIn): true,
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (c *Console) shapeOf(s plugin.ShapeStats) Shape {
	out := Shape{
		ID: s.ID, SQL: s.SQL, Tables: s.Tables, Cacheable: s.Cacheable, Reason: string(s.Reason),
		Write: s.Write, Reads: s.Reads(), Hits: s.Hits, Misses: s.Misses, Stores: s.Stores,
		Bypasses: map[string]uint64{}, HitRatio: s.HitRatio(), Invalidated: s.Invalidated,
		InvalidatedBy: s.InvalidatedBy, BytesStored: s.Bytes, DBQueries: s.DBQueries(),
		Writes: s.Writes, LastSeen: s.LastSeen,
	}
	if out.Tables == nil {
		out.Tables = []string{}
	}
	if out.InvalidatedBy == nil {
		out.InvalidatedBy = map[string]uint64{}
	}
	for r, n := range s.Bypasses {
		out.Bypasses[string(r)] = n
	}
	if !s.Cacheable {
		out.Why = reasonWords[s.Reason]
	}
	if c.opts.HideSQL {
		out.SQL = ""
	}
	return out
}

// build makes the report from the plugin's figures and the samples.
func (c *Console) build() Report {
	st := c.p.Stats()
	snap := c.p.Shapes()
	rep := Report{
		Time: time.Now(), Since: c.since, Threshold: c.opts.Threshold, SQLHidden: c.opts.HideSQL,
		Shapes: []Shape{}, Never: []Shape{}, Tables: []Table{}, Advice: []Advice{},
		ShapesTracked: len(snap.Shapes), ShapesDropped: snap.Dropped,
	}
	rep.Totals = Totals{
		Hits: st.Hits, Misses: st.Misses, Stores: st.Stores, Coalesced: st.Coalesced,
		Bypasses: map[string]uint64{}, Invalidations: st.Invalidations,
		DBQueries: st.DBQueries(),
	}
	for r, n := range st.Bypasses {
		rep.Totals.Bypasses[string(r)] = n
	}
	rep.Totals.HitRatio = ratio(st.Hits, st.Hits+rep.Totals.DBQueries-countWrites(st.Bypasses)+st.Coalesced)

	shapes := make([]Shape, 0, len(snap.Shapes))
	for _, s := range snap.Shapes {
		shapes = append(shapes, c.shapeOf(s))
	}
	for i, s := range shapes {
		if i < c.opts.TopShapes {
			rep.Shapes = append(rep.Shapes, s)
		}
		if !s.Cacheable && !s.Write {
			rep.Never = append(rep.Never, s)
		}
	}
	sort.SliceStable(rep.Never, func(i, j int) bool { return rep.Never[i].DBQueries > rep.Never[j].DBQueries })
	if len(rep.Never) > c.opts.TopShapes {
		rep.Never = rep.Never[:c.opts.TopShapes]
	}
	rep.Tables = c.tables(shapes)
	rep.Advice = c.advise(shapes, rep.Tables)
	rep.Store = c.health(st, snap.Latency)
	rep.Series = c.series()
	return rep
}

func countWrites(b map[plugin.Reason]uint64) uint64 { return b[plugin.ReasonWrite] }

// tables adds up the shapes per table.
func (c *Console) tables(shapes []Shape) []Table {
	byName := map[string]*Table{}
	costs := map[string]map[string]uint64{}
	get := func(n string) *Table {
		t, ok := byName[n]
		if !ok {
			t = &Table{Name: n, CostliestWriters: []Cost{}}
			byName[n] = t
		}
		return t
	}
	for _, s := range shapes {
		for _, n := range s.Tables {
			t := get(n)
			if s.Write {
				t.Writes += s.Writes
				continue
			}
			t.Reads += s.Reads
			t.Hits += s.Hits
			t.Misses += s.Misses
			for by, k := range s.InvalidatedBy {
				if costs[n] == nil {
					costs[n] = map[string]uint64{}
				}
				costs[n][by] += k
			}
		}
	}
	rates := c.writeRates()
	out := make([]Table, 0, len(byName))
	for n, t := range byName {
		t.HitRatio = ratio(t.Hits, t.Reads)
		t.InvalidationsPerSec = rates[n]
		for by, k := range costs[n] {
			t.CostliestWriters = append(t.CostliestWriters, Cost{By: by, HitsLost: k})
		}
		sort.Slice(t.CostliestWriters, func(i, j int) bool {
			a, b := t.CostliestWriters[i], t.CostliestWriters[j]
			return a.HitsLost > b.HitsLost || a.HitsLost == b.HitsLost && a.By < b.By
		})
		if len(t.CostliestWriters) > 5 {
			t.CostliestWriters = t.CostliestWriters[:5]
		}
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Reads > out[j].Reads || out[i].Reads == out[j].Reads && out[i].Name < out[j].Name
	})
	return out
}

// advise flags the shapes read at least Options.MinReads times whose hit
// ratio is under the threshold, with the option that would help.
func (c *Console) advise(shapes []Shape, tables []Table) []Advice {
	// A table whose every judged cacheable shape is under the threshold
	// may be better denied as a whole.
	allLow := map[string]bool{}
	for _, s := range shapes {
		if !s.Cacheable || s.Reads < c.opts.MinReads {
			continue
		}
		for _, t := range s.Tables {
			low, seen := allLow[t]
			allLow[t] = (low || !seen) && s.HitRatio < c.opts.Threshold
		}
	}
	writes := map[string]uint64{}
	for _, t := range tables {
		writes[t.Name] = t.Writes
	}
	out := []Advice{}
	for _, s := range shapes {
		if !s.Cacheable || s.Reads < c.opts.MinReads || s.HitRatio >= c.opts.Threshold {
			continue
		}
		a := Advice{ShapeID: s.ID, SQL: s.SQL, Reads: s.Reads, HitRatio: s.HitRatio}
		var bypassed uint64
		top, topN := "", uint64(0)
		for r, n := range s.Bypasses {
			if plugin.AfterMiss(plugin.Reason(r)) || deliberate[r] {
				continue
			}
			bypassed += n
			if n > topN || n == topN && r < top {
				top, topN = r, n
			}
		}
		tables := strings.Join(s.Tables, ", ")
		switch {
		case bypassed*2 > s.Reads:
			a.Problem = fmt.Sprintf("cacheable, but bypassed %d of %d reads (mostly %s: %s)", bypassed, s.Reads, top, reasonWords[plugin.Reason(top)])
			a.Option, a.Suggestion = bypassAdvice(top)
		case s.Invalidated*2 >= s.Misses && s.Invalidated > 0:
			by := topKey(s.InvalidatedBy)
			a.Problem = fmt.Sprintf("hit ratio %.0f%%: %d of its %d misses found an entry that writes (%s) had invalidated", 100*s.HitRatio, s.Invalidated, s.Misses, by)
			deny := len(s.Tables) == 1 && allLow[s.Tables[0]] && writes[s.Tables[0]] > 0
			if deny {
				a.Option = "Deny"
				a.Suggestion = fmt.Sprintf("every cached query of %s is invalidated before it pays off: Config{Deny: []string{%q}} stops storing it (writes still invalidate)", tables, s.Tables[0])
			} else {
				a.Option = "Skip"
				a.Suggestion = "its tables are written more often than it is read again: db.Clauses(plugin.Skip()) on this query saves a store per write"
			}
		case s.Stores > 0:
			a.Problem = fmt.Sprintf("hit ratio %.0f%%: %d results stored, rarely read again before they expired or were evicted (few repeats of the same arguments)", 100*s.HitRatio, s.Stores)
			a.Option = "TableTTL"
			a.Suggestion = fmt.Sprintf("if %s may be served older (writes still invalidate it at once), a longer Config.TableTTL keeps entries until they are read again; if its arguments never repeat, db.Clauses(plugin.Skip())", tables)
		default:
			a.Problem = fmt.Sprintf("hit ratio %.0f%%", 100*s.HitRatio)
			a.Option = "Skip"
			a.Suggestion = "nothing it stores is read again: db.Clauses(plugin.Skip()) on this query"
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reads > out[j].Reads })
	return out
}

func bypassAdvice(reason string) (option, suggestion string) {
	switch plugin.Reason(reason) {
	case plugin.ReasonTransaction:
		return "Skip", "it is read inside transactions, where the cache steps aside: read it before the transaction if a committed value will do, or mark it db.Clauses(plugin.Skip()) to say so"
	case plugin.ReasonHeld:
		return "Skip", "writes to its tables are in flight whenever it is read (long or frequent write transactions): keep them short, or db.Clauses(plugin.Skip()) on this query"
	case plugin.ReasonTooLarge, plugin.ReasonTooManyRows:
		return "MaxBytes", "its results are larger than the cache keeps: paginate it, raise Config.MaxBytes / MaxRows, or db.Clauses(plugin.Skip())"
	case plugin.ReasonStoreError, plugin.ReasonBumpFailed:
		return "Store", "the store is failing: see the store's health below"
	case plugin.ReasonReplicaLag, plugin.ReasonReplicaBehind:
		return "ReplicaWindow", "read through replicas just after writes: route it to the source (dbresolver.Write) or Skip it"
	}
	return "Skip", "db.Clauses(plugin.Skip()) if it cannot be cached as it is used"
}

func topKey(m map[string]uint64) string {
	top, n := "", uint64(0)
	for k, v := range m {
		if v > n || v == n && k < top {
			top, n = k, v
		}
	}
	return top
}
