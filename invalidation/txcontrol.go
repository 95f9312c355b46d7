package invalidation

import "strings"

// TxControl is what a statement does to the session's transaction, when it
// is transaction control sent as SQL (not through database/sql's BeginTx).
type TxControl uint8

const (
	// TxNone: not transaction control (or SAVEPOINT, RELEASE, ROLLBACK TO,
	// which stay inside the transaction).
	TxNone TxControl = iota
	// TxBegin opens a transaction: BEGIN [WORK | TRANSACTION | DEFERRED |
	// IMMEDIATE | EXCLUSIVE …], START TRANSACTION, XA START / XA BEGIN.
	TxBegin
	// TxEnd ends it: COMMIT, END, ROLLBACK, ABORT [WORK | TRANSACTION]
	// (without AND CHAIN).
	TxEnd
	// TxChain ends it and opens the next one at once: COMMIT AND CHAIN,
	// ROLLBACK AND CHAIN.
	TxChain
	// TxAutocommitOff: SET [SESSION] autocommit = 0 | OFF | FALSE (MySQL,
	// MariaDB): every statement from now on runs in a transaction that
	// lasts until COMMIT or ROLLBACK, and the next one starts at once.
	TxAutocommitOff
	// TxAutocommitOn: SET autocommit = 1 | ON | TRUE, which also commits
	// the transaction in progress.
	TxAutocommitOn
	// TxPrepare ends the session's transaction without committing it: it
	// stays prepared until a COMMIT PREPARED / ROLLBACK PREPARED (PostgreSQL
	// PREPARE TRANSACTION) or XA COMMIT / XA ROLLBACK, from any session.
	TxPrepare
	// TxResolve commits or rolls back a prepared transaction, which any
	// session may have written: COMMIT PREPARED, ROLLBACK PREPARED,
	// XA COMMIT, XA ROLLBACK (also the end of the session's own XA
	// transaction with ONE PHASE).
	TxResolve
)

func (c TxControl) String() string {
	switch c {
	case TxBegin:
		return "begin"
	case TxEnd:
		return "end"
	case TxChain:
		return "chain"
	case TxAutocommitOff:
		return "autocommit-off"
	case TxAutocommitOn:
		return "autocommit-on"
	case TxPrepare:
		return "prepare"
	case TxResolve:
		return "resolve"
	}
	return "none"
}

// txControl reads the statement toks[p.pos:p.end] as transaction control;
// it does not move p.pos.
func (p *parser) txControl() TxControl {
	word := func(k int) string {
		t := p.peekAt(k)
		if t.kind != tWord {
			return ""
		}
		return strings.ToLower(p.text(t))
	}
	// afterWork skips an optional WORK or TRANSACTION at k.
	afterWork := func(k int) int {
		if w := word(k); w == "work" || w == "transaction" || w == "tran" {
			return k + 1
		}
		return k
	}
	// chained reads [AND [NO] CHAIN] at k.
	chained := func(k int) bool {
		return word(k) == "and" && word(k+1) == "chain"
	}
	switch word(0) {
	case "begin":
		// PostgreSQL and SQLite transaction modes follow; MySQL's BEGIN
		// WORK. MariaDB's compound BEGIN NOT ATOMIC … END is not one.
		if word(1) == "not" {
			return TxNone
		}
		return TxBegin
	case "start":
		if word(1) == "transaction" {
			return TxBegin
		}
	case "commit", "rollback":
		if word(0) == "rollback" {
			// ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x stays in it.
			if word(afterWork(1)) == "to" {
				return TxNone
			}
		}
		if word(1) == "prepared" {
			return TxResolve
		}
		if chained(afterWork(1)) {
			return TxChain
		}
		return TxEnd
	case "end", "abort":
		if k := afterWork(1); p.peekAt(k).kind == tEOF || chained(k) || word(k) == "and" {
			if chained(k) {
				return TxChain
			}
			return TxEnd
		}
	case "prepare":
		if word(1) == "transaction" {
			return TxPrepare // PostgreSQL; PREPARE name AS … is a statement
		}
	case "xa":
		switch word(1) {
		case "start", "begin":
			return TxBegin
		case "prepare":
			return TxPrepare
		case "commit", "rollback":
			return TxResolve
		}
	case "set":
		return p.autocommit()
	}
	return TxNone
}

// autocommit reads SET a = x, [SESSION | LOCAL | @@[session.]]autocommit
// = v, b = y: what the last assignment to autocommit does. One it cannot
// read (autocommit = @v, = (SELECT …)) counts as turning it off: it only
// costs caching until autocommit is set back.
func (p *parser) autocommit() TxControl {
	res := TxNone
	for k := 1; ; {
		c, next := p.assignment(k)
		if c != TxNone {
			res = c
		}
		if next < 0 {
			return res
		}
		k = next
	}
}

// assignment reads the assignment at k of a SET list: what it does to
// autocommit, and where the next one starts (-1: none).
func (p *parser) assignment(k int) (TxControl, int) {
	// The tokens of the assignment, up to a comma outside parentheses.
	start, end := k, k
	for depth := 0; ; end++ {
		t := p.peekAt(end)
		if t.kind == tEOF || t.kind == tComma && depth == 0 {
			break
		}
		switch t.kind {
		case tLParen:
			depth++
		case tRParen:
			depth--
		}
	}
	next := -1
	if p.peekAt(end).kind == tComma {
		next = end + 1
	}
	// The variable: words and operators up to "=", ":=" or TO.
	var name strings.Builder
	i := start
	for ; i < end; i++ {
		t := p.peekAt(i)
		s := p.text(t)
		if s == "=" || s == ":=" || t.kind == tWord && strings.EqualFold(s, "to") {
			break
		}
		if t.kind == tWord {
			if w := strings.ToLower(s); name.Len() == 0 && (w == "session" || w == "local" || w == "global" || w == "persist") {
				continue
			}
		}
		name.WriteString(strings.ToLower(s))
	}
	n := strings.TrimPrefix(strings.TrimSuffix(name.String(), ":"), "@@")
	n = strings.TrimPrefix(strings.TrimPrefix(n, "session."), "local.")
	if n != "autocommit" || i >= end {
		return TxNone, next
	}
	if i+2 != end {
		return TxAutocommitOff, next // a value it cannot read
	}
	switch strings.Trim(strings.ToLower(p.text(p.peekAt(i+1))), `'"`) {
	case "0", "off", "false":
		return TxAutocommitOff, next
	case "1", "on", "true":
		return TxAutocommitOn, next
	}
	return TxAutocommitOff, next
}
