package invalidation

import (
	"slices"
	"strings"
)

// Row shapes: what a simple statement on one table says about the rows it
// reads or writes, for row-level invalidation. Only shapes whose meaning
// is certain are reported; anything else has Shape.OK false, and its
// reads and writes are table-level.

// OperandKind is what an operand of a row condition or an INSERT value is.
type OperandKind uint8

const (
	OperandOther  OperandKind = iota // an expression, DEFAULT, a named parameter…
	OperandArg                       // a positional parameter: Operand.Arg
	OperandNumber                    // a numeric literal: Operand.Text
	OperandString                    // a string literal: Operand.Text (unquoted)
	OperandNull                      // NULL
)

// An Operand is one value of a row condition or of an INSERT row.
type Operand struct {
	Kind OperandKind
	Arg  int    // OperandArg: 0-based index into the statement's arguments
	Text string // OperandNumber, OperandString
}

// A Conjunct is a top-level conjunct of a WHERE clause that binds a column
// of the statement's table to values: col = v, v = col, col IN (v, …),
// col IS NULL (one OperandNull).
type Conjunct struct {
	Column string // as written, unquoted; lower case unless it was quoted (PostgreSQL)
	Values []Operand
}

// ShapeOp is the operation of a row shape.
type ShapeOp uint8

const (
	ShapeSelect ShapeOp = iota + 1
	ShapeUpdate
	ShapeDelete
	ShapeInsert
)

// A Shape is what a simple single-table statement says about its rows.
type Shape struct {
	// OK: the statement is one SELECT, UPDATE, DELETE or INSERT on one
	// table, of the forms below. A SELECT has no join, subquery, set
	// operation or WITH (its caller must still check it calls no function:
	// an aggregate makes rows that are no table row). An UPDATE or DELETE
	// has no FROM/USING/join (subqueries elsewhere are allowed: they do
	// not change which rows are written). An INSERT has VALUES rows.
	OK    bool
	Op    ShapeOp
	Table string // normalised with TableName
	// Where: SELECT, UPDATE, DELETE. Nil when the WHERE clause has an OR
	// (or a NOT) at its top level, or no conjunct of the forms above.
	Where []Conjunct
	// Set: UPDATE, the columns assigned (as Conjunct.Column), and
	// SetValues what each is assigned (OperandOther: an expression, which
	// may read the row, or any value of MySQL's UPDATE IGNORE, which
	// stores an out-of-range value, or NULL in a NOT NULL column, as
	// another). SetAll: an assignment was not understood (treat every
	// column as set to values unknown).
	Set       []string
	SetValues []Operand
	SetAll    bool
	// Columns and Values: INSERT, the column list (nil when absent: then
	// the rows cannot be told) and each row's operands (all OperandOther
	// for MySQL's INSERT IGNORE, as for UPDATE IGNORE).
	Columns []string
	Values  [][]Operand
	// Upsert: INSERT … ON CONFLICT / ON DUPLICATE KEY UPDATE, REPLACE,
	// INSERT OR REPLACE: rows other than the inserted ones may change.
	Upsert bool
	// Tail: UPDATE and DELETE that end with their WHERE clause (or SET
	// clause, or table), with no ORDER BY, LIMIT or RETURNING after it:
	// the byte offset just past its last token, where a RETURNING clause
	// may be inserted; 0 otherwise.
	Tail int
	// Filtered: a SELECT with a WHERE clause (whatever Where holds);
	// WhereAll: every top-level conjunct of it is in Where.
	Filtered, WhereAll bool
	// CountAll: a SELECT whose list is count(*) or count(1) alone;
	// Plain: one whose list is *, the table's *, or the table's columns,
	// without aliases (its result's columns are the table's, by name).
	CountAll, Plain bool
	// Order and Limit: a SELECT that ends with ORDER BY and a LIMIT of a
	// number literal or a positional parameter (no OFFSET, FETCH or
	// locking clause): its ORDER BY items, each a column of the table with
	// an optional ASC or DESC (and NULLS FIRST or LAST), and the limit (a
	// parameter: OperandArg). Both are empty otherwise, and Order is nil
	// when an item is anything else (an expression, a position, COLLATE).
	Order []OrderTerm
	Limit Operand
}

// An OrderTerm is one ORDER BY item of a Shape.
type OrderTerm struct {
	Column string // as Conjunct.Column
	Desc   bool
}

// Unvalued returns s with every value it assigns or inserts unknown
// (OperandOther, in new slices): the shape of a statement whose stored
// values may be others than it says (MySQL's IGNORE, or a sql_mode that is
// not strict, clips an out-of-range value and stores NULL in a NOT NULL
// column as 0).
func (s Shape) Unvalued() Shape {
	if s.SetValues != nil {
		s.SetValues = make([]Operand, len(s.SetValues))
	}
	if s.Values != nil {
		rows := make([][]Operand, len(s.Values))
		for i, row := range s.Values {
			rows[i] = make([]Operand, len(row))
		}
		s.Values = rows
	}
	return s
}

// RowShape returns the row shape of sql (see Shape). Positional
// parameters are numbered as database/sql passes them: ? in order of
// appearance, $n as n-1.
func RowShape(d Dialect, sql string) Shape {
	l := lexer{src: sql, d: d}
	l.tokenize()
	if l.bad || l.ambiguous {
		return Shape{}
	}
	toks := l.toks
	for len(toks) > 0 && toks[len(toks)-1].kind == tSemi {
		toks = toks[:len(toks)-1]
	}
	r := &rowParser{d: d, src: sql, toks: toks}
	for _, t := range toks {
		if t.kind == tSemi {
			return Shape{} // several statements
		}
	}
	if !r.numberParams() || len(toks) == 0 {
		return Shape{}
	}
	switch {
	case toks[0].is(kwSelect):
		return r.selectShape()
	case toks[0].is(kwUpdate):
		return r.updateShape()
	case toks[0].is(kwDelete):
		return r.deleteShape()
	case toks[0].is(kwInsert), toks[0].is(kwReplace):
		return r.insertShape()
	}
	return Shape{}
}

type rowParser struct {
	d    Dialect
	src  string
	toks []token
	args []int // per token: the parameter index of a positional parameter, else -1
	pos  int
}

func (r *rowParser) text(t token) string { return r.src[t.start:t.end] }

// at returns token i, or an EOF token past the end.
func (r *rowParser) at(i int) token {
	if i < 0 || i >= len(r.toks) {
		return eofTok
	}
	return r.toks[i]
}

func (r *rowParser) word(i int, w string) bool {
	return i < len(r.toks) && r.at(i).kind == tWord && strings.EqualFold(r.text(r.at(i)), w)
}

// numberParams gives each positional parameter its argument index; it
// fails on named parameters or on ? mixed with $n.
func (r *rowParser) numberParams() bool {
	r.args = make([]int, len(r.toks))
	n, q, dollar := 0, false, false
	for i, t := range r.toks {
		r.args[i] = -1
		if t.kind != tParam {
			continue
		}
		s := r.text(t)
		switch {
		case s == "?":
			q = true
			r.args[i] = n
			n++
		case s[0] == '$' && len(s) > 1 && allDigits(s[1:]) && r.d != SQLite:
			// (SQLite numbers $NNN by first appearance, like a named
			// parameter; drivers bind them by position (mattn/go-sqlite3)
			// or by their digits (modernc): which argument it is depends
			// on the driver)
			dollar = true
			k := 0
			for _, c := range s[1:] {
				k = k*10 + int(c-'0')
				if k > 1<<16 {
					return false
				}
			}
			if k == 0 {
				return false
			}
			r.args[i] = k - 1
		default:
			return false
		}
	}
	return !(q && dollar)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// table reads a (qualified) table name at r.pos and an optional alias; it
// returns the normalised name and the alias ("" for none).
func (r *rowParser) table() (name, alias string, ok bool) {
	start := r.pos
	if r.pos >= len(r.toks) || !r.nameTok(r.at(r.pos)) {
		return "", "", false
	}
	r.pos++
	for r.pos+1 < len(r.toks) && r.at(r.pos).kind == tDot && r.nameTok(r.at(r.pos+1)) {
		r.pos += 2
	}
	name = TableName(r.src[r.at(start).start:r.at(r.pos-1).end])
	if name == "" {
		return "", "", false
	}
	if r.pos < len(r.toks) && r.at(r.pos).is(kwAs) {
		r.pos++
		if r.pos >= len(r.toks) || !r.nameTok(r.at(r.pos)) {
			return "", "", false
		}
	}
	if r.pos < len(r.toks) && r.nameTok(r.at(r.pos)) && kwFlags[r.at(r.pos).kw]&fReserved == 0 && r.at(r.pos).kind != tString {
		alias = r.column(r.at(r.pos))
		r.pos++
	}
	return name, alias, true
}

func (r *rowParser) nameTok(t token) bool {
	switch t.kind {
	case tQuoted:
		return true
	case tWord:
		return kwFlags[t.kw]&fReserved == 0
	}
	return false
}

// column is a column (or alias) name as Conjunct.Column gives it.
func (r *rowParser) column(t token) string {
	s := r.text(t)
	if t.kind == tQuoted {
		s = unquote(s)
		if r.d == Postgres || r.d == Generic {
			return s
		}
	}
	return strings.ToLower(s)
}

// clauseEnd returns the index of the first token at or after from, at
// paren depth 0, that is one of the words (or len(toks)).
func (r *rowParser) clauseEnd(from int, words ...string) int {
	depth := 0
	for i := from; i < len(r.toks); i++ {
		switch r.at(i).kind {
		case tLParen:
			depth++
		case tRParen:
			depth--
		case tWord:
			if depth == 0 {
				for _, w := range words {
					if strings.EqualFold(r.text(r.at(i)), w) {
						return i
					}
				}
			}
		}
	}
	return len(r.toks)
}

// hasQuery reports whether toks[from:to] holds a subquery.
func (r *rowParser) hasQuery(from, to int) bool {
	for i := from; i < to; i++ {
		if r.at(i).is(kwSelect) || r.at(i).is(kwWith) || r.word(i, "values") || r.word(i, "table") {
			return true
		}
	}
	return false
}

// tailWords end a WHERE clause.
var tailWords = []string{"order", "limit", "offset", "fetch", "for", "returning", "group", "having", "window", "union", "intersect", "except", "lock"}

func (r *rowParser) selectShape() Shape {
	// SELECT <list> FROM <table> [alias] [WHERE …] [ORDER BY …] [LIMIT …]
	from := r.clauseEnd(1, "from")
	if from == len(r.toks) || r.hasQuery(1, from) || r.word(1, "distinct") && r.word(2, "on") {
		return Shape{}
	}
	r.pos = from + 1
	name, alias, ok := r.table()
	if !ok {
		return Shape{}
	}
	s := Shape{OK: true, Op: ShapeSelect, Table: name}
	end := r.pos
	if r.pos < len(r.toks) && r.at(r.pos).is(kwWhere) {
		end = r.clauseEnd(r.pos+1, tailWords...)
		var n int
		s.Where, n = r.conjuncts(r.pos+1, end, name, alias)
		s.Filtered, s.WhereAll = true, n > 0 && n == len(s.Where)
	}
	s.Plain = r.plainList(1, from, name, alias)
	s.CountAll = from == 5 && r.word(1, "count") && r.at(2).kind == tLParen && r.at(4).kind == tRParen &&
		(r.at(3).kind == tStar || r.at(3).kind == tNumber && r.text(r.at(3)) == "1")
	if r.hasQuery(r.pos, len(r.toks)) {
		return Shape{}
	}
	// What may follow: ORDER BY, LIMIT, OFFSET, FETCH, FOR (locking: not
	// cached anyway). Anything else (a join, a comma, GROUP BY, a set
	// operation) is not this shape.
	if end < len(r.toks) {
		switch w := strings.ToLower(r.text(r.at(end))); w {
		case "order", "limit", "offset", "fetch", "for":
		default:
			return Shape{}
		}
		for i := end; i < len(r.toks); i++ {
			if r.word(i, "union") || r.word(i, "intersect") || r.word(i, "except") || r.word(i, "group") || r.word(i, "having") || r.word(i, "window") {
				return Shape{}
			}
		}
		s.Order, s.Limit = r.orderLimit(end, name, alias)
	}
	return s
}

// plainList reports whether toks[from:to], a select list, is *, the
// table's *, or columns of the table without aliases.
func (r *rowParser) plainList(from, to int, table, alias string) bool {
	if from >= to {
		return false
	}
	for _, item := range r.split(from, to) {
		a, b := item[0], item[1]
		switch {
		case b-a == 1 && r.at(a).kind == tStar:
		case b-a > 2 && r.at(b-1).kind == tStar && r.at(b-2).kind == tDot:
			if !r.tableRef(a, b-2, table, alias) {
				return false
			}
		default:
			if _, ok := r.colRef(a, b, table, alias); !ok {
				return false
			}
		}
	}
	return true
}

// tableRef reports whether toks[from:to] names the table (or its alias).
func (r *rowParser) tableRef(from, to int, table, alias string) bool {
	if to <= from {
		return false
	}
	if alias != "" {
		return to-from == 1 && r.column(r.at(from)) == alias
	}
	return TableName(r.src[r.at(from).start:r.at(to-1).end]) == table
}

// orderLimit reads "ORDER BY item, … LIMIT n" at toks[from:], to the end
// of the statement (see Shape.Order); it returns nil and no operand for
// anything else.
func (r *rowParser) orderLimit(from int, table, alias string) ([]OrderTerm, Operand) {
	if !r.at(from).is(kwOrder) || !r.at(from+1).is(kwBy) {
		return nil, Operand{}
	}
	lim := r.clauseEnd(from+2, "limit")
	if lim+2 != len(r.toks) {
		return nil, Operand{} // (LIMIT a, b; LIMIT … OFFSET; FETCH; FOR UPDATE)
	}
	n := r.operand(lim+1, lim+2)
	if n.Kind != OperandArg && (n.Kind != OperandNumber || n.Text[0] == '-') {
		return nil, Operand{}
	}
	var order []OrderTerm
	for _, item := range r.split(from+2, lim) {
		end := item[1]
		t := OrderTerm{}
		if end-1 > item[0] && r.word(end-2, "nulls") && (r.word(end-1, "first") || r.word(end-1, "last")) {
			end -= 2
		}
		if end-1 > item[0] && (r.word(end-1, "asc") || r.word(end-1, "desc")) {
			t.Desc = r.word(end-1, "desc")
			end--
		}
		c, ok := r.colRef(item[0], end, table, alias)
		if !ok {
			return nil, Operand{}
		}
		t.Column = c
		order = append(order, t)
	}
	if len(order) == 0 {
		return nil, Operand{}
	}
	return order, n
}

func (r *rowParser) updateShape() Shape {
	// UPDATE [modifiers] <table> [alias] SET a = …, … [WHERE …] [ORDER BY …] [LIMIT …] [RETURNING …]
	r.pos = 1
	ignore := false
	for r.word(r.pos, "low_priority") || r.word(r.pos, "ignore") || r.word(r.pos, "only") ||
		(r.at(r.pos).is(kwOr) && r.pos+1 < len(r.toks) && r.at(r.pos+1).kind == tWord) {
		if r.at(r.pos).is(kwOr) {
			if r.word(r.pos+1, "replace") {
				return Shape{} // SQLite: deletes the rows its new values conflict with
			}
			r.pos++
		}
		ignore = ignore || r.word(r.pos, "ignore") && r.d != SQLite && !r.at(r.pos-1).is(kwOr)
		r.pos++
		if r.pos >= len(r.toks) {
			return Shape{}
		}
	}
	name, alias, ok := r.table()
	if !ok || r.pos >= len(r.toks) || !r.at(r.pos).is(kwSet) {
		return Shape{}
	}
	s := Shape{OK: true, Op: ShapeUpdate, Table: name}
	setEnd := r.clauseEnd(r.pos+1, append([]string{"where", "from", "join"}, tailWords...)...)
	if setEnd < len(r.toks) && (r.word(setEnd, "from") || r.word(setEnd, "join")) {
		return Shape{}
	}
	s.Set, s.SetValues, s.SetAll = r.assignments(r.pos+1, setEnd, name, alias)
	if ignore {
		s = s.Unvalued()
	}
	r.pos = setEnd
	end := setEnd
	if r.pos < len(r.toks) && r.at(r.pos).is(kwWhere) {
		end = r.clauseEnd(r.pos+1, tailWords...)
		s.Where, _ = r.conjuncts(r.pos+1, end, name, alias)
	}
	s.Tail = r.tail(end)
	return s
}

// tail is Shape.Tail for a statement whose last clause ends at token end.
func (r *rowParser) tail(end int) int {
	if end != len(r.toks) || end == 0 {
		return 0
	}
	return r.at(end - 1).end
}

func (r *rowParser) deleteShape() Shape {
	// DELETE [modifiers] FROM <table> [alias] [WHERE …] [ORDER BY …] [LIMIT …] [RETURNING …]
	r.pos = 1
	for r.word(r.pos, "low_priority") || r.word(r.pos, "quick") || r.word(r.pos, "ignore") {
		r.pos++
	}
	if r.pos >= len(r.toks) || !r.at(r.pos).is(kwFrom) {
		return Shape{}
	}
	r.pos++
	if r.word(r.pos, "only") {
		r.pos++
	}
	name, alias, ok := r.table()
	if !ok {
		return Shape{}
	}
	s := Shape{OK: true, Op: ShapeDelete, Table: name}
	end := r.pos
	if r.pos < len(r.toks) {
		if !r.at(r.pos).is(kwWhere) {
			if w := strings.ToLower(r.text(r.at(r.pos))); w != "order" && w != "limit" && w != "returning" {
				return Shape{} // USING, a comma (multi-table), a join…
			}
		} else {
			end = r.clauseEnd(r.pos+1, tailWords...)
			s.Where, _ = r.conjuncts(r.pos+1, end, name, alias)
		}
	}
	s.Tail = r.tail(end)
	return s
}

func (r *rowParser) insertShape() Shape {
	// INSERT [OR …] [modifiers] INTO <table> [(cols)] VALUES (…), … [ON CONFLICT … | ON DUPLICATE KEY …] [RETURNING …]
	s := Shape{Op: ShapeInsert, Upsert: r.at(0).is(kwReplace)}
	r.pos = 1
	ignore := false
	for r.pos < len(r.toks) && !r.at(r.pos).is(kwInto) {
		if r.at(r.pos).is(kwReplace) {
			s.Upsert = true // INSERT OR REPLACE
		}
		ignore = ignore || r.word(r.pos, "ignore") && r.d != SQLite && !r.at(r.pos-1).is(kwOr)
		if r.at(r.pos).kind != tWord {
			return Shape{}
		}
		r.pos++
	}
	r.pos++
	name, _, ok := r.table()
	if !ok {
		return Shape{}
	}
	s.Table = name
	if r.pos < len(r.toks) && r.at(r.pos).kind == tLParen {
		end := r.closing(r.pos)
		if end < 0 {
			return Shape{}
		}
		for _, item := range r.split(r.pos+1, end) {
			if item[1]-item[0] != 1 || !r.nameTok(r.toks[item[0]]) {
				return Shape{}
			}
			s.Columns = append(s.Columns, r.column(r.toks[item[0]]))
		}
		r.pos = end + 1
	}
	if !r.word(r.pos, "values") && !r.word(r.pos, "value") {
		return Shape{} // INSERT … SELECT, DEFAULT VALUES, SET (MySQL)
	}
	r.pos++
	for r.pos < len(r.toks) && r.at(r.pos).kind == tLParen {
		end := r.closing(r.pos)
		if end < 0 {
			return Shape{}
		}
		var row []Operand
		for _, item := range r.split(r.pos+1, end) {
			row = append(row, r.operand(item[0], item[1]))
		}
		if s.Columns != nil && len(row) != len(s.Columns) {
			return Shape{}
		}
		s.Values = append(s.Values, row)
		r.pos = end + 1
		if r.pos < len(r.toks) && r.at(r.pos).kind == tComma {
			r.pos++
		}
	}
	if ignore {
		s = s.Unvalued() // (what MySQL stores may be another value)
	}
	switch {
	case r.pos == len(r.toks), r.word(r.pos, "returning"):
	case r.at(r.pos).is(kwOn):
		s.Upsert = true
	case r.at(r.pos).is(kwAs) && r.d == MySQL:
		s.Upsert = true // VALUES (…) AS new ON DUPLICATE KEY UPDATE
	default:
		return Shape{}
	}
	s.OK = true
	return s
}

// closing returns the index of the ) matching the ( at i, or -1.
func (r *rowParser) closing(i int) int {
	depth := 0
	for j := i; j < len(r.toks); j++ {
		switch r.at(j).kind {
		case tLParen:
			depth++
		case tRParen:
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return -1
}

// split returns the token ranges of the comma-separated items of
// toks[from:to] (at paren depth 0).
func (r *rowParser) split(from, to int) [][2]int {
	var out [][2]int
	depth, start := 0, from
	for i := from; i < to; i++ {
		switch r.at(i).kind {
		case tLParen:
			depth++
		case tRParen:
			depth--
		case tComma:
			if depth == 0 {
				out = append(out, [2]int{start, i})
				start = i + 1
			}
		}
	}
	return append(out, [2]int{start, to})
}

// operand reads toks[from:to] as one operand.
func (r *rowParser) operand(from, to int) Operand {
	switch n := to - from; {
	case n == 1:
		t := r.at(from)
		switch {
		case t.kind == tParam && r.args[from] >= 0:
			return Operand{Kind: OperandArg, Arg: r.args[from]}
		case t.kind == tNumber:
			return Operand{Kind: OperandNumber, Text: r.text(t)}
		case t.kind == tString && strings.HasPrefix(r.text(t), "'"):
			if r.d == MySQL && strings.Contains(r.text(t), `\`) {
				return Operand{} // backslash escapes: leave it to the database
			}
			return Operand{Kind: OperandString, Text: unquote(r.text(t))}
		case t.is(kwNull):
			return Operand{Kind: OperandNull}
		}
	case n == 2 && r.at(from).kind == tOp && r.text(r.at(from)) == "-" && r.at(from+1).kind == tNumber:
		return Operand{Kind: OperandNumber, Text: "-" + r.text(r.at(from+1))}
	}
	return Operand{}
}

// colRef reads toks[from:to] as a column of the statement's table (bare,
// or qualified by its name or alias); ok is false for anything else.
func (r *rowParser) colRef(from, to int, table, alias string) (string, bool) {
	if to > from && r.d == MySQL && r.src[r.at(to-1).start] == '"' {
		return "", false // a string, unless ANSI_QUOTES: "id" = 0 is true for every row
	}
	switch to - from {
	case 1:
		if r.nameTok(r.at(from)) {
			return r.column(r.at(from)), true
		}
	case 3, 5:
		if r.at(to-2).kind != tDot || !r.nameTok(r.at(to-1)) {
			return "", false
		}
		q := TableName(r.src[r.at(from).start:r.at(to-3).end])
		if q == table && (alias == "" || to-from == 5) || alias != "" && to-from == 3 && r.column(r.at(from)) == alias {
			return r.column(r.at(to - 1)), true
		}
	}
	return "", false
}

// assignments reads the SET list of an UPDATE.
func (r *rowParser) assignments(from, to int, table, alias string) (cols []string, vals []Operand, all bool) {
	for _, item := range r.split(from, to) {
		eq := -1
		for i := item[0]; i < item[1]; i++ {
			if r.at(i).kind == tEq {
				eq = i
				break
			}
		}
		if eq < 0 {
			return nil, nil, true
		}
		c, ok := r.colRef(item[0], eq, table, alias)
		if !ok || slices.Contains(cols, c) {
			// ((a, b) = (…), a qualified column of another name…; a column
			// assigned twice, which SQLite and MySQL allow: which value
			// wins is theirs)
			return nil, nil, true
		}
		cols = append(cols, c)
		vals = append(vals, r.operand(eq+1, item[1]))
	}
	return cols, vals, false
}

// conjuncts reads the top-level conjuncts of a WHERE clause toks[from:to]
// that bind a column of the table to values, and counts the top-level
// conjuncts (0 when it is no conjunction).
func (r *rowParser) conjuncts(from, to int, table, alias string) ([]Conjunct, int) {
	var parts [][2]int
	depth, start, between := 0, from, false
	for i := from; i < to; i++ {
		t := r.at(i)
		switch {
		case t.kind == tLParen:
			depth++
		case t.kind == tRParen:
			depth--
		case depth > 0:
		case t.is(kwOr), t.is(kwNot) && i == start, r.word(i, "xor"):
			return nil, 0 // not a conjunction (NOT at the top: NOT a AND b is (NOT a) AND b, fine, but keep it simple)
		case t.is(kwCase):
			return nil, 0 // CASE … END holds ANDs at depth 0 that are not the WHERE's
		case t.kind == tOp && r.src[t.start] == '|' && r.at(i+1).kind == tOp && r.src[r.at(i+1).start] == '|' && (r.d == MySQL || r.d == Generic):
			return nil, 0 // MySQL's || is OR (unless PIPES_AS_CONCAT)
		case t.is(kwBetween):
			between = true
		case t.is(kwAnd):
			if between {
				between = false
				continue
			}
			parts = append(parts, [2]int{start, i})
			start = i + 1
		}
	}
	parts = append(parts, [2]int{start, to})
	var out []Conjunct
	for _, p := range parts {
		if c, ok := r.conjunct(p[0], p[1], table, alias); ok {
			out = append(out, c)
		}
	}
	return out, len(parts)
}

// conjunct reads col = v, v = col, col IN (v, …), col IS NULL.
func (r *rowParser) conjunct(from, to int, table, alias string) (Conjunct, bool) {
	for from < to && r.at(from).kind == tLParen && r.closing(from) == to-1 {
		from, to = from+1, to-1 // (a = 1)
	}
	for i := from; i < to; i++ {
		t := r.at(i)
		switch {
		case t.kind == tEq:
			if c, ok := r.colRef(from, i, table, alias); ok {
				if v := r.operand(i+1, to); v.Kind != OperandOther {
					return Conjunct{Column: c, Values: []Operand{v}}, true
				}
			}
			if c, ok := r.colRef(i+1, to, table, alias); ok {
				if v := r.operand(from, i); v.Kind != OperandOther {
					return Conjunct{Column: c, Values: []Operand{v}}, true
				}
			}
			return Conjunct{}, false
		case t.is(kwIn):
			c, ok := r.colRef(from, i, table, alias)
			if !ok || i+1 >= to || r.at(i+1).kind != tLParen || r.closing(i+1) != to-1 {
				return Conjunct{}, false
			}
			var vs []Operand
			for _, item := range r.split(i+2, to-1) {
				v := r.operand(item[0], item[1])
				if v.Kind == OperandOther || v.Kind == OperandNull {
					return Conjunct{}, false // (x IN (NULL) is never true: keep it out)
				}
				vs = append(vs, v)
			}
			return Conjunct{Column: c, Values: vs}, true
		case t.is(kwIs):
			c, ok := r.colRef(from, i, table, alias)
			if ok && i+2 == to && r.at(i+1).is(kwNull) {
				return Conjunct{Column: c, Values: []Operand{{Kind: OperandNull}}}, true
			}
			return Conjunct{}, false
		case t.kind == tOp, t.kind == tCast, t.kind == tLParen:
			if t.kind == tLParen && i > from {
				return Conjunct{}, false // a call
			}
		}
	}
	return Conjunct{}, false
}
