package keys

import (
	"strings"
	"testing"
	"unsafe"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"only whitespace", " \t\n ", ""},
		{"unchanged", "SELECT * FROM users WHERE id = ?", "SELECT * FROM users WHERE id = ?"},
		{"gorm postgres", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`,
			`SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`},
		{"runs collapse", "SELECT  *\n\tFROM   users", "SELECT * FROM users"},
		{"trim", "  SELECT 1 \n", "SELECT 1"},
		{"tabs and newlines", "SELECT\ta,\r\n\tb\fFROM t", "SELECT a, b FROM t"},
		{"vertical tab is not whitespace", "SELECT\v 1", "SELECT\v 1"},
		{"single-quoted kept", "SELECT  'a   b'  FROM t", "SELECT 'a   b' FROM t"},
		{"doubled quote", "SELECT 'it''s   x'   ,  1", "SELECT 'it''s   x' , 1"},
		{"empty literal", "SELECT ''  ,  ''''", "SELECT '' , ''''"},
		{"double-quoted kept", `SELECT  "a  ""b""  c"   FROM t`, `SELECT "a  ""b""  c" FROM t`},
		{"backtick kept", "SELECT  `a   b`  FROM  `t  ``x`", "SELECT `a   b` FROM `t  ``x`"},
		{"brackets kept", "SELECT  [my   col]  FROM t", "SELECT [my   col] FROM t"},
		{"array subscript", "SELECT  a[1]  ,  b[ 2 ]", "SELECT a[1] , b[ 2 ]"},
		{"dollar quote", "SELECT  $$a   b$$  ,  $fn$ x  y $fn$   FROM t", "SELECT $$a   b$$ , $fn$ x  y $fn$ FROM t"},
		{"dollar params", "SELECT * FROM t WHERE a = $1  AND b = $2", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"dollar in identifier", "SELECT a$b$  c FROM t", "SELECT a$b$ c FROM t"},
		{"block comment kept", "SELECT  /*+  MAX_EXECUTION_TIME(1000)  */  *  FROM t", "SELECT /*+  MAX_EXECUTION_TIME(1000)  */ * FROM t"},
		{"mysql executable comment", "SELECT /*!  STRAIGHT_JOIN */  a", "SELECT /*!  STRAIGHT_JOIN */ a"},
		{"line comment keeps its line break", "SELECT a -- the   a\n   FROM t", "SELECT a -- the   a\nFROM t"},
		{"line comment crlf", "SELECT a -- c\r\n  FROM t", "SELECT a -- c\r\nFROM t"},
		{"line comment at end", "SELECT a  -- c  \n  ", "SELECT a -- c"},
		{"line comment bare", "SELECT 1 --\nFROM t", "SELECT 1 --\nFROM t"},
		{"postgres literal continuation", "SELECT 'a'\n   'b'", "SELECT 'a'\n'b'"},
		{"literal then space", "SELECT 'a'   FROM t", "SELECT 'a' FROM t"},
		{"literal then newline", "SELECT 'a'\n  FROM t", "SELECT 'a'\nFROM t"},
		{"quote in line comment", "SELECT 1 -- it's\n  FROM t", "SELECT 1 -- it's\nFROM t"},
		{"unicode", "SELECT  'héllo   wörld'  ,  ü", "SELECT 'héllo   wörld' , ü"},
		{"nbsp is not whitespace", "SELECT\u00a0\u00a01", "SELECT\u00a0\u00a01"},

		// Ambiguous across dialects: the rest is kept verbatim.
		{"backslash in literal", `SELECT  'a\'  ,  '  b  '   x`, `SELECT 'a\'  ,  '  b  '   x`},
		{"backslash in double quotes", `SELECT  "a\"  ,  "  b  "   x`, `SELECT "a\"  ,  "  b  "   x`},
		{"hash comment", "SELECT  a  #  c  \n  FROM   t", "SELECT a #  c  \n  FROM   t"},
		{"dashes without space", "SELECT  1--1  ,  2", "SELECT 1--1  ,  2"},
		{"nested block comment", "SELECT  /* a /* b */  '  c  ' */  1", "SELECT /* a /* b */  '  c  ' */  1"},
		{"quote in block comment", "SELECT  /* it's */  1  ,  '  x  '", "SELECT /* it's */  1  ,  '  x  '"},
		{"quote in dollar quote", "SELECT  $$ it's $$   '  x  '", "SELECT $$ it's $$   '  x  '"},
		{"sql server escaped bracket", "SELECT  [a]]  b]  FROM t", "SELECT [a]]  b]  FROM t"},
		{"carriage return in line comment", "SELECT 1 -- a\r  b\n  c", "SELECT 1 -- a\r  b\n  c"},
		{"unterminated literal", "SELECT  'abc   ", "SELECT 'abc"},
		{"unterminated comment", "SELECT  /* abc   ", "SELECT /* abc"},
		{"unterminated dollar", "SELECT  $a$ abc   ", "SELECT $a$ abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Normalize(tt.in)
			if got != tt.want {
				t.Errorf("Normalize(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := Normalize(got); again != got {
				t.Errorf("not idempotent: Normalize(%q) = %q", got, again)
			}
		})
	}
}

// Not parallel: AllocsPerRun.
func TestNormalizeReturnsInput(t *testing.T) {
	in := `SELECT * FROM "users" WHERE "users"."id" = $1 AND name = 'a  b' ORDER BY "users"."id" LIMIT 1`
	if got := Normalize(in); got != in || unsafe.StringData(got) != unsafe.StringData(in) {
		t.Fatalf("Normalize(%q) = %q, want the input itself", in, got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Normalize(in) }); n != 0 {
		t.Errorf("Normalize allocates %v times on unchanged input, want 0", n)
	}
	trimmed := in + "  "
	if n := testing.AllocsPerRun(100, func() { _ = Normalize(trimmed) }); n != 0 {
		t.Errorf("Normalize allocates %v times when only trimming, want 0", n)
	}
}

// fieldsSQL splits s around runs of SQL whitespace (not Unicode whitespace).
func fieldsSQL(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
}

func stripSpace(s string) string {
	return strings.Join(fieldsSQL(s), "")
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"", " ", "SELECT  *  FROM t", "SELECT 'a  b'  FROM t", "a -- c\n  b", "a /* c */  b",
		"$$  $$  x", "$a$ b $a$", "'a'\n 'b'", `"a  b"  c`, "`a  b`  c", "[a  b]  c", `'a\'  b`,
		"a  #  b", "a--b  c", "a -- b\r\n  c", "/* /* */  */", "'unterminated  ", "x\t\ty\n\nz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Normalize(s)
		if again := Normalize(got); again != got {
			t.Fatalf("not idempotent: Normalize(%q) = %q, Normalize of that = %q", s, got, again)
		}
		// Only whitespace is ever changed.
		if stripSpace(got) != stripSpace(s) {
			t.Fatalf("Normalize(%q) = %q changed more than whitespace", s, got)
		}
		if got != "" && (isSpace(got[0]) || isSpace(got[len(got)-1])) {
			t.Fatalf("Normalize(%q) = %q is not trimmed", s, got)
		}
		// Without quote or comment characters, every run is one space.
		if !strings.ContainsAny(s, "'\"`[$#-/") {
			if want := strings.Join(fieldsSQL(s), " "); got != want {
				t.Fatalf("Normalize(%q) = %q, want %q", s, got, want)
			}
		}
		// Outside quotes and comments, no run of two whitespace characters.
		if i := doubleSpaceOutsideQuotes(got); i >= 0 {
			t.Fatalf("Normalize(%q) = %q has a whitespace run outside quotes at %d", s, got, i)
		}
	})
}

// doubleSpaceOutsideQuotes returns the index of a run of two whitespace
// characters in a normalised text outside its quotes and comments and before
// any part the normaliser keeps verbatim, or -1.
func doubleSpaceOutsideQuotes(s string) int {
	z := normalizer{src: s, trace: true, bail: -1}
	z.scan(len(s))
	end := len(s)
	if z.bail >= 0 {
		end = z.bail
	}
	inside := func(i int) bool {
		for _, sp := range z.spans {
			if sp[0] <= i && i < sp[1] {
				return true
			}
		}
		return false
	}
	for i := 0; i+1 < end; i++ {
		if isSpace(s[i]) && isSpace(s[i+1]) && !inside(i) && !inside(i+1) {
			return i
		}
	}
	return -1
}
