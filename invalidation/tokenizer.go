package invalidation

import "strings"

// tokKind is the lexical class of a token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // unquoted identifier or keyword
	tQuoted         // "ident", `ident`, [ident]
	tString         // '…', E'…', N'…', X'…', $$…$$, $tag$…$tag$
	tNumber         // 12, 1.5e3, 0x1F
	tParam          // ?, ?1, $1, :name, @name, @@var
	tLParen         // (
	tRParen         // )
	tComma          // ,
	tSemi           // ;
	tDot            // .
	tStar           // *
	tEq             // =
	tCast           // :: (PostgreSQL)
	tOp             // any other operator or stray byte
)

// token is one lexical unit; start and end index the source (quotes included).
type token struct {
	start, end int
	kind       tokKind
	kw         keyword // for tWord: the keyword, or kwNone
}

// lexer turns SQL text into tokens in one pass.
type lexer struct {
	src  string
	d    Dialect
	toks []token
	bad  bool // an unterminated string, quoted identifier or comment
	// ambiguous: a string holds a backslash where the session decides what
	// it means (MySQL's NO_BACKSLASH_ESCAPES, PostgreSQL's
	// standard_conforming_strings): where the string ends is not certain
	ambiguous bool
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// backslashEscapes reports whether '…' strings treat \ as an escape character.
func (l *lexer) backslashEscapes() bool { return l.d == MySQL || l.d == Generic }

// tokenize appends the tokens of l.src to l.toks.
func (l *lexer) tokenize() {
	src, n := l.src, len(l.src)
	inExec := false // inside a MySQL executable comment /*! … */
	i := 0
	for i < n {
		c := src[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && i+1 < n && src[i+1] == '-' && l.dashComment(i):
			i = skipLine(src, i+2)
		case c == '#' && l.d == MySQL:
			i = skipLine(src, i+1)
		case c == '/' && i+1 < n && src[i+1] == '*':
			if l.d == MySQL || l.d == Generic {
				j := i + 2
				if j < n && src[j] == 'M' && j+1 < n && src[j+1] == '!' {
					j++ // MariaDB /*M! … */
				}
				if j < n && src[j] == '!' {
					j++
					for k := 0; k < 6 && j < n && isDigit(src[j]); k++ {
						j++
					}
					inExec = true
					i = j
					continue
				}
			}
			i = l.blockComment(i)
		case c == '*' && inExec && i+1 < n && src[i+1] == '/':
			inExec = false
			i += 2
		case c == '\'':
			i = l.sessionQuoted(i, l.quoted(i, i+1, '\'', tString, l.backslashEscapes()), l.d != SQLite)
		case (c == 'e' || c == 'E') && i+1 < n && src[i+1] == '\'' && l.d != MySQL && l.d != SQLite:
			i = l.quoted(i, i+2, '\'', tString, true)
		case (c == 'n' || c == 'N' || c == 'x' || c == 'X' || c == 'b' || c == 'B') && i+1 < n && src[i+1] == '\'':
			i = l.sessionQuoted(i, l.quoted(i, i+2, '\'', tString, l.backslashEscapes()), l.d != SQLite)
		case c == '"':
			i = l.sessionQuoted(i, l.quoted(i, i+1, '"', tQuoted, l.backslashEscapes()), l.d == MySQL || l.d == Generic)
		case c == '`':
			i = l.quoted(i, i+1, '`', tQuoted, false)
		case c == '[' && (l.d == SQLite || l.d == Generic):
			i = l.quoted(i, i+1, ']', tQuoted, false)
		case c == '$':
			i = l.dollar(i)
		case c == '?':
			j := i + 1
			for j < n && isDigit(src[j]) {
				j++
			}
			l.emit(tParam, i, j)
			i = j
		case c == ':':
			switch {
			case i+1 < n && src[i+1] == ':':
				l.emit(tCast, i, i+2)
				i += 2
			case i+1 < n && isIdentStart(src[i+1]):
				j := i + 2
				for j < n && isIdentChar(src[j]) {
					j++
				}
				l.emit(tParam, i, j)
				i = j
			default:
				l.emit(tOp, i, i+1)
				i++
			}
		case c == '@':
			j := i + 1
			if j < n && src[j] == '@' {
				j++
			}
			switch {
			case j < n && (src[j] == '\'' || src[j] == '"' || src[j] == '`'):
				// MySQL @'quoted var': consume the quoted part with the variable.
				k := l.quoted(i, j+1, src[j], tParam, src[j] != '`')
				i = k
			case j < n && isIdentChar(src[j]):
				for j < n && (isIdentChar(src[j]) || src[j] == '.') {
					j++
				}
				l.emit(tParam, i, j)
				i = j
			default:
				l.emit(tOp, i, i+1)
				i++
			}
		case isDigit(c) || c == '.' && i+1 < n && isDigit(src[i+1]):
			i = l.number(i)
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentChar(src[j]) {
				j++
			}
			l.toks = append(l.toks, token{start: i, end: j, kind: tWord, kw: lookupKeyword(src[i:j])})
			i = j
		default:
			k := tOp
			switch c {
			case '(':
				k = tLParen
			case ')':
				k = tRParen
			case ',':
				k = tComma
			case ';':
				k = tSemi
			case '.':
				k = tDot
			case '*':
				k = tStar
			case '=':
				k = tEq
			}
			l.emit(k, i, i+1)
			i++
		}
	}
	if inExec {
		l.bad = true
	}
}

func (l *lexer) emit(k tokKind, start, end int) {
	l.toks = append(l.toks, token{start: start, end: end, kind: k})
}

// dashComment reports whether the "--" at i starts a comment. MySQL (and, to
// read as much as possible, Generic) needs a space or control character after it.
func (l *lexer) dashComment(i int) bool {
	if l.d != MySQL && l.d != Generic {
		return true
	}
	j := i + 2
	return j >= len(l.src) || l.src[j] <= ' '
}

func skipLine(src string, i int) int {
	for i < len(src) && src[i] != '\n' {
		i++
	}
	return i
}

// blockComment skips the /* … */ comment at i (nested on PostgreSQL).
func (l *lexer) blockComment(i int) int {
	src, n := l.src, len(l.src)
	depth := 0
	for i < n {
		switch {
		case src[i] == '/' && i+1 < n && src[i+1] == '*':
			depth++
			i += 2
			if l.d != Postgres && depth > 1 {
				depth = 1
			}
		case src[i] == '*' && i+1 < n && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	l.bad = true
	return n
}

// quoted scans a quoted token that starts at start and whose body starts at
// body, ending with the quote character q; a doubled q is an escaped q.
func (l *lexer) quoted(start, body int, q byte, k tokKind, backslash bool) int {
	src, n := l.src, len(l.src)
	i := body
	for i < n {
		c := src[i]
		switch {
		case backslash && c == '\\':
			i += 2
		case c == q:
			if q != ']' && i+1 < n && src[i+1] == q {
				i += 2
				continue
			}
			l.emit(k, start, i+1)
			return i + 1
		default:
			i++
		}
	}
	l.bad = true
	l.emit(k, start, n)
	return n
}

// sessionQuoted marks the lexer ambiguous when the quoted token
// src[start:end] holds a backslash and session decides what a backslash
// in it means; it returns end.
func (l *lexer) sessionQuoted(start, end int, session bool) int {
	if session && strings.IndexByte(l.src[start:end], '\\') >= 0 {
		l.ambiguous = true
	}
	return end
}

// dollar scans a token starting with '$': a $1 placeholder, a dollar-quoted
// string, a SQLite $name parameter, or part of an identifier (MySQL).
func (l *lexer) dollar(i int) int {
	src, n := l.src, len(l.src)
	j := i + 1
	if j < n && isDigit(src[j]) {
		for j < n && isDigit(src[j]) {
			j++
		}
		l.emit(tParam, i, j)
		return j
	}
	if l.d == Postgres || l.d == Generic {
		// $tag$ … $tag$
		k := j
		if k < n && isIdentStart(src[k]) {
			for k < n && isIdentChar(src[k]) && src[k] != '$' {
				k++
			}
		}
		if k < n && src[k] == '$' {
			tag := src[i : k+1]
			for m := k + 1; m+len(tag) <= n; m++ {
				if src[m] == '$' && src[m:m+len(tag)] == tag {
					end := m + len(tag)
					l.emit(tString, i, end)
					return end
				}
			}
			l.bad = true
			l.emit(tString, i, n)
			return n
		}
	}
	if j < n && isIdentChar(src[j]) {
		for j < n && isIdentChar(src[j]) {
			j++
		}
		if l.d == MySQL {
			l.toks = append(l.toks, token{start: i, end: j, kind: tWord})
		} else {
			l.emit(tParam, i, j)
		}
		return j
	}
	l.emit(tOp, i, j)
	return j
}

// number scans a numeric literal.
func (l *lexer) number(i int) int {
	src, n := l.src, len(l.src)
	start := i
	if src[i] == '0' && i+1 < n && (src[i+1] == 'x' || src[i+1] == 'X' || src[i+1] == 'b' || src[i+1] == 'B') {
		i += 2
		for i < n && (isDigit(src[i]) || src[i] >= 'a' && src[i] <= 'f' || src[i] >= 'A' && src[i] <= 'F' || src[i] == '_') {
			i++
		}
		l.emit(tNumber, start, i)
		return i
	}
	for i < n && (isDigit(src[i]) || src[i] == '_') {
		i++
	}
	if i < n && src[i] == '.' {
		i++
		for i < n && isDigit(src[i]) {
			i++
		}
	}
	if i < n && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < n && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < n && isDigit(src[j]) {
			for j < n && isDigit(src[j]) {
				j++
			}
			i = j
		}
	}
	l.emit(tNumber, start, i)
	return i
}
