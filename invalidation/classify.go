package invalidation

import (
	"slices"
	"strings"
	"sync"
)

// state is the reusable memory of one Classify call.
type state struct {
	lex lexer
	p   parser
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// rank orders kinds for combining several statements: the highest wins.
func rank(k Kind) int {
	switch k {
	case Read:
		return 0
	case Neutral:
		return 1
	case Write:
		return 2
	case Unknown:
		return 3
	}
	return 4 // Schema
}

// Classify tokenizes and parses sql in dialect d and reports what it does.
// It never panics and is deterministic: any input, even garbage or binary,
// returns a Statement. Empty SQL (only spaces and comments) is Neutral.
// Input that cannot be tokenized (an unterminated string, quoted identifier
// or comment) is Unknown and not Complete.
//
// Several statements separated by ";" are combined: Tables, Written and
// Functions are merged, the flags are OR-ed, Complete is AND-ed, and the
// strongest kind wins in the order Schema > Unknown > Write > Neutral > Read.
func Classify(d Dialect, sql string) Statement {
	st := statePool.Get().(*state)
	defer statePool.Put(st)

	st.lex = lexer{src: sql, d: d, toks: st.lex.toks[:0]}
	st.lex.tokenize()
	toks := st.lex.toks

	p := &st.p
	*p = parser{
		d: d, src: sql, toks: toks,
		tables:  p.tables[:0],
		written: p.written[:0],
		funcs:   p.funcs[:0],
		ctes:    p.ctes[:0],
	}

	res := Statement{Kind: Neutral, Complete: true}
	first := true
	for start := 0; start < len(toks); {
		end := start
		for end < len(toks) && toks[end].kind != tSemi {
			end++
		}
		if end > start {
			p.pos, p.end, p.write, p.planOnly, p.ctes, p.depth = start, end, false, false, p.ctes[:0], 0
			if tc := p.txControl(); tc != TxNone {
				res.Tx = tc
			}
			funcs := len(p.funcs)
			k := p.statement()
			if k == Neutral && !p.planOnly && p.mayWrite(p.funcs[funcs:]) {
				// SET @x = f(), EXPLAIN ANALYZE SELECT f(), DECLARE … FOR
				// SELECT f(), COPY (SELECT f()) TO: f runs, and may write
				// anything, as it may in a read.
				k = Write
				p.markIncomplete()
			}
			res.Statements++
			if first || rank(k) > rank(res.Kind) {
				res.Kind = k
			}
			first = false
		}
		start = end + 1
	}
	// A string whose end depends on a session setting may hide anything
	// (MySQL under NO_BACKSLASH_ESCAPES reads 'C:\' OR … as ending early):
	// as for text that does not lex, the statement may do anything.
	if (st.lex.bad || st.lex.ambiguous || p.tooDeep) && rank(res.Kind) < rank(Unknown) {
		res.Kind = Unknown
	}
	if st.lex.bad || st.lex.ambiguous || res.Kind == Unknown || res.Kind == Read && p.seqRead {
		p.incomplete = true
	}
	res.Complete = !p.incomplete
	res.Locking = p.locking
	res.Returning = p.returning
	res.Into = p.into
	res.Catalog = p.catalog
	res.Tables = sortedSet(p.tables)
	res.Written = sortedSet(p.written)
	res.Functions = sortedSet(p.funcs)

	// Do not keep large buffers alive in the pool.
	if cap(st.lex.toks) > 4096 {
		st.lex.toks = nil
	}
	st.p = parser{tables: p.tables[:0], written: p.written[:0], funcs: p.funcs[:0], ctes: p.ctes[:0]}
	return res
}

// mayWrite reports whether one of funcs may write: a function that
// [FunctionKind] does not know.
func (p *parser) mayWrite(funcs []string) bool {
	for _, f := range funcs {
		if FunctionKind(p.d, f) == FuncUnknown {
			return true
		}
	}
	return false
}

// sortedSet returns a new sorted, deduplicated copy of s (nil when empty).
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	s = slices.Compact(s)
	return slices.Clone(s)
}

// statement classifies the statement toks[p.pos:p.end].
func (p *parser) statement() Kind {
	t := p.peek()
	if t.kind == tLParen {
		p.queryStatement()
		return p.dmlKind()
	}
	if t.kind != tWord {
		p.markIncomplete()
		return Unknown
	}
	switch t.kw {
	case kwSelect, kwWith, kwValues, kwTable, kwInsert, kwReplace, kwUpsert, kwUpdate, kwDelete, kwMerge:
		p.queryStatement()
		return p.dmlKind()
	case kwBegin, kwCommit, kwEnd, kwRollback, kwAbort, kwSavepoint, kwRelease, kwXa,
		kwShow, kwListen, kwUnlisten, kwNotify, kwDeallocate, kwUse, kwDiscard,
		kwCheckpoint, kwFetch, kwMove, kwClose, kwUnlock, kwHelp, kwGet, kwReset, kwPrepare:
		return Neutral
	case kwStart:
		if p.peekAt(1).is(kwTransaction) {
			return Neutral
		}
	case kwSet:
		p.next()
		p.scan(false)
		p.rest()
		return Neutral
	case kwDeclare:
		for t := p.peek(); t.kind != tEOF && !t.is(kwFor); t = p.peek() {
			p.next()
		}
		if p.accept(kwFor) && p.startsQuery() {
			p.queryStatement()
		}
		return Neutral
	case kwLock:
		p.lockTables()
		return Neutral
	case kwExplain, kwDescribe, kwDesc:
		return p.explain()
	case kwAnalyze, kwAnalyse:
		if k := p.peekAt(1); k.kind == tLParen || k.kind == tWord && (k.kw == kwSelect || k.kw == kwWith ||
			k.kw == kwInsert || k.kw == kwUpdate || k.kw == kwDelete || k.kw == kwReplace || k.kw == kwValues) {
			if k.kind == tLParen && !p.parenStartsQueryAt(1) {
				break // PostgreSQL ANALYZE (VERBOSE) t
			}
			// MariaDB: ANALYZE <statement> runs the statement.
			return p.explain()
		}
		p.maintenance()
		return Schema
	case kwPragma:
		return p.pragma()
	case kwCopy:
		return p.copy()
	case kwLoad:
		p.load()
		return Schema
	case kwCreate, kwAlter, kwDrop:
		p.ddl()
		return Schema
	case kwTruncate:
		p.next()
		p.accept(kwTable)
		p.nameList(true)
		return Schema
	case kwRename:
		p.next()
		p.accept(kwTable)
		for {
			from, to, ok := p.targetName()
			if !ok {
				p.markIncomplete()
				break
			}
			p.addTable(from, to, true)
			if !p.accept(kwTo) && !p.accept0(tComma) {
				break
			}
		}
		p.rest()
		return Schema
	case kwRefresh:
		p.next()
		for t := p.peek(); t.kind == tWord; t = p.peek() {
			w := strings.ToLower(p.text(t))
			if w != "materialized" && w != "view" && w != "concurrently" {
				break
			}
			p.next()
		}
		p.nameList(true)
		return Schema
	case kwComment:
		p.comment()
		return Schema
	case kwVacuum, kwReindex, kwCluster, kwOptimize, kwRepair, kwCheck:
		p.maintenance()
		return Schema
	case kwCall, kwDo, kwGrant, kwRevoke, kwAttach, kwDetach, kwFlush, kwSecurity,
		kwImport, kwReassign, kwInstall, kwUninstall, kwHandler:
		p.markIncomplete()
		return Schema
	}
	p.markIncomplete()
	return Unknown
}

// parenStartsQueryAt is parenStartsQuery for the "(" k tokens ahead.
func (p *parser) parenStartsQueryAt(k int) bool {
	p.pos += k
	ok := p.parenStartsQuery()
	p.pos -= k
	return ok
}

// queryStatement parses a query or DML statement to its end; a stray ")" is
// reported and skipped.
func (p *parser) queryStatement() {
	if p.peek().kind == tLParen {
		p.scan(true)
	} else {
		p.query()
	}
	p.rest()
}

// rest scans whatever follows the part of a statement that was understood,
// reporting stray ")" as incomplete.
func (p *parser) rest() {
	for p.peek().kind != tEOF {
		if p.peek().kind == tRParen {
			p.markIncomplete()
			p.next()
			continue
		}
		p.scan(true)
	}
}

func (p *parser) dmlKind() Kind {
	if p.write {
		return Write
	}
	return Read
}

// explain handles EXPLAIN / DESCRIBE / DESC, and MariaDB's ANALYZE <stmt>.
// A plain EXPLAIN is Neutral (its tables are reported, nothing is written).
// EXPLAIN ANALYZE runs the statement: it has the inner statement's kind,
// except that an analysed read is Neutral, since its output (a plan with
// timings) must not be cached.
func (p *parser) explain() Kind {
	analyze := p.isKw(kwAnalyze) || p.isKw(kwAnalyse)
	p.next()
	for {
		t := p.peek()
		switch {
		case t.is(kwAnalyze), t.is(kwAnalyse):
			analyze = true
			p.next()
			continue
		case t.is(kwVerbose), t.is(kwExtended), t.is(kwPartitions):
			p.next()
			continue
		case t.is(kwQuery) && p.peekAt(1).is(kwPlan):
			p.pos += 2
			continue
		case t.is(kwFormat):
			p.next()
			if p.peek().kind == tEq {
				p.next()
			}
			p.next()
			continue
		case t.kind == tLParen && !p.parenStartsQuery():
			if p.explainOptions() {
				analyze = true
			}
			continue
		}
		break
	}
	t := p.peek()
	if t.kind == tLParen || t.kind == tWord && (p.startsQuery() || p.startsDML()) {
		if !p.enter() {
			return Unknown
		}
		defer p.leave()
		mark := len(p.written)
		k := p.statement()
		if !analyze {
			p.written = p.written[:mark]
			p.planOnly = true
			return Neutral
		}
		if k == Read {
			return Neutral
		}
		return k
	}
	if analyze {
		p.markIncomplete()
		return Unknown
	}
	// MySQL EXPLAIN t / DESCRIBE t [column]
	if from, to, ok := p.targetName(); ok {
		p.addTable(from, to, false)
	}
	return Neutral
}

// explainOptions parses PostgreSQL's EXPLAIN (option [value], …) and reports
// whether ANALYZE is on.
func (p *parser) explainOptions() bool {
	on := false
	p.next() // (
	for t := p.peek(); t.kind != tEOF && t.kind != tRParen; t = p.peek() {
		p.next()
		if t.is(kwAnalyze) || t.is(kwAnalyse) {
			on = true
			if v := p.peek(); v.kind == tWord || v.kind == tNumber || v.kind == tString {
				switch strings.ToLower(strings.Trim(p.text(v), "'")) {
				case "false", "off", "0", "no":
					on = false
				}
			}
		}
	}
	p.closeParen()
	return on
}

// lockTables handles PostgreSQL LOCK [TABLE] and MySQL LOCK TABLE(S): the
// tables are reported, nothing is written.
func (p *parser) lockTables() {
	p.next()
	p.locking = true
	if !p.accept(kwTable) {
		p.accept(kwTables)
	}
	for {
		p.accept(kwOnly)
		from, to, ok := p.targetName()
		if !ok {
			p.markIncomplete()
			return
		}
		p.addTable(from, to, false)
		for t := p.peek(); t.kind != tEOF && t.kind != tComma; t = p.peek() {
			p.next()
		}
		if !p.accept0(tComma) {
			return
		}
	}
}

func (p *parser) accept0(k tokKind) bool {
	if p.peek().kind == k {
		p.next()
		return true
	}
	return false
}

// nameList parses a comma-separated list of table names (with ONLY, IF
// [NOT] EXISTS and PostgreSQL's "*") and records them.
func (p *parser) nameList(written bool) {
	for {
		p.skipIfExists()
		p.accept(kwOnly)
		from, to, ok := p.targetName()
		if !ok {
			p.markIncomplete()
			return
		}
		p.addTable(from, to, written)
		p.accept0(tStar)
		if !p.accept0(tComma) {
			return
		}
	}
}

func (p *parser) skipIfExists() {
	if p.isKw(kwIf) {
		p.next()
		p.accept(kwNot)
		p.accept(kwExists)
	}
}

// pragma handles SQLite PRAGMA: reading pragmas are Neutral, pragmas that set
// a value or act are Schema.
func (p *parser) pragma() Kind {
	p.catalog = true
	p.next()
	from, to, ok := p.targetName()
	if !ok {
		p.markIncomplete()
		return Unknown
	}
	name := strings.ToLower(p.identText(p.toks[to-1]))
	_ = from
	switch p.peek().kind {
	case tEq:
		return Schema
	case tLParen:
		switch name {
		case "table_info", "table_xinfo", "index_list", "foreign_key_list", "foreign_key_check", "table_list":
			p.next()
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, false)
			}
			return Neutral
		case "index_info", "index_xinfo", "integrity_check", "quick_check":
			return Neutral
		}
		return Schema
	}
	switch name {
	case "optimize", "incremental_vacuum", "wal_checkpoint", "shrink_memory":
		return Schema
	}
	return Neutral
}

// copy handles PostgreSQL COPY: COPY t FROM … writes t (Schema); COPY t TO
// and COPY (query) TO only read (Neutral), except that COPY (DML RETURNING …)
// TO runs the DML (Write).
func (p *parser) copy() Kind {
	p.next()
	if p.peek().kind == tLParen {
		if p.enter() {
			p.next()
			p.query() // a query, or INSERT/UPDATE/DELETE/MERGE … RETURNING
			p.closeParen()
			p.leave()
		} else {
			p.skipParen()
		}
		p.rest()
		if p.write {
			return Write
		}
		return Neutral
	}
	from, to, ok := p.targetName()
	if !ok {
		p.markIncomplete()
		return Schema
	}
	p.skipParen()
	switch {
	case p.isKw(kwFrom):
		p.addTable(from, to, true)
		return Schema
	case p.isKw(kwTo):
		p.addTable(from, to, false)
		return Neutral
	}
	p.addTable(from, to, true)
	p.markIncomplete()
	return Schema
}

// load handles MySQL LOAD DATA|XML … INTO TABLE t.
func (p *parser) load() {
	for t := p.peek(); t.kind != tEOF; t = p.peek() {
		p.next()
		if t.is(kwInto) && p.isKw(kwTable) {
			p.next()
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
				return
			}
		}
	}
	p.markIncomplete()
}

// comment handles COMMENT ON TABLE|VIEW|COLUMN name IS ….
func (p *parser) comment() {
	p.next()
	p.accept(kwOn)
	t := p.peek()
	obj := strings.ToLower(p.text(t))
	p.next()
	switch obj {
	case "table", "view":
		if from, to, ok := p.targetName(); ok {
			p.addTable(from, to, true)
			return
		}
	case "column":
		if from, to, ok := p.targetName(); ok && to-from >= 3 {
			p.addTable(from, to-2, true)
			return
		}
	}
	p.markIncomplete()
}

// maintenance handles VACUUM, ANALYZE, REINDEX, CLUSTER, OPTIMIZE/REPAIR/CHECK
// TABLE: they change no data; the names found are reported as read, and the
// statement is not Complete since options and names are not parsed exactly.
func (p *parser) maintenance() {
	p.next()
	for t := p.peek(); t.kind != tEOF; t = p.peek() {
		if t.kind == tLParen {
			p.skipParen()
			continue
		}
		if t.kind == tQuoted || t.kind == tWord && t.kw == kwNone {
			from, to, _ := p.targetName()
			p.addTable(from, to, false)
			continue
		}
		p.next()
	}
	p.markIncomplete()
}

// ddl handles CREATE / ALTER / DROP. Tables, views and indexes (through their
// table) are understood; for other objects the statement is not Complete.
func (p *parser) ddl() {
	verb := p.peek().kw
	p.next()
	// Find the object type among the leading words.
	obj := ""
	for t := p.peek(); t.kind != tEOF && t.kind != tLParen; t = p.peek() {
		p.next()
		if t.kind != tWord {
			continue
		}
		w := strings.ToLower(p.text(t))
		switch w {
		case "table", "view", "index", "trigger", "function", "procedure", "schema", "database",
			"sequence", "type", "extension", "role", "user", "domain", "policy", "rule",
			"event", "server", "tablespace", "publication", "subscription", "aggregate",
			"operator", "collation", "statistics", "language", "cast", "conversion":
			obj = w
		}
		if obj != "" {
			break
		}
	}
	switch obj {
	case "table", "view":
		p.skipIfExists()
		if verb == kwDrop {
			p.nameList(true)
			p.rest()
			return
		}
		p.accept(kwOnly)
		from, to, ok := p.targetName()
		if !ok {
			p.markIncomplete()
			return
		}
		p.addTable(from, to, true)
		p.ddlBody(verb)
	case "index":
		p.findTop(kwOn)
		if p.accept(kwOn) {
			p.accept(kwOnly)
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
				return
			}
		}
		if verb != kwDrop {
			p.markIncomplete()
		} else {
			p.markIncomplete() // DROP INDEX name: its table is unknown
		}
	case "trigger":
		p.findTop(kwOn)
		if p.accept(kwOn) {
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
			}
		}
		p.markIncomplete() // the body can write anything
	default:
		p.markIncomplete()
	}
}

// ddlBody scans the rest of CREATE/ALTER TABLE|VIEW for source queries
// (AS SELECT …), LIKE other, PARTITION OF parent and RENAME TO new.
func (p *parser) ddlBody(verb keyword) {
	for t := p.peek(); t.kind != tEOF; t = p.peek() {
		switch {
		case t.kind == tLParen:
			if p.parenStartsQuery() {
				p.paren()
			} else {
				p.skipParen()
			}
		case p.startsQuery():
			p.query()
		case t.is(kwLike) || t.is(kwOf) && p.prev().is(kwPartition):
			p.next()
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
			}
		case t.is(kwTo) && p.prev().is(kwRename):
			p.next()
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
			}
		case t.is(kwPartition) && (p.prev().is(kwAttach) || p.prev().is(kwDetach)):
			p.next()
			if from, to, ok := p.targetName(); ok {
				p.addTable(from, to, true)
			}
		default:
			p.next()
		}
	}
	_ = verb
}

// findTop advances to the keyword k outside parentheses, or to the end.
func (p *parser) findTop(k keyword) {
	for t := p.peek(); t.kind != tEOF && !t.is(k); t = p.peek() {
		if t.kind == tLParen {
			p.skipParen()
			continue
		}
		p.next()
	}
}
