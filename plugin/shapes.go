package plugin

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
)

// Per-shape figures, for the console (package console). Nothing is
// collected until CollectShapes is called. Then each plan (one per SQL
// text, plan.go) gets a *shapeStat, shared by every SQL text of the same
// shape (the SQL with its literals replaced by "?"), allocated once when
// the plan is made. A hit adds one atomic increment to what it already
// does: the shape's hit and miss counters are a tableCount appended to the
// plan's per-table counts. Bypasses, stores and invalidated entries are
// counted on their own paths, by atomic adds (and a per-shape lock for
// the tables that invalidated an entry, on the miss path only). No map,
// lock or allocation is added to the hit path.

// DefaultMaxShapes bounds the shapes CollectShapes keeps when given 0.
const DefaultMaxShapes = 500

// maxShapeSQL bounds the SQL text kept per shape (bytes).
const maxShapeSQL = 2000

// shapeReasons indexes the reasons a shape counts bypasses by.
var shapeReasons = []Reason{
	ReasonTransaction, ReasonConnection, ReasonWrite, ReasonNotSelect, ReasonLocking,
	ReasonVolatile, ReasonCatalog, ReasonUnknownTables, ReasonInto, ReasonUnsupportedArg,
	ReasonUnsupportedValue, ReasonTooManyRows, ReasonTooLarge, ReasonPartialRead, ReasonHeld,
	ReasonStoreError, ReasonBumpFailed, ReasonMultiStatement, ReasonClosed, ReasonSkip,
	ReasonDenied, ReasonNotAllowed, ReasonOptIn, ReasonEmpty, ReasonBadOption,
	ReasonReplicaBehind, ReasonTempTable, ReasonReplicaLag, ReasonNoCatalog,
}

var shapeReasonIndex = func() map[Reason]int {
	m := make(map[Reason]int, len(shapeReasons))
	for i, r := range shapeReasons {
		m[r] = i
	}
	return m
}()

// afterMiss are the reasons counted for a miss whose result was not
// stored: such a read is already counted in Misses.
var afterMiss = map[Reason]bool{
	ReasonTooManyRows: true, ReasonTooLarge: true, ReasonUnsupportedValue: true,
	ReasonPartialRead: true, ReasonEmpty: true,
}

// AfterMiss reports whether a bypass of reason r is counted for a miss
// whose result was not stored (too_many_rows, too_large,
// unsupported_value, partial_read, empty): that read is in Misses too.
func AfterMiss(r Reason) bool { return afterMiss[r] }

// dbQueries counts the statements of the read path that went to the
// database: misses, and bypasses but those of a miss (counted with it)
// and bad options (which fail first); writes are added by the caller.
func dbQueries(misses uint64, bypasses map[Reason]uint64) uint64 {
	n := misses
	for r, c := range bypasses {
		if !afterMiss[r] && r != ReasonBadOption {
			n += c
		}
	}
	return n
}

// DBQueries counts the statements the read path sent to the database:
// Misses, and Bypasses but those of a miss (AfterMiss, counted with it) and
// bad_option (which fails first). Writes sent as queries (reason write)
// are included; writes sent with Exec are not counted in Stats.
func (s Stats) DBQueries() uint64 { return dbQueries(s.Misses, s.Bypasses) }

// shapeStat counts the statements of one shape.
type shapeStat struct {
	tc        tableCount // hits and misses (in the plan's counts)
	id        string
	sql       string
	tables    []string // tables read (cacheable reads) or named
	cacheable bool
	reason    Reason
	write     bool
	bypass    [nShapeReasons]atomic.Uint64
	other     atomic.Uint64 // bypasses of a reason not in shapeReasons
	stores    atomic.Uint64
	bytes     atomic.Uint64
	stale     atomic.Uint64 // entries found invalidated
	writes    atomic.Uint64
	seen      atomic.Int64 // unix nanoseconds of the last statement seen
	lastReads atomic.Uint64
	mu        sync.Mutex
	by        map[string]uint64 // entries invalidated, by what invalidated them
}

// nShapeReasons is len(shapeReasons).
const nShapeReasons = 29

func init() {
	if len(shapeReasons) != nShapeReasons {
		panic("plugin: shapeReasons and shapeStat.bypass differ in length")
	}
}

// bypassed counts a bypass of the shape (s may be nil: not collecting).
func (s *shapeStat) bypassed(r Reason) {
	if s == nil {
		return
	}
	if i, ok := shapeReasonIndex[r]; ok {
		s.bypass[i].Add(1)
	} else {
		s.other.Add(1)
	}
	s.seen.Store(time.Now().UnixNano())
}

// stored counts a result of the shape the store accepted (s may be nil).
func (s *shapeStat) stored(e *serializer.Entry) {
	if s == nil {
		return
	}
	s.stores.Add(1)
	s.bytes.Add(uint64(e.Size()))
	s.seen.Store(time.Now().UnixNano())
}

// wrote counts a write of the shape (s may be nil).
func (s *shapeStat) wrote() {
	if s == nil {
		return
	}
	s.writes.Add(1)
	s.seen.Store(time.Now().UnixNano())
}

// noteStale counts an entry found under the probe's key whose versions
// are not the current ones (a write invalidated it), when collecting. The tags whose
// versions differ are what invalidated it.
func noteStale(pr *probe, e *serializer.Entry) {
	s := pr.pl.stat
	if s == nil || e == nil || pr.fresh(e) {
		return // (not collecting, or an entry of other scan types)
	}
	s.stale.Add(1)
	var by []string
	if len(e.Versions) == len(pr.versions) {
		for i := range e.Versions {
			if !core.FreshAt(e.Versions, pr.versions, i, pr.loose-1, pr.marker) {
				by = append(by, tagLabel(pr.tags[i]))
			}
		}
	}
	if len(by) == 0 {
		by = append(by, "?")
	}
	s.mu.Lock()
	if s.by == nil {
		s.by = map[string]uint64{}
	}
	for _, b := range by {
		if len(s.by) < 64 || s.by[b] > 0 {
			s.by[b]++
		}
	}
	s.mu.Unlock()
}

// tagLabel names a tag without the value a row tag holds: "users",
// "users rows by id", "users rows (any)", "*" (everything).
func tagLabel(tag string) string {
	if !core.IsRowTag(tag) {
		return tag
	}
	t := core.TableOf(tag)
	rest := tag[len(t)+1:]
	if rest == "*" {
		return t + " rows (any)"
	}
	if i := strings.IndexByte(rest, '='); i >= 0 {
		return t + " rows by " + rest[:i]
	}
	return t + " rows"
}

// shapeSet holds the shapes collected, at most max of them: when a new one
// comes and the set is full, the one read least is dropped and its figures
// go to other.
type shapeSet struct {
	max     int
	mu      sync.Mutex
	byID    map[string]*shapeStat
	other   ShapeStats
	dropped uint64
}

// CollectShapes starts collecting per-shape figures (what the console
// shows), for at most max shapes (0: DefaultMaxShapes): when more are seen,
// the one read least is dropped, and its figures are added to
// ShapesSnapshot.Other. Calling it again while collecting changes nothing.
// It also times the calls to a store that is not in-process
// (ShapesSnapshot.Latency). A plan (plan.go) made for another collection,
// or for none, is made again when next used, so every statement from now on
// is counted.
func (p *Plugin) CollectShapes(max int) error {
	if err := p.setup(); err != nil {
		return err
	}
	if max <= 0 {
		max = DefaultMaxShapes
	}
	if !p.shapes.CompareAndSwap(nil, &shapeSet{max: max, byID: map[string]*shapeStat{}}) {
		return nil
	}
	p.latency.SetOn(true)
	return nil
}

// StopShapes stops collecting per-shape figures and forgets them.
func (p *Plugin) StopShapes() {
	if p.shapes.Swap(nil) == nil {
		return
	}
	p.latency.SetOn(false)
}

// attachShape gives a new plan its shape's counters when collecting.
func (p *Plugin) attachShape(sql string, pl *plan) {
	set := p.shapes.Load()
	if set == nil {
		return
	}
	pl.shapes, pl.stat = set, set.shapeFor(p, sql, pl)
	if pl.cacheable {
		pl.counts = append(slices.Clip(pl.counts), &pl.stat.tc)
	}
}

func (set *shapeSet) shapeFor(p *Plugin, sql string, pl *plan) *shapeStat {
	shape := ShapeSQL(p.dialName, sql)
	sum := sha256.Sum256([]byte(shape))
	id := base64.RawURLEncoding.EncodeToString(sum[:9])
	set.mu.Lock()
	defer set.mu.Unlock()
	if s, ok := set.byID[id]; ok {
		return s
	}
	if len(set.byID) >= set.max {
		set.dropLeast()
	}
	s := &shapeStat{id: id, sql: shape, cacheable: pl.cacheable, reason: pl.reason, write: pl.write}
	if len(s.sql) > maxShapeSQL {
		s.sql = s.sql[:maxShapeSQL] + "…"
	}
	switch {
	case pl.write:
		for _, t := range pl.writeTags {
			if !core.IsRowTag(t) {
				s.tables = append(s.tables, t)
			}
		}
	case pl.cacheable:
		for _, t := range pl.tags {
			if t != core.Global && !core.IsRowTag(t) {
				s.tables = append(s.tables, t)
			}
		}
	default:
		for _, t := range invalidation.Classify(p.dialect, sql).Tables {
			s.tables = append(s.tables, invalidation.TableName(t))
		}
	}
	s.seen.Store(time.Now().UnixNano())
	set.byID[id] = s
	return s
}

// dropLeast drops the shape read (or written) least. Plans that still
// point at it keep counting into it, unseen.
func (set *shapeSet) dropLeast() {
	var least *shapeStat
	var n uint64
	for _, s := range set.byID {
		if r := s.load(); least == nil || r < n {
			least, n = s, r
		}
	}
	if least == nil {
		return
	}
	delete(set.byID, least.id)
	set.dropped++
	set.other.add(least.snapshot())
}

// ShapeStats are the figures of one query shape: the statements whose SQL
// is the same once its literals are replaced by "?" (arguments are never
// part of a shape).
type ShapeStats struct {
	// ID names the shape without its SQL (a hash of it).
	ID string
	// SQL is the shape: the SQL text, whitespace collapsed, comments
	// dropped, literals and lists of placeholders replaced by "?".
	SQL string
	// Tables are the tables the shape reads (or writes, for a write).
	Tables []string
	// Cacheable is whether the plugin may serve and store it; Reason says
	// why not when it is not (as Explain does).
	Cacheable bool
	Reason    Reason
	// Write: the statement may change data (its tables are invalidated).
	Write bool
	// Hits and Misses count as Stats does; Stores the results stored, and
	// Bytes their size in memory (serializer.Entry.Size).
	Hits, Misses, Stores, Bytes uint64
	// Bypasses counts by reason the statements of the shape that the cache
	// neither served nor stored (as Stats.Bypasses does).
	Bypasses map[Reason]uint64
	// Invalidated counts entries of the shape found invalidated by a write
	// when looked up; InvalidatedBy says by what: a table, "t rows by c"
	// (row-level invalidation: a write to some rows of t, by column c; the
	// values are never shown), "t rows (any)", or "*" (everything: DDL, a
	// write of unknown tables, Flush, the epoch after an outage).
	Invalidated   uint64
	InvalidatedBy map[string]uint64
	// Writes counts the statements of a write shape that ran.
	Writes uint64
	// LastSeen is when a statement of the shape was last seen (to the
	// second for hits: a hit does not read the clock; Shapes notes the
	// time when it finds that the shape was read since its last call).
	LastSeen time.Time
}

// Reads counts the reads of the shape: hits, misses, and reads bypassed
// before they were looked up or served.
func (s ShapeStats) Reads() uint64 {
	n := s.Hits + s.Misses
	for r, c := range s.Bypasses {
		if !afterMiss[r] && r != ReasonWrite {
			n += c
		}
	}
	return n
}

// DBQueries counts the statements of the shape that went to the database:
// misses, bypasses (but those of a miss, counted with it, and bad
// options, which fail first), and writes.
func (s ShapeStats) DBQueries() uint64 {
	return dbQueries(s.Misses, s.Bypasses) - s.Bypasses[ReasonWrite] + s.Writes
}

// HitRatio is Hits over Reads (0 without reads).
func (s ShapeStats) HitRatio() float64 {
	if r := s.Reads(); r > 0 {
		return float64(s.Hits) / float64(r)
	}
	return 0
}

func (s ShapeStats) traffic() uint64 { return s.Reads() + s.Writes }

func (s *ShapeStats) add(o ShapeStats) {
	s.Hits += o.Hits
	s.Misses += o.Misses
	s.Stores += o.Stores
	s.Bytes += o.Bytes
	s.Invalidated += o.Invalidated
	s.Writes += o.Writes
	for r, c := range o.Bypasses {
		if s.Bypasses == nil {
			s.Bypasses = map[Reason]uint64{}
		}
		s.Bypasses[r] += c
	}
	for b, c := range o.InvalidatedBy {
		if s.InvalidatedBy == nil {
			s.InvalidatedBy = map[string]uint64{}
		}
		s.InvalidatedBy[b] += c
	}
	if o.LastSeen.After(s.LastSeen) {
		s.LastSeen = o.LastSeen
	}
}

// load is the shape's statements so far (hits, misses, bypasses and
// writes), read without a snapshot.
func (s *shapeStat) load() uint64 {
	n := s.tc.hits.Load() + s.tc.misses.Load() + s.writes.Load() + s.other.Load()
	for i := range s.bypass {
		n += s.bypass[i].Load()
	}
	return n
}

func (s *shapeStat) snapshot() ShapeStats {
	out := ShapeStats{
		ID: s.id, SQL: s.sql, Tables: slices.Clone(s.tables), Cacheable: s.cacheable, Reason: s.reason, Write: s.write,
		Hits: s.tc.hits.Load(), Misses: s.tc.misses.Load(), Stores: s.stores.Load(), Bytes: s.bytes.Load(),
		Invalidated: s.stale.Load(), Writes: s.writes.Load(),
		Bypasses: map[Reason]uint64{}, InvalidatedBy: map[string]uint64{},
	}
	for i := range s.bypass {
		if n := s.bypass[i].Load(); n > 0 {
			out.Bypasses[shapeReasons[i]] = n
		}
	}
	if n := s.other.Load(); n > 0 {
		out.Bypasses["other"] = n
	}
	s.mu.Lock()
	for b, c := range s.by {
		out.InvalidatedBy[b] = c
	}
	s.mu.Unlock()
	out.LastSeen = time.Unix(0, s.seen.Load())
	return out
}

// ShapesSnapshot is what CollectShapes collected.
type ShapesSnapshot struct {
	// Collecting is false when CollectShapes was not called (the rest is
	// then empty).
	Collecting bool
	// Shapes are the shapes kept, by traffic (reads and writes), most first.
	Shapes []ShapeStats
	// Dropped counts the shapes dropped to stay within the bound; Other
	// adds up their figures (as they were when dropped).
	Dropped uint64
	Other   ShapeStats
	// Latency is the histogram of store call durations (calls to a store
	// that is not in-process only).
	Latency StoreLatency
}

// StoreLatency is a histogram of store call durations: Counts[i] calls took
// less than Bounds[i] (and at least Bounds[i-1]); the last bound is the
// largest time.Duration.
type StoreLatency struct {
	// InProcess: the store is the plugin's in-process one, whose calls are
	// not timed.
	InProcess bool
	Calls     uint64
	Bounds    []time.Duration
	Counts    []uint64
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q ≤ 1) of the calls, or 0 without calls.
func (l StoreLatency) Quantile(q float64) time.Duration {
	if l.Calls == 0 {
		return 0
	}
	want := uint64(q*float64(l.Calls) + 0.5)
	if want < 1 {
		want = 1
	}
	var n uint64
	for i, c := range l.Counts {
		n += c
		if n >= want {
			return l.Bounds[i]
		}
	}
	return l.Bounds[len(l.Bounds)-1]
}

// Shapes returns the per-shape figures collected since CollectShapes.
func (p *Plugin) Shapes() ShapesSnapshot {
	set := p.shapes.Load()
	if set == nil {
		return ShapesSnapshot{}
	}
	out := ShapesSnapshot{Collecting: true}
	now := time.Now()
	set.mu.Lock()
	stats := make([]*shapeStat, 0, len(set.byID))
	for _, s := range set.byID {
		stats = append(stats, s)
	}
	out.Dropped, out.Other = set.dropped, set.other
	out.Other.Bypasses, out.Other.InvalidatedBy = cloneMap(set.other.Bypasses), cloneMap(set.other.InvalidatedBy)
	set.mu.Unlock()
	for _, s := range stats {
		sn := s.snapshot()
		if r := sn.Hits + sn.Misses; s.lastReads.Swap(r) != r {
			s.seen.Store(now.UnixNano())
			sn.LastSeen = now
		}
		out.Shapes = append(out.Shapes, sn)
	}
	sort.Slice(out.Shapes, func(i, j int) bool {
		a, b := out.Shapes[i].traffic(), out.Shapes[j].traffic()
		if a != b {
			return a > b
		}
		return out.Shapes[i].SQL < out.Shapes[j].SQL
	})
	out.Latency.InProcess = p.values != nil
	counts := p.latency.Counts()
	for i, c := range counts {
		out.Latency.Bounds = append(out.Latency.Bounds, core.LatencyBound(i))
		out.Latency.Counts = append(out.Latency.Counts, c)
		out.Latency.Calls += c
	}
	return out
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ShapeSQL returns the shape of a statement: sql with runs of whitespace
// collapsed to one space, comments dropped, string, number and
// dollar-quoted literals replaced by "?", and lists of placeholders
// ("?, ?, ?", "$1, $2") by their first and "…". Quoted identifiers are
// kept ("…" only outside MySQL, where it may quote a string). dialect is
// GORM's dialector name. A literal the scanner cannot end is hidden to the
// end of the text: a shape never shows a value.
func ShapeSQL(dialect, sql string) string {
	mysql := dialect == "mysql"
	var b strings.Builder
	b.Grow(len(sql))
	space := false
	emit := func(s string) {
		if space && b.Len() > 0 && !strings.HasSuffix(b.String(), "(") {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s)
	}
	isIdent := func(c byte) bool {
		return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			space = true
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			space = true
		case c == '#' && mysql:
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			space = true
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				i = len(sql)
			} else {
				i += end + 4
			}
			space = true
		case c == '\'' || c == '"' && mysql:
			i = skipQuoted(sql, i, c)
			emit("?")
		case c == '"' || c == '`' || c == '[':
			close := c
			if c == '[' {
				close = ']'
			}
			j := strings.IndexByte(sql[i+1:], close)
			if j < 0 {
				emit("?")
				i = len(sql)
				break
			}
			emit(sql[i : i+j+2])
			i += j + 2
		case c == '$' && i+1 < len(sql) && (sql[i+1] == '$' || sql[i+1] >= 'a' && sql[i+1] <= 'z' || sql[i+1] >= 'A' && sql[i+1] <= 'Z' || sql[i+1] == '_'):
			// a dollar quote $tag$…$tag$, or an identifier with a $
			j := i + 1
			for j < len(sql) && sql[j] != '$' && isIdent(sql[j]) {
				j++
			}
			if j < len(sql) && sql[j] == '$' {
				tag := sql[i : j+1]
				end := strings.Index(sql[j+1:], tag)
				if end < 0 {
					i = len(sql)
				} else {
					i = j + 1 + end + len(tag)
				}
				emit("?")
				break
			}
			emit(sql[i:j])
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i
			for j < len(sql) && (isIdent(sql[j]) || sql[j] == '.' ||
				(sql[j] == '+' || sql[j] == '-') && j > i && (sql[j-1] == 'e' || sql[j-1] == 'E')) {
				j++
			}
			emit("?")
			i = j
		case isIdent(c):
			j := i
			for j < len(sql) && isIdent(sql[j]) {
				j++
			}
			if j < len(sql) && sql[j] == '\'' && j-i <= 2 {
				// E'…', X'…', N'…', B'…', U&'…' prefixes: all literal
				i = skipQuoted(sql, j, '\'')
				emit("?")
				break
			}
			emit(sql[i:j])
			i = j
		default:
			j := i + 1
			if (c == '?' || c == '@' || c == ':') && j < len(sql) {
				for j < len(sql) && isIdent(sql[j]) {
					j++
				}
			}
			if c == '$' {
				for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
					j++
				}
			}
			tok := sql[i:j]
			if c == ',' || c == ')' {
				space = false
			}
			emit(tok)
			if c == ',' {
				space = true
			}
			i = j
		}
	}
	return collapseLists(b.String())
}

// skipQuoted returns the index after the literal opened by q at i ('…'
// with ” and backslash escapes: a backslash that is not an escape only
// hides more), or len(sql) when it does not end.
func skipQuoted(sql string, i int, q byte) int {
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

// valuesList matches a list of two parenthesised lists of placeholders or
// more (the rows of a multi-row INSERT), once collapsed by placeholderList.
var valuesList = regexp.MustCompile(`\((\?|\$[0-9]+|@[A-Za-z_][A-Za-z0-9_]*|:[A-Za-z_][A-Za-z0-9_]*)(, …)?\)(, \((\?|\$[0-9]+|@[A-Za-z_][A-Za-z0-9_]*|:[A-Za-z_][A-Za-z0-9_]*)(, …)?\))+`)

// placeholderList matches a list of two placeholders or more.
var placeholderList = regexp.MustCompile(`(\?|\$[0-9]+|@[A-Za-z_][A-Za-z0-9_]*|:[A-Za-z_][A-Za-z0-9_]*)(, (\?|\$[0-9]+|@[A-Za-z_][A-Za-z0-9_]*|:[A-Za-z_][A-Za-z0-9_]*))+`)

// collapseLists replaces each list of placeholders by its first and "…".
func collapseLists(s string) string {
	if !strings.Contains(s, ", ") {
		return s
	}
	s = placeholderList.ReplaceAllString(s, "$1, …")
	return valuesList.ReplaceAllString(s, "($1$2), …")
}
