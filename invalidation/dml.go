package invalidation

import "strings"

// skipModifiers consumes MySQL/SQLite statement modifiers
// (LOW_PRIORITY, DELAYED, HIGH_PRIORITY, QUICK, IGNORE, OR REPLACE|IGNORE|…).
func (p *parser) skipModifiers() {
	for {
		switch {
		case p.isKw(kwLowPriority), p.isKw(kwDelayed), p.isKw(kwHighPriority), p.isKw(kwQuick):
			p.next()
		case p.isKw(kwIgnore) && !p.peekAt(1).is(kwIndex):
			p.next()
		case p.isKw(kwOr) && p.peekAt(1).kind == tWord:
			p.pos += 2 // SQLite OR ROLLBACK|ABORT|REPLACE|FAIL|IGNORE
		default:
			return
		}
	}
}

// targetName consumes a (qualified) table name and returns its token range;
// ok is false (nothing consumed) when no name is there.
func (p *parser) targetName() (from, to int, ok bool) {
	if !p.isName(p.peek()) {
		return 0, 0, false
	}
	from = p.pos
	p.next()
	for p.peek().kind == tDot && (p.peekAt(1).kind == tWord || p.peekAt(1).kind == tQuoted || p.peekAt(1).kind == tString) {
		p.pos += 2
	}
	return from, p.pos, true
}

// insert parses INSERT / REPLACE / UPSERT.
func (p *parser) insert() {
	p.write = true
	p.next()
	p.skipModifiers()
	p.accept(kwInto)
	p.accept(kwTable) // SQL Server / Informix INSERT INTO TABLE t
	from, to, ok := p.targetName()
	if !ok {
		p.markIncomplete()
	} else {
		p.addTable(from, to, true)
	}
	p.hints() // PARTITION (…)
	if p.accept(kwAs) {
		p.next() // INSERT INTO t AS alias (PostgreSQL, SQLite)
	}
	if p.peek().kind == tLParen {
		if p.parenStartsQuery() {
			p.paren()
		} else {
			p.skipParen() // column list
		}
	}
	if p.startsQuery() {
		p.query()
	}
	p.scan(true)
}

// update parses UPDATE: its table references (all written: for MySQL's
// multi-table form every joined table counts as written), then SET, FROM,
// WHERE, RETURNING.
func (p *parser) update() {
	p.write = true
	p.next()
	p.skipModifiers()
	p.fromList(true, nil)
	p.scan(true)
}

// delete parses DELETE in its PostgreSQL/SQLite form (DELETE FROM t [USING …])
// and MySQL's multi-table forms (DELETE a, b FROM … / DELETE FROM a, b USING …).
func (p *parser) delete() {
	p.write = true
	p.next()
	p.skipModifiers()
	var targets [][2]int // token ranges of the target names
	var aliases []alias
	if p.accept(kwFrom) {
		targets = p.deleteTargets(targets)
		if p.accept(kwUsing) {
			p.fromList(false, &aliases)
		}
	} else {
		targets = p.deleteTargets(targets)
		if p.accept(kwFrom) {
			p.fromList(false, &aliases)
		} else {
			p.markIncomplete()
		}
	}
	for _, r := range targets {
		if r[1]-r[0] == 1 && len(aliases) > 0 {
			name := strings.ToLower(p.identText(p.toks[r[0]]))
			found := false
			for _, a := range aliases {
				if a.name == name {
					p.written = append(p.written, a.table)
					found = true
				}
			}
			if found {
				continue
			}
		}
		p.addTable(r[0], r[1], true)
	}
	p.scan(true)
}

// deleteTargets parses a comma-separated list of target names with optional
// ".*" (MySQL), ONLY and aliases.
func (p *parser) deleteTargets(targets [][2]int) [][2]int {
	for {
		p.accept(kwOnly)
		from, to, ok := p.targetName()
		if !ok {
			p.markIncomplete()
			return targets
		}
		if p.peek().kind == tDot && p.peekAt(1).kind == tStar {
			p.pos += 2 // t.*
		} else if p.peek().kind == tStar {
			p.next() // ONLY-less inheritance: t *
		}
		targets = append(targets, [2]int{from, to})
		p.hints()
		if p.isKw(kwAs) || p.isName(p.peek()) {
			p.alias()
		}
		p.hints()
		if p.peek().kind != tComma {
			return targets
		}
		p.next()
	}
}

// merge parses MERGE INTO target USING source ON … WHEN ….
func (p *parser) merge() {
	p.write = true
	p.next()
	p.accept(kwInto)
	p.tableRef(true, nil)
	if p.accept(kwUsing) {
		p.tableRef(false, nil)
	} else {
		p.markIncomplete()
	}
	p.scan(true)
}
