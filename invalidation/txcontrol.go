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

// autocommit reads SET [SESSION | LOCAL | @@[session.]]autocommit = v.
func (p *parser) autocommit() TxControl {
	k := 1
	if t := p.peekAt(k); t.kind == tWord {
		if w := strings.ToLower(p.text(t)); w == "session" || w == "local" {
			k++
		}
	}
	// The variable, possibly spelled @@autocommit or @@session.autocommit:
	// join the tokens up to "=" (or ":=", or TO).
	var name strings.Builder
	for ; ; k++ {
		t := p.peekAt(k)
		if t.kind == tEOF {
			return TxNone
		}
		s := p.text(t)
		if s == "=" || s == ":=" || t.kind == tWord && strings.EqualFold(s, "to") {
			break
		}
		name.WriteString(strings.ToLower(s))
		if name.Len() > 40 {
			return TxNone
		}
	}
	n := strings.TrimPrefix(strings.TrimSuffix(name.String(), ":"), "@@")
	n = strings.TrimPrefix(strings.TrimPrefix(n, "session."), "local.")
	if n != "autocommit" {
		return TxNone
	}
	v := p.peekAt(k + 1)
	if p.peekAt(k+2).kind != tEOF {
		return TxNone // SET autocommit = 0, other = 1: not read here
	}
	switch strings.Trim(strings.ToLower(p.text(v)), `'"`) {
	case "0", "off", "false":
		return TxAutocommitOff
	case "1", "on", "true":
		return TxAutocommitOn
	}
	return TxNone
}
