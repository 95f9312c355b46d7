package invalidation

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected outputs in testdata/invalidation")

// goldenPath is the file of golden cases, shared with the rest of the module's
// test data.
var goldenPath = filepath.Join("..", "testdata", "invalidation", "classify.txt")

// goldenCase is one case of the golden file:
//
//	=== name [dialect]
//	SQL, one or more lines
//	---
//	expected output (see format)
type goldenCase struct {
	name    string
	dialect Dialect
	sql     string
	want    string
}

func readGolden(t testing.TB) (header string, cases []goldenCase) {
	t.Helper()
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var hdr strings.Builder
	var cur *goldenCase
	inWant := false
	var sql, want []string
	flush := func() {
		if cur != nil {
			cur.sql = strings.Join(sql, "\n")
			cur.want = strings.TrimSpace(strings.Join(want, "\n"))
			cases = append(cases, *cur)
		}
		sql, want, inWant = nil, nil, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			flush()
			name := strings.TrimSpace(line[4:])
			i := strings.LastIndexByte(name, '[')
			if i < 0 || !strings.HasSuffix(name, "]") {
				t.Fatalf("case %q: name must end with [dialect]", name)
			}
			d, ok := dialectNames[name[i+1:len(name)-1]]
			if !ok {
				t.Fatalf("case %q: unknown dialect", name)
			}
			cur = &goldenCase{name: strings.TrimSpace(name[:i]), dialect: d}
		case cur == nil:
			hdr.WriteString(line + "\n")
		case !inWant && line == "---":
			inWant = true
		case inWant:
			want = append(want, line)
		default:
			sql = append(sql, line)
		}
	}
	flush()
	return hdr.String(), cases
}

var dialectNames = map[string]Dialect{"generic": Generic, "postgres": Postgres, "mysql": MySQL, "sqlite": SQLite}

// format renders a Statement the way the golden file spells it.
func format(s Statement) string {
	list := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = s
			if s == "" || strings.ContainsAny(s, " \"\\\t\n") {
				q[i] = strconv.Quote(s)
			}
		}
		return strings.Join(q, " ")
	}
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{
		{s.Complete, "complete"}, {s.Locking, "locking"}, {s.Returning, "returning"},
		{s.Into, "into"}, {s.Catalog, "catalog"},
	} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	out := fmt.Sprintf("kind %s\ntables %s\nwritten %s\nfunctions %s\nflags %s",
		s.Kind, list(s.Tables), list(s.Written), list(s.Functions), list(flags))
	if s.Statements != 1 {
		out += fmt.Sprintf("\nstatements %d", s.Statements)
	}
	return out
}

func TestGolden(t *testing.T) {
	header, cases := readGolden(t)
	if len(cases) < 100 {
		t.Errorf("only %d golden cases", len(cases))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Errorf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
	}
	if *update {
		var b strings.Builder
		b.WriteString(header)
		for i, c := range cases {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "=== %s [%s]\n%s\n---\n%s\n", c.name, c.dialect, c.sql, format(Classify(c.dialect, c.sql)))
		}
		if err := os.WriteFile(goldenPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := format(Classify(c.dialect, c.sql))
			if got != c.want {
				t.Errorf("%s\ngot:\n%s\nwant:\n%s", c.sql, got, c.want)
			}
		})
	}
}

func TestTableName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"users":              "users",
		`"Users"`:            "users",
		"`shop`.`users`":     "users",
		"public.users":       "users",
		`"public"."Users"`:   "users",
		"[dbo].[x]":          "x",
		`"my.table"`:         "my.table",
		`"a""b"`:             `a"b`,
		" Users ":            "users",
		`"sp ace"."t w o"`:   "t w o",
		"`a``b`":             "a`b",
		"":                   "",
		`db."Sch.ema".Tbl`:   "tbl",
		`[a.b]`:              "a.b",
		`"unterminated.name`: `"unterminated.name`,
	} {
		if got := TableName(in); got != want {
			t.Errorf("TableName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDialectOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Dialect{
		"postgres": Postgres, "mysql": MySQL, "sqlite": SQLite, "sqlite3": SQLite,
		"sqlserver": Generic, "": Generic, "clickhouse": Generic,
	} {
		if got := DialectOf(in); got != want {
			t.Errorf("DialectOf(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFunctionKind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    Dialect
		name string
		want FuncKind
	}{
		{Postgres, "count", FuncStable},
		{Postgres, "now", FuncVolatile},
		{Postgres, "pg_catalog.now", FuncVolatile},
		{Postgres, "pg_catalog.lower", FuncStable},
		{Postgres, "myschema.lower", FuncUnknown},
		{Postgres, "nextval", FuncVolatile},
		{Postgres, "pg_advisory_xact_lock", FuncVolatile},
		{Postgres, "pg_try_advisory_lock_shared", FuncVolatile},
		{Postgres, "generate_series", FuncStable},
		{Postgres, "my_func", FuncUnknown},
		{Postgres, "dblink", FuncUnknown},        // any statement, on any server: may write
		{Postgres, "query_to_xml", FuncVolatile}, // its query runs read-only
		{Postgres, "table_to_xml", FuncVolatile},
		{MySQL, "date", FuncStable},
		{SQLite, "date", FuncVolatile},
		{Generic, "date", FuncVolatile},
		{Generic, "count", FuncStable},
		{Generic, "greatest", FuncUnknown},
		{MySQL, "last_insert_id", FuncVolatile},
		{SQLite, "last_insert_rowid", FuncVolatile},
		{SQLite, "pragma_table_info", FuncStable},
		{MySQL, "if", FuncStable},
		{Postgres, "if", FuncUnknown},
		{MySQL, "rand", FuncVolatile},
		{SQLite, "random", FuncVolatile},
		{Postgres, "current_user", FuncVolatile},
		{Postgres, "COUNT", FuncStable},
		{SQLite, "json_each", FuncStable},
		{MySQL, "get_lock", FuncVolatile},
		// functions that write: unknown, so a statement calling them invalidates everything
		{Postgres, "dblink_exec", FuncUnknown},
		{Postgres, "lo_unlink", FuncUnknown},
		{Postgres, "lo_import", FuncUnknown},
		// read-only monitoring functions (gorm.io/plugin/prometheus calls them)
		{Postgres, "pg_database_size", FuncVolatile},
		{Postgres, "pg_last_xact_replay_timestamp", FuncVolatile},
		{Postgres, "xpath", FuncStable},
	} {
		if got := FunctionKind(c.d, c.name); got != c.want {
			t.Errorf("FunctionKind(%v, %q) = %v, want %v", c.d, c.name, got, c.want)
		}
	}
}

// TestInvariants checks properties every result must have, on the golden
// inputs in every dialect.
func TestInvariants(t *testing.T) {
	t.Parallel()
	_, cases := readGolden(t)
	for _, c := range cases {
		for d := Generic; d <= SQLite; d++ {
			checkInvariants(t, d, c.sql)
		}
	}
}

func checkInvariants(t testing.TB, d Dialect, sql string) {
	t.Helper()
	a := Classify(d, sql)
	b := Classify(d, sql)
	if format(a) != format(b) {
		t.Fatalf("not deterministic for %q:\n%s\n%s", sql, format(a), format(b))
	}
	for _, l := range [][]string{a.Tables, a.Written, a.Functions} {
		if !slices.IsSorted(l) || len(slices.Compact(slices.Clone(l))) != len(l) {
			t.Fatalf("not sorted and unique for %q: %q", sql, l)
		}
		for _, s := range l {
			if s == "" {
				t.Fatalf("empty name for %q", sql)
			}
		}
	}
	for _, w := range a.Written {
		if _, ok := slices.BinarySearch(a.Tables, w); !ok {
			t.Fatalf("written %q not in tables %q for %q", w, a.Tables, sql)
		}
	}
	if a.Kind == Unknown && a.Complete {
		t.Fatalf("unknown but complete for %q", sql)
	}
}

func TestDeepNesting(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		strings.Repeat("(", 100000),
		"SELECT * FROM " + strings.Repeat("(", 100000) + "SELECT 1" + strings.Repeat(")", 100000),
		"SELECT " + strings.Repeat("f(", 50000) + strings.Repeat(")", 50000),
		strings.Repeat("WITH a AS (", 5000),
	} {
		s := Classify(Postgres, sql)
		if s.Complete {
			t.Errorf("deeply nested input reported complete: %.40q…", sql)
		}
	}
}

func TestGoldenCoversDialects(t *testing.T) {
	t.Parallel()
	_, cases := readGolden(t)
	n := map[Dialect]int{}
	for _, c := range cases {
		n[c.dialect]++
	}
	for _, d := range []Dialect{Postgres, MySQL, SQLite} {
		if n[d] < 20 {
			t.Errorf("only %d golden cases for %v", n[d], d)
		}
	}
}

func ExampleClassify() {
	s := Classify(Postgres, `SELECT * FROM "users" LEFT JOIN "companies" "Company" ON "users"."company_id" = "Company"."id" WHERE "users"."id" = $1`)
	fmt.Println(s.Kind, s.Tables, s.Complete)

	s = Classify(MySQL, "UPDATE `orders` SET `status` = ? WHERE `id` IN (SELECT `order_id` FROM `refunds`)")
	fmt.Println(s.Kind, s.Tables, s.Written)

	s = Classify(SQLite, "SAVEPOINT sp1")
	fmt.Println(s.Kind)
	// Output:
	// read [companies users] true
	// write [orders refunds] [orders]
	// neutral
}

func ExampleTableName() {
	fmt.Println(TableName("`shop`.`Users`"), TableName(`"public"."Line Items"`))
	// Output: users line items
}

func ExampleFunctionKind() {
	fmt.Println(FunctionKind(Postgres, "count"), FunctionKind(Postgres, "now"), FunctionKind(Postgres, "my_func"))
	// Output: stable volatile unknown
}

// TestSQLiteBuiltins checks every built-in SQLite function documented at
// sqlite.org (core, math, aggregate, window, date and time, JSON, and the
// percentile and full-text extensions): none may be FuncUnknown, since an
// unknown function makes a read invalidate the whole cache.
func TestSQLiteBuiltins(t *testing.T) {
	t.Parallel()
	for kind, names := range map[FuncKind]string{
		FuncStable: `
			abs char coalesce concat concat_ws format glob hex if ifnull iif instr length like
			likelihood likely lower ltrim max min nullif octet_length printf quote replace round
			rtrim sign soundex substr substring trim typeof unhex unicode unistr unistr_quote
			unlikely upper zeroblob
			acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log
			log10 log2 mod pi pow power radians sin sinh sqrt tan tanh trunc
			avg count group_concat string_agg sum total
			median percentile percentile_cont percentile_disc
			row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
			last_value nth_value
			json jsonb json_array jsonb_array json_array_insert jsonb_array_insert
			json_array_length json_error_position json_extract jsonb_extract json_insert
			jsonb_insert json_object jsonb_object json_patch jsonb_patch json_pretty json_remove
			jsonb_remove json_replace jsonb_replace json_set jsonb_set json_type json_valid
			json_quote json_group_array jsonb_group_array json_group_object jsonb_group_object
			json_each jsonb_each json_tree jsonb_tree
			generate_series bm25 highlight snippet offsets matchinfo`,
		// time, randomness, connection state, and values fixed by the build
		// (a shared store can outlive an upgrade of the library)
		FuncVolatile: `
			random randomblob changes total_changes last_insert_rowid sqlite_version
			sqlite_source_id sqlite_compileoption_get sqlite_compileoption_used sqlite_offset
			date time datetime julianday unixepoch strftime timediff`,
		// may run anything
		FuncUnknown: `load_extension my_func`,
	} {
		for _, name := range strings.Fields(names) {
			if got := FunctionKind(SQLite, name); got != kind {
				t.Errorf("FunctionKind(SQLite, %q) = %v, want %v", name, got, kind)
			}
		}
	}
}
