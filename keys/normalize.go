package keys

import "strings"

// Normalize returns sql with every run of whitespace outside string literals,
// quoted identifiers and comments collapsed to one separator, and leading and
// trailing whitespace removed. When there is nothing to change (the common case
// for SQL that GORM generates) it returns sql itself without allocating.
//
// Normalize never changes what a statement means, in any of the dialects GORM
// supports (PostgreSQL, MySQL/MariaDB, SQLite, SQL Server): two texts that
// normalise equal are the same statement. Whitespace means the ASCII space,
// tab, newline, carriage return and form feed (the characters every one of
// these dialects treats as whitespace). These parts are kept verbatim:
//
//   - '…' literals (” escapes), "…" and `…` quoted names or strings
//     ("" and “ escapes), [ … ] brackets, and $tag$…$tag$ dollar quotes;
//   - /* … */ comments (they may be MySQL executable comments or optimizer
//     hints) and "-- " comments to the end of their line.
//
// The separator is one space, except after a "--" comment, and after a '…'
// literal when the run held a line break: there it is a newline, because the
// comment ends at the line break, and because PostgreSQL concatenates two
// literals only when a line break separates them.
//
// Where the dialects disagree on where a literal or comment ends, Normalize
// preserves more rather than less: from the first such construct on it keeps
// the rest of the text verbatim (apart from trailing whitespace). These are a
// backslash inside '…' or "…" (an escape in MySQL, a plain character in
// standard PostgreSQL strings), a '#' outside quotes (a comment in MySQL, an
// operator in PostgreSQL), "--" not followed by whitespace (a comment in
// PostgreSQL and SQLite, two minus signs in MySQL), a "/*" inside a block
// comment (PostgreSQL nests them), a carriage return inside a "--" comment,
// quote or comment characters inside a block comment, bracket or dollar quote,
// and anything left unterminated.
func Normalize(sql string) string {
	return normalize(sql)
}

// isSpace reports whether c is whitespace in every supported dialect.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// isIdentChar reports whether c can continue an unquoted identifier (in
// PostgreSQL and MySQL, '$' can): a '$' right after one does not open a dollar
// quote.
func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isDollarTagStart and isDollarTagChar follow PostgreSQL's dolq_start and
// dolq_cont.
func isDollarTagStart(c byte) bool {
	return c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDollarTagChar(c byte) bool {
	return isDollarTagStart(c) || '0' <= c && c <= '9'
}

// ambiguousBody reports whether the body of a block comment, a bracket or a
// dollar quote holds characters that some dialect would read as the start of a
// literal or comment.
func ambiguousBody(s string) bool {
	return strings.ContainsAny(s, "'\"`\\#") || strings.Contains(s, "--") || strings.Contains(s, "/*")
}

// special marks the bytes scan must look at: whitespace and the bytes that
// open quotes or comments.
var special = func() (t [256]bool) {
	for _, c := range []byte(" \t\n\r\f'\"`[$#-/") {
		t[c] = true
	}
	return t
}()

// token kinds, to choose the separator after them.
const (
	tokOther = iota
	tokQuote
	tokLineComment
)

// normalizer writes the output lazily: until it diverges from the source, the
// output is src[base:pos], and nothing is allocated.
type normalizer struct {
	src      string
	out      strings.Builder
	diverged bool // out is in use
	base     int  // start of the output in src while out is nil
	pos      int  // end of the source consumed so far

	// For tests: when trace is set, scan records the verbatim spans of src
	// (quotes and comments) and where it gave up (bail; -1 if it did not).
	trace bool
	spans [][2]int
	bail  int
}

// verbatim records that src[i:j] is a quoted part or comment.
func (z *normalizer) verbatim(i, j int) {
	if z.trace {
		z.spans = append(z.spans, [2]int{i, j})
	}
}

// giveUp keeps src[i:hi] verbatim: the dialects disagree on how to read it.
func (z *normalizer) giveUp(i, hi int) {
	if z.trace {
		z.bail = i
	}
	z.keep(hi)
}

// keep copies src[pos:j] to the output.
func (z *normalizer) keep(j int) {
	if z.diverged {
		z.out.WriteString(z.src[z.pos:j])
	}
	z.pos = j
}

// replace replaces src[pos:j] by s in the output.
func (z *normalizer) replace(j int, s string) {
	if !z.diverged {
		if z.src[z.pos:j] == s {
			z.pos = j
			return
		}
		z.diverged = true
		z.out.Grow(len(z.src) - z.base)
		z.out.WriteString(z.src[z.base:z.pos])
	}
	z.out.WriteString(s)
	z.pos = j
}

func normalize(src string) string {
	lo, hi := 0, len(src)
	for lo < hi && isSpace(src[lo]) {
		lo++
	}
	for hi > lo && isSpace(src[hi-1]) {
		hi--
	}
	z := normalizer{src: src, base: lo, pos: lo}
	z.scan(hi)
	if !z.diverged {
		return src[lo:hi]
	}
	return z.out.String()
}

// scan processes src[pos:hi]; src[hi:] is whitespace (or empty).
func (z *normalizer) scan(hi int) {
	src := z.src
	prev := tokOther
	i := z.pos
	for i < hi {
		c := src[i]
		if !special[c] {
			i++
			prev = tokOther
			continue
		}
		switch {
		case c == ' ' && prev != tokLineComment && (i+1 >= hi || !isSpace(src[i+1])):
			// A single space: the separator it would become.
		case isSpace(c):
			j := i + 1
			for j < hi && isSpace(src[j]) {
				j++
			}
			z.keep(i)
			sep := " "
			if prev == tokLineComment || prev == tokQuote && strings.ContainsAny(src[i:j], "\n\r") {
				sep = "\n"
			}
			z.replace(j, sep)
			i = j
			prev = tokOther
			continue

		case c == '\'' || c == '"' || c == '`':
			// a backslash is ambiguous in '…' and "…", never in `…`
			end, ok := quoted(src, i, hi, c, c != '`')
			if !ok {
				z.giveUp(i, hi)
				return
			}
			z.verbatim(i, end)
			i = end
			prev = tokOther
			if c == '\'' {
				prev = tokQuote
			}
			continue

		case c == '[':
			j := strings.IndexByte(src[i+1:hi], ']')
			// "]]" is an escaped ']' in SQL Server: ambiguous with PostgreSQL's a[b[1]].
			if j < 0 || ambiguousBody(src[i+1:i+1+j]) || strings.IndexByte(src[i+1:i+1+j], '$') >= 0 ||
				i+2+j < hi && src[i+2+j] == ']' {
				z.giveUp(i, hi)
				return
			}
			z.verbatim(i, i+j+2)
			i += j + 2
			prev = tokOther
			continue

		case c == '$':
			if i > 0 && isIdentChar(src[i-1]) {
				break // part of an identifier
			}
			t := i + 1
			if t < hi && isDollarTagStart(src[t]) {
				for t < hi && isDollarTagChar(src[t]) {
					t++
				}
			}
			if t >= hi || src[t] != '$' {
				break // a parameter such as $1, or a lone '$'
			}
			delim := src[i : t+1]
			body := src[t+1 : hi]
			j := strings.Index(body, delim)
			if j < 0 || ambiguousBody(body[:j]) {
				z.giveUp(i, hi)
				return
			}
			z.verbatim(i, t+1+j+len(delim))
			i = t + 1 + j + len(delim)
			prev = tokOther
			continue

		case c == '#':
			z.giveUp(i, hi)
			return

		case c == '-':
			if i+1 >= hi || src[i+1] != '-' {
				break
			}
			if i+2 < hi && !isSpace(src[i+2]) {
				z.giveUp(i, hi) // "--x": a comment in PostgreSQL, not in MySQL
				return
			}
			end := hi
			if j := strings.IndexByte(src[i:hi], '\n'); j >= 0 {
				end = i + j
			}
			if r := strings.IndexByte(src[i:end], '\r'); r >= 0 && (i+r != end-1 || end == hi) {
				z.giveUp(i, hi) // PostgreSQL ends the comment at '\r', MySQL does not
				return
			}
			z.verbatim(i, end)
			i = end
			prev = tokLineComment
			continue

		case c == '/':
			if i+1 >= hi || src[i+1] != '*' {
				break
			}
			j := strings.Index(src[i+2:hi], "*/")
			if j < 0 || ambiguousBody(src[i+2:i+2+j]) {
				z.giveUp(i, hi)
				return
			}
			z.verbatim(i, i+j+4)
			i += j + 4
			prev = tokOther
			continue
		}
		i++
		prev = tokOther
	}
	z.keep(hi)
}

// quoted returns the end (one past the closing quote) of the quoted text
// starting at src[i] == q, where a doubled q is an escape. If backslashAmbiguous
// is set, a backslash makes the end ambiguous: ok is false, as it is when the
// text is unterminated.
func quoted(src string, i, hi int, q byte, backslashAmbiguous bool) (end int, ok bool) {
	for j := i + 1; ; {
		k := strings.IndexByte(src[j:hi], q)
		if k < 0 {
			return 0, false
		}
		if backslashAmbiguous && strings.IndexByte(src[j:j+k], '\\') >= 0 {
			return 0, false
		}
		end = j + k
		if end+1 < hi && src[end+1] == q {
			j = end + 2 // a doubled quote
			continue
		}
		return end + 1, true
	}
}
