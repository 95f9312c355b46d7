package invalidation

import "strings"

// maxDepth bounds the nesting of parentheses the parser follows recursively;
// deeper input is skipped and the statement reported as not understood.
const maxDepth = 200

// parser walks the tokens of one statement (toks[pos:end]) and accumulates
// what it finds into its fields.
type parser struct {
	d    Dialect
	src  string
	toks []token
	pos  int
	end  int

	depth   int
	tooDeep bool

	tables  []string
	written []string
	funcs   []string
	ctes    []string // CTE names in scope, innermost last

	incomplete bool
	inPosition bool // scanning the arguments of POSITION(a IN b)
	planOnly   bool // a plain EXPLAIN: the statement inside is not run
	seqRead    bool // a sequence column (last_value, is_called) is read
	write      bool // an INSERT/UPDATE/DELETE/MERGE or SELECT … INTO table was seen
	locking    bool
	returning  bool
	into       bool
	catalog    bool
}

var eofTok = token{kind: tEOF}

func (p *parser) peek() token {
	if p.pos < p.end {
		return p.toks[p.pos]
	}
	return eofTok
}

func (p *parser) peekAt(k int) token {
	if i := p.pos + k; i >= 0 && i < p.end {
		return p.toks[i]
	}
	return eofTok
}

func (p *parser) next() {
	if p.pos < p.end {
		p.pos++
	}
}

// prev returns the token before the current one (or EOF).
func (p *parser) prev() token { return p.peekAt(-1) }

func (p *parser) isKw(k keyword) bool {
	t := p.peek()
	return t.kind == tWord && t.kw == k
}

func (p *parser) accept(k keyword) bool {
	if p.isKw(k) {
		p.next()
		return true
	}
	return false
}

func (t token) is(k keyword) bool { return t.kind == tWord && t.kw == k }

func (p *parser) text(t token) string { return p.src[t.start:t.end] }

// identText returns the unquoted text of a word, quoted identifier or (where
// the dialect accepts strings as names) string token.
func (p *parser) identText(t token) string { return identText(p.src, t) }

// identText is the parser's identText over src, for the other walkers of
// the tokens (rows.go, temp.go).
func identText(src string, t token) string {
	s := src[t.start:t.end]
	if t.kind == tQuoted || t.kind == tString {
		return unquote(s)
	}
	return s
}

// isName reports whether t can be a table, alias or CTE name.
func (p *parser) isName(t token) bool {
	switch t.kind {
	case tQuoted:
		return true
	case tWord:
		return kwFlags[t.kw]&fReserved == 0
	case tString:
		// SQLite accepts 'name' where a name is expected; MySQL accepts
		// quoted aliases.
		return p.d == SQLite || p.d == Generic
	}
	return false
}

// startsQuery reports whether the current token starts a query expression.
func (p *parser) startsQuery() bool {
	return opensQuery(p.peek())
}

// opensQuery reports whether t is a keyword that starts a query expression.
func opensQuery(t token) bool {
	if t.kind != tWord {
		return false
	}
	switch t.kw {
	case kwSelect, kwWith, kwValues, kwTable:
		return true
	}
	return false
}

// parenStartsQuery reports whether the "(" at the current position (possibly
// followed by more "(") opens a query rather than a join or an expression.
func (p *parser) parenStartsQuery() bool {
	for k := 0; k < maxDepth; k++ {
		t := p.peekAt(k)
		if t.kind == tLParen {
			continue
		}
		return opensQuery(t)
	}
	return false
}

// markIncomplete records that a table position was not understood.
func (p *parser) markIncomplete() { p.incomplete = true }

// skipParen skips a balanced parenthesised group starting at "(" without
// looking inside.
func (p *parser) skipParen() {
	if p.peek().kind != tLParen {
		return
	}
	depth := 0
	for p.pos < p.end {
		switch p.toks[p.pos].kind {
		case tLParen:
			depth++
		case tRParen:
			depth--
			if depth == 0 {
				p.pos++
				return
			}
		}
		p.pos++
	}
	p.markIncomplete()
}

// enter and leave bracket a recursive descent; enter reports false (after
// skipping the group) when the input nests too deeply.
func (p *parser) enter() bool {
	if p.depth >= maxDepth {
		p.tooDeep = true
		p.markIncomplete()
		return false
	}
	p.depth++
	return true
}

func (p *parser) leave() { p.depth-- }

// closeParen consumes the ")" that ends a group, or records that it is missing.
func (p *parser) closeParen() {
	if p.peek().kind == tRParen {
		p.next()
		return
	}
	p.markIncomplete()
}

// paren handles a parenthesised group at "(": a subquery or an expression.
func (p *parser) paren() { p.group(false) }

// group is paren; position says whether the group holds the arguments of
// POSITION(a IN b), where IN is no operator.
func (p *parser) group(position bool) {
	if !p.enter() {
		p.skipParen()
		return
	}
	saved := p.inPosition
	p.inPosition = position
	p.next() // (
	if p.startsQuery() {
		p.query()
	} else {
		p.scan(false)
	}
	p.closeParen()
	p.inPosition = saved
	p.leave()
}

// query parses a query or DML statement up to the ")" that closes its group
// or the end of the statement.
func (p *parser) query() {
	t := p.peek()
	if t.kind != tWord {
		p.scan(true)
		return
	}
	switch t.kw {
	case kwWith:
		p.with()
	case kwInsert, kwReplace, kwUpsert:
		p.insert()
	case kwUpdate:
		p.update()
	case kwDelete:
		p.delete()
	case kwMerge:
		p.merge()
	case kwTable:
		p.next()
		p.tableRef(false, nil)
		p.scan(true)
	default:
		p.scan(true)
	}
}

// with parses WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (query), …
// followed by the statement the CTEs belong to.
func (p *parser) with() {
	p.next() // WITH
	recursive := p.accept(kwRecursive)
	mark := len(p.ctes)
	for {
		t := p.peek()
		if t.kind != tWord && t.kind != tQuoted {
			p.markIncomplete()
			break
		}
		name := strings.ToLower(p.identText(t))
		p.next()
		if recursive {
			p.ctes = append(p.ctes, name)
		}
		if p.peek().kind == tLParen {
			p.skipParen() // column names
		}
		if !p.accept(kwAs) {
			p.markIncomplete()
			break
		}
		p.accept(kwNot)
		p.accept(kwMaterialized)
		if p.peek().kind != tLParen {
			p.markIncomplete()
			break
		}
		if p.enter() {
			p.next()
			p.query()
			p.closeParen()
			p.leave()
		} else {
			p.skipParen()
		}
		// PostgreSQL SEARCH … SET … / CYCLE … SET … USING …
		for t := p.peek(); t.kind != tEOF && t.kind != tComma && t.kind != tRParen && !p.startsQuery() && !p.startsDML(); t = p.peek() {
			p.next()
		}
		if !recursive {
			p.ctes = append(p.ctes, name)
		}
		if p.peek().kind == tComma {
			p.next()
			continue
		}
		break
	}
	p.query()
	p.ctes = p.ctes[:mark]
}

func (p *parser) startsDML() bool {
	t := p.peek()
	if t.kind != tWord {
		return false
	}
	switch t.kw {
	case kwInsert, kwUpdate, kwDelete, kwMerge, kwReplace, kwUpsert:
		return true
	}
	return false
}

// scan walks an expression or query body up to the ")" closing the current
// group or the end of the statement, following subqueries, FROM lists and
// joins, and recording function calls. fromClause says whether FROM here
// starts a table list (true in queries, false inside function arguments and
// plain parentheses until a SELECT is met).
func (p *parser) scan(fromClause bool) {
	sawFrom := false // joins only follow a FROM list (STRAIGHT_JOIN is also a SELECT modifier)
	for {
		t := p.peek()
		switch t.kind {
		case tEOF, tRParen:
			return
		case tLParen:
			p.paren()
			continue
		case tQuoted:
			p.nameOrCall()
			continue
		case tWord:
		default:
			p.next()
			continue
		}
		switch t.kw {
		case kwSelect:
			fromClause = true
			p.next()
		case kwFrom:
			p.next()
			if fromClause && !p.distinctFrom() {
				p.fromList(false, nil)
				sawFrom = true
			}
		case kwInto:
			p.next()
			if fromClause {
				p.selectInto()
			}
		case kwFor:
			p.next()
			p.forClause()
		case kwLock:
			p.next()
			if p.isKw(kwIn) && p.peekAt(1).is(kwShare) {
				p.locking = true
			}
		case kwReturning:
			p.returning = true
			p.next()
		case kwUnion, kwIntersect, kwExcept, kwMinus:
			p.next()
			p.accept(kwAll)
			p.accept(kwDistinct)
			if p.accept(kwTable) {
				p.tableRef(false, nil)
			}
		default:
			if t.kw == kwIn && p.inOperand() {
				continue
			}
			if sawFrom && kwFlags[t.kw]&fJoin != 0 && p.peekAt(1).kind != tLParen {
				if p.joinOp() {
					p.tableRef(false, nil)
					continue
				}
			}
			p.nameOrCall()
		}
	}
}

// distinctFrom reports whether the FROM just consumed is part of IS [NOT]
// DISTINCT FROM.
func (p *parser) distinctFrom() bool {
	return p.peekAt(-2).is(kwDistinct) && (p.peekAt(-3).is(kwIs) || p.peekAt(-3).is(kwNot))
}

// nameOrCall consumes a (possibly qualified) name at a word or quoted
// identifier; if "(" follows, it records a function call and scans its
// arguments; a niladic value function is recorded too.
func (p *parser) nameOrCall() {
	t := p.peek()
	before := p.prev()
	start := p.pos
	p.next()
	for p.peek().kind == tDot && (p.peekAt(1).kind == tWord || p.peekAt(1).kind == tQuoted) {
		p.next()
		p.next()
	}
	if p.peek().kind == tLParen {
		position := false
		if p.isCall(start, before) {
			name := p.dottedName(start, p.pos)
			p.addFunc(name)
			position = name == "position"
		}
		p.group(position)
		return
	}
	if p.pos == start+1 && t.kind == tWord && niladic[t.kw].has(p.d) &&
		before.kind != tDot && !before.is(kwAs) && p.peek().kind != tDot {
		p.addFunc(strings.ToLower(p.text(t)))
	}
	if (p.d == Postgres || p.d == Generic) && !before.is(kwAs) && isSequenceColumn(p.identText(p.toks[p.pos-1])) {
		p.seqRead = true
	}
}

// isSequenceColumn reports whether name is a column that only a PostgreSQL
// sequence has in common use (last_value and is_called). A sequence changes
// through nextval and setval, which name it only in a string, so a read of
// it cannot be invalidated.
func isSequenceColumn(name string) bool {
	switch len(name) {
	case len("last_value"):
		return strings.EqualFold(name, "last_value")
	case len("is_called"):
		return strings.EqualFold(name, "is_called")
	}
	return false
}

// inOperand handles the right operand of [NOT] IN, at IN, when it is not
// parenthesised. SQLite (and Generic) read IN [schema.]table as a
// subquery on that table, and IN fn(args) as one on a table-valued
// function. Other dialects have no such form: outside POSITION(a IN b),
// LOCK IN SHARE MODE and MySQL's IN BOOLEAN|NATURAL LANGUAGE MODE it is a
// syntax error, and the statement is not Complete. inOperand reports whether
// it consumed the operand; it leaves IN ( … ) to the caller.
func (p *parser) inOperand() bool {
	next := p.peekAt(1)
	switch {
	case next.kind == tLParen, p.inPosition, p.prev().is(kwLock):
		return false
	case next.kind == tWord && (p.peekAt(2).is(kwMode) || next.is(kwNatural) && p.peekAt(3).is(kwMode)):
		return false // IN SHARE MODE, IN BOOLEAN MODE, IN NATURAL LANGUAGE MODE
	case p.d != SQLite && p.d != Generic || !p.isName(next):
		p.markIncomplete()
		return false
	}
	p.next() // IN
	if start, call := p.relation(); !call {
		p.addTable(start, p.pos, false)
	}
	return true
}

// relation reads a possibly qualified name at p.pos. When "(" follows, it
// is a table-valued function (generate_series(…), json_each(…),
// unnest(…)): recorded as a function call (pragma_* as a catalog read),
// its arguments read, and call is true. Otherwise the name is
// toks[start:p.pos].
func (p *parser) relation() (start int, call bool) {
	start = p.pos
	p.next()
	for p.peek().kind == tDot && (p.peekAt(1).kind == tWord || p.peekAt(1).kind == tQuoted || p.peekAt(1).kind == tString) {
		p.pos += 2
	}
	if p.peek().kind != tLParen {
		return start, false
	}
	name := p.dottedName(start, p.pos)
	p.addFunc(name)
	if strings.HasPrefix(name, "pragma_") {
		p.catalog = true
	}
	p.paren()
	return start, true
}

// isCall reports whether the name toks[start:p.pos], followed by "(", is a
// function call.
func (p *parser) isCall(start int, before token) bool {
	if p.pos-start > 1 {
		return true // qualified: schema.fn(
	}
	t := p.toks[start]
	if before.kind == tCast || before.is(kwAs) {
		return false // a type: x::numeric(10,2), CAST(x AS varchar(10))
	}
	if t.kind != tWord {
		return true
	}
	if kwFlags[t.kw]&fNotFunc != 0 {
		return false
	}
	switch t.kw {
	case kwInsert:
		// MERGE … THEN INSERT (cols)
		return !before.is(kwThen)
	case kwVarying, kwPrecision:
		return false // character varying(n), double precision(n)
	}
	return true
}

// dottedName returns the lower-case, unquoted name made of the word and
// quoted tokens in toks[from:to], joined with ".".
func (p *parser) dottedName(from, to int) string {
	if to-from == 1 {
		return strings.ToLower(p.identText(p.toks[from]))
	}
	var b strings.Builder
	for i := from; i < to; i++ {
		t := p.toks[i]
		if t.kind == tDot {
			b.WriteByte('.')
			continue
		}
		b.WriteString(strings.ToLower(p.identText(t)))
	}
	return b.String()
}

func (p *parser) addFunc(name string) {
	if name == "" {
		p.markIncomplete() // "" is no valid name: the input is not understood
		return
	}
	p.funcs = append(p.funcs, name)
}

// joinOp consumes a join operator ([NATURAL] [LEFT|RIGHT|FULL] [OUTER] JOIN,
// INNER JOIN, CROSS JOIN, STRAIGHT_JOIN, CROSS/OUTER APPLY) if one is at the
// current position.
func (p *parser) joinOp() bool {
	for k := 0; k < 6; k++ {
		t := p.peekAt(k)
		if t.kind != tWord {
			return false
		}
		switch t.kw {
		case kwJoin, kwStraightJoin, kwApply:
			p.pos += k + 1
			return true
		case kwNatural, kwLeft, kwRight, kwFull, kwInner, kwCross, kwOuter:
			continue
		}
		if k > 0 && (strings.EqualFold(p.text(t), "semi") || strings.EqualFold(p.text(t), "anti")) {
			continue
		}
		return false
	}
	return false
}

// alias is one entry of a FROM list, used to resolve DELETE/UPDATE targets.
type alias struct{ name, table string }

// fromList parses table references separated by commas and joins, with their
// ON conditions and USING column lists. written marks the named tables as
// written (UPDATE targets); aliases, when not nil, collects alias → table.
func (p *parser) fromList(written bool, aliases *[]alias) {
	p.tableRef(written, aliases)
	for {
		t := p.peek()
		switch {
		case t.kind == tComma:
			p.next()
			p.tableRef(written, aliases)
		case t.kind == tWord && kwFlags[t.kw]&fJoin != 0 && p.joinOp():
			p.tableRef(written, aliases)
		case t.is(kwOn):
			p.next()
			p.scanCondition()
		case t.is(kwUsing) && p.peekAt(1).kind == tLParen:
			p.next()
			p.skipParen()
		case t.kind == tEOF || t.kind == tRParen || t.kind == tSemi:
			return
		case t.kind == tWord && kwFlags[t.kw]&fReserved != 0:
			return
		case t.kind == tLParen:
			p.markIncomplete()
			p.paren()
		default:
			// Something we do not understand inside a FROM list: keep going so
			// that later references are still found, but say so.
			p.markIncomplete()
			p.nameOrCallOrSkip()
		}
	}
}

func (p *parser) nameOrCallOrSkip() {
	t := p.peek()
	if t.kind == tWord || t.kind == tQuoted {
		p.nameOrCall()
		return
	}
	p.next()
}

// scanCondition scans a join condition up to the next join, comma or clause.
func (p *parser) scanCondition() {
	cases := 0 // open CASE expressions: their WHEN does not end the condition
	for {
		t := p.peek()
		switch t.kind {
		case tEOF, tRParen, tComma, tSemi:
			return
		case tLParen:
			p.paren()
			continue
		case tWord:
			switch {
			case t.kw == kwCase:
				cases++
			case t.kw == kwEnd && cases > 0:
				cases--
			case t.kw == kwWhen && cases > 0:
			case t.kw == kwDistinct && p.peekAt(1).is(kwFrom):
				p.pos += 2 // IS [NOT] DISTINCT FROM
				continue
			case t.kw == kwOn || t.kw == kwUsing || kwFlags[t.kw]&fClause != 0:
				return
			}
			if kwFlags[t.kw]&fJoin != 0 && p.peekAt(1).kind != tLParen {
				return
			}
			if t.kw == kwIn && p.inOperand() {
				continue
			}
			p.nameOrCall()
			continue
		case tQuoted:
			p.nameOrCall()
			continue
		}
		p.next()
	}
}

// tableRef parses one table reference: a (qualified) table name, a table
// function, a derived table or a parenthesised join, with its alias and hints.
func (p *parser) tableRef(written bool, aliases *[]alias) {
	p.accept(kwLateral)
	only := p.accept(kwOnly)
	t := p.peek()
	switch {
	case t.kind == tLParen && only:
		if !p.enter() {
			p.skipParen()
			return
		}
		p.next()
		p.tableRef(written, aliases)
		p.closeParen()
		p.leave()
	case t.kind == tLParen:
		if p.parenStartsQuery() {
			p.paren()
		} else if p.enter() {
			p.next()
			p.fromList(written, aliases)
			p.closeParen()
			p.leave()
		} else {
			p.skipParen()
		}
		p.alias()
		return
	case t.is(kwRows) && p.peekAt(1).is(kwFrom) && p.peekAt(2).kind == tLParen:
		p.pos += 2 // PostgreSQL ROWS FROM (f(), g())
		p.paren()
		p.withOrdinality()
		p.alias()
		return
	case p.isName(t):
		start, call := p.relation()
		if call {
			p.withOrdinality()
			p.alias()
			return
		}
		table := p.addTable(start, p.pos, written)
		if p.peek().kind == tStar {
			p.next() // PostgreSQL inheritance: t *
		}
		p.hints()
		a := p.alias()
		p.hints()
		if aliases != nil && table != "" {
			*aliases = append(*aliases, alias{table, table})
			if a != "" {
				*aliases = append(*aliases, alias{strings.ToLower(a), table})
			}
		}
		return
	default:
		p.markIncomplete()
		return
	}
	p.alias()
}

func (p *parser) withOrdinality() {
	if p.isKw(kwWith) && p.peekAt(1).is(kwOrdinality) {
		p.pos += 2
	}
}

// alias consumes an optional alias ([AS] name [(columns)]) and returns it.
func (p *parser) alias() string {
	t := p.peek()
	var a string
	switch {
	case t.is(kwAs):
		p.next()
		t = p.peek()
		if t.kind == tWord || t.kind == tQuoted || t.kind == tString {
			a = p.identText(t)
			p.next()
		}
	case p.isName(t) || t.kind == tString && p.d == MySQL:
		a = p.identText(t)
		p.next()
	default:
		return ""
	}
	if p.peek().kind == tLParen {
		p.skipParen() // column aliases, or a column definition list
	}
	return a
}

// hints skips table hints: MySQL PARTITION (…) and index hints, SQLite
// INDEXED BY / NOT INDEXED, PostgreSQL TABLESAMPLE, SQL Server WITH (…).
func (p *parser) hints() {
	for {
		t := p.peek()
		if t.kind != tWord {
			return
		}
		switch t.kw {
		case kwPartition:
			if p.peekAt(1).kind != tLParen {
				return
			}
			p.next()
			p.skipParen()
		case kwUse, kwForce, kwIgnore:
			if k := p.peekAt(1); !k.is(kwIndex) && !k.is(kwKey) {
				return
			}
			p.pos += 2
			if p.accept(kwFor) {
				p.next() // JOIN | ORDER | GROUP
				p.accept(kwBy)
			}
			p.skipParen()
		case kwIndexed:
			p.next()
			p.accept(kwBy)
			p.next()
		case kwNot:
			if !p.peekAt(1).is(kwIndexed) {
				return
			}
			p.pos += 2
		case kwTablesample:
			p.next()
			p.next() // method
			p.skipParen()
			if p.accept(kwRepeatable) {
				p.skipParen()
			}
		case kwWith:
			if p.peekAt(1).kind != tLParen {
				return
			}
			p.next()
			p.skipParen()
		default:
			return
		}
	}
}

// addTable records the table named by toks[from:to] (parts separated by
// dots) unless it is a CTE in scope or MySQL's DUAL, and returns its
// normalised name ("" if it is not a table).
func (p *parser) addTable(from, to int, written bool) string {
	last := p.toks[to-1]
	name := strings.ToLower(p.identText(last))
	qualified := to-from > 1
	if name == "" {
		p.markIncomplete()
		return ""
	}
	if !qualified {
		if last.kind == tWord && last.kw == kwDual && (p.d == MySQL || p.d == Generic) {
			return ""
		}
		for i := len(p.ctes) - 1; i >= 0; i-- {
			if p.ctes[i] == name {
				return ""
			}
		}
	}
	for i := from; i < to-1; i++ {
		if t := p.toks[i]; t.kind != tDot && isCatalogSchema(strings.ToLower(p.identText(t))) {
			p.catalog = true
		}
	}
	if isCatalogTable(name) {
		p.catalog = true
	}
	p.tables = append(p.tables, name)
	if written {
		p.written = append(p.written, name)
	}
	return name
}

func isCatalogSchema(s string) bool {
	switch s {
	case "pg_catalog", "information_schema", "performance_schema", "mysql", "sys", "pg_toast":
		return true
	}
	return false
}

func isCatalogTable(s string) bool {
	return strings.HasPrefix(s, "pg_") || strings.HasPrefix(s, "sqlite_") || s == "information_schema"
}

// selectInto handles SELECT … INTO (after INTO): variables, a file, or a new
// table (PostgreSQL; also assumed for Generic and SQLite).
func (p *parser) selectInto() {
	p.into = true
	t := p.peek()
	if t.kind == tParam || t.kind == tEOF {
		return // @var, :var
	}
	if t.kind == tWord && (strings.EqualFold(p.text(t), "outfile") || strings.EqualFold(p.text(t), "dumpfile")) {
		return
	}
	if p.d == MySQL {
		return // local variables in a stored program
	}
	for p.isKw(kwTemporary) || p.isKw(kwTemp) || p.isKw(kwUnlogged) || p.isKw(kwTable) {
		p.next()
	}
	t = p.peek()
	if !p.isName(t) {
		p.markIncomplete()
		return
	}
	start := p.pos
	p.next()
	for p.peek().kind == tDot && (p.peekAt(1).kind == tWord || p.peekAt(1).kind == tQuoted) {
		p.pos += 2
	}
	p.write = true
	p.addTable(start, p.pos, true)
}

// forClause handles what follows FOR: a locking clause or something else.
func (p *parser) forClause() {
	switch {
	case p.isKw(kwUpdate), p.isKw(kwShare):
		p.next()
	case p.isKw(kwNo) && p.peekAt(1).is(kwKey) && p.peekAt(2).is(kwUpdate):
		p.pos += 3
	case p.isKw(kwKey) && p.peekAt(1).is(kwShare):
		p.pos += 2
	default:
		return
	}
	p.locking = true
	if p.accept(kwOf) {
		for {
			t := p.peek()
			if t.kind != tWord && t.kind != tQuoted {
				break
			}
			p.next()
			for p.peek().kind == tDot && p.peekAt(1).kind != tEOF {
				p.pos += 2
			}
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
}
