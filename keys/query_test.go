package keys

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

type status string
type id64 int64
type boolFlag bool
type ratio float64
type small uint8

// money is a Valuer by value.
type money struct{ cents int64 }

func (m money) Value() (driver.Value, error) { return m.cents, nil }

// ptrValuer is a Valuer by pointer that handles a nil receiver.
type ptrValuer struct{ s string }

func (p *ptrValuer) Value() (driver.Value, error) {
	if p == nil {
		return "nil receiver", nil
	}
	return p.s, nil
}

type failing struct{}

var errValue = errors.New("boom")

func (failing) Value() (driver.Value, error) { return nil, errValue }

func mustEncode(t *testing.T, args ...any) []byte {
	t.Helper()
	b, err := AppendQuery(nil, "postgres", "db", "SELECT ?", args)
	if err != nil {
		t.Fatalf("AppendQuery(%#v): %v", args, err)
	}
	return b
}

func TestAppendQueryDistinct(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	instant := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	one := 1
	str1 := "1"
	values := []any{
		nil,
		"",
		"1",
		"01",
		" 1",
		1,
		0,
		-1,
		int64(math.MinInt64),
		int64(math.MaxInt64),
		uint64(math.MaxUint64),
		uint64(math.MaxInt64 + 1),
		1.0,
		0.0,
		math.Copysign(0, -1),
		1.5,
		math.Inf(1),
		math.NaN(),
		[]byte("1"),
		[]byte{},
		[]byte(nil),
		true,
		false,
		instant,
		instant.Add(time.Nanosecond),
		instant.In(ny),
		instant.In(time.FixedZone("X", 0)),
		instant.In(time.FixedZone("UTC", 3600)),
		time.Time{},
		sql.Named("a", 1),
		sql.Named("b", 1),
		sql.Named("a", "1"),
		"a\x00b",
	}
	if !bytes.Equal(mustEncode(t, &one), mustEncode(t, 1)) || !bytes.Equal(mustEncode(t, &str1), mustEncode(t, "1")) {
		t.Error("a pointer does not encode as its pointee")
	}

	enc := make([][]byte, len(values))
	for i, v := range values {
		enc[i] = mustEncode(t, v)
	}
	if len(values) < 30 {
		t.Fatalf("only %d values", len(values))
	}
	for i := range values {
		for j := i + 1; j < len(values); j++ {
			if bytes.Equal(enc[i], enc[j]) {
				t.Errorf("%#v and %#v encode equal", values[i], values[j])
			}
		}
	}
}

func TestAppendQueryEqual(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 3, 1, 12, 0, 0, 5, time.UTC)
	var nilStatus *status
	var nilMoney *money
	tests := []struct {
		name string
		a, b any
	}{
		{"int kinds", int8(7), int64(7)},
		{"uint kinds", uint16(7), 7},
		{"uint64 small", uint64(7), int32(7)},
		{"float32", float32(1.5), 1.5},
		{"named string", status("on"), "on"},
		{"named int", id64(42), 42},
		{"named bool", boolFlag(true), true},
		{"named float", ratio(0.5), 0.5},
		{"named uint", small(3), 3},
		{"named bytes", json.RawMessage(`{}`), []byte(`{}`)},
		{"pointer", new(status), ""},
		{"nil pointer", nilStatus, nil},
		{"valuer", money{cents: 5}, int64(5)},
		{"pointer to valuer", &money{cents: 5}, int64(5)},
		{"nil pointer to value-receiver valuer", nilMoney, nil},
		{"pointer-receiver valuer", &ptrValuer{s: "x"}, "x"},
		{"nil pointer-receiver valuer is called", (*ptrValuer)(nil), "nil receiver"},
		{"time monotonic dropped", time.Now().Round(0), time.Unix(0, 0)}, // replaced below
		{"same time", ts, time.Date(2024, 3, 1, 12, 0, 0, 5, time.UTC)},
	}
	now := time.Now()
	tests[len(tests)-2].a, tests[len(tests)-2].b = now, now.Round(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if a, b := mustEncode(t, tt.a), mustEncode(t, tt.b); !bytes.Equal(a, b) {
				t.Errorf("%#v and %#v encode differently:\n%x\n%x", tt.a, tt.b, a, b)
			}
		})
	}
}

func TestAppendQueryTimeZones(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	ts := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, ny, time.FixedZone("EST", -5*3600), time.FixedZone("", 0), time.FixedZone("Z", 0)}
	for i, a := range zones {
		for j, b := range zones {
			ea, eb := mustEncode(t, ts.In(a)), mustEncode(t, ts.In(b))
			if (i == j) != bytes.Equal(ea, eb) {
				t.Errorf("zones %v and %v: equal encodings = %v", a, b, bytes.Equal(ea, eb))
			}
		}
	}
}

func TestAppendQueryBoundaries(t *testing.T) {
	t.Parallel()
	enc := func(dialect, identity, sql string, args ...any) []byte {
		b, err := AppendQuery(nil, dialect, identity, sql, args)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pairs := []struct {
		name string
		a, b []byte
	}{
		{"args split", enc("pg", "db", "q", "ab", "c"), enc("pg", "db", "q", "a", "bc")},
		{"arg count", enc("pg", "db", "q", "a"), enc("pg", "db", "q", "a", "")},
		{"nil vs empty", enc("pg", "db", "q", nil), enc("pg", "db", "q", "")},
		{"identity/sql", enc("pg", "a", "bc"), enc("pg", "ab", "c")},
		{"dialect/identity", enc("a", "bc", "q"), enc("ab", "c", "q")},
		{"sql/args", enc("pg", "db", "q", "x"), enc("pg", "db", "qx")},
		{"bytes vs string", enc("pg", "db", "q", []byte("x")), enc("pg", "db", "q", "x")},
		{"named vs positional", enc("pg", "db", "q", sql.Named("a", 1)), enc("pg", "db", "q", 1)},
	}
	for _, p := range pairs {
		if bytes.Equal(p.a, p.b) {
			t.Errorf("%s: encodings equal: %x", p.name, p.a)
		}
	}
	if !bytes.Equal(enc("pg", "db", "SELECT  1\n"), enc("pg", "db", "SELECT 1")) {
		t.Error("SQL is not normalised")
	}
}

func TestAppendQueryErrors(t *testing.T) {
	t.Parallel()
	ch := make(chan int)
	tests := []struct {
		name    string
		arg     any
		wantErr error
	}{
		{"struct", struct{ A int }{1}, ErrUnsupportedArg},
		{"map", map[string]int{"a": 1}, ErrUnsupportedArg},
		{"slice", []int{1}, ErrUnsupportedArg},
		{"string slice", []string{"a"}, ErrUnsupportedArg},
		{"chan", ch, ErrUnsupportedArg},
		{"func", func() {}, ErrUnsupportedArg},
		{"complex", complex(1, 2), ErrUnsupportedArg},
		{"pointer to struct", &struct{}{}, ErrUnsupportedArg},
		{"nested named", sql.Named("a", sql.Named("b", 1)), ErrUnsupportedArg},
		{"valuer returning struct", valuerOf(struct{}{}), ErrUnsupportedArg},
		{"erroring valuer", failing{}, errValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte("prefix")
			got, err := AppendQuery(dst, "pg", "db", "q", []any{1, tt.arg})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if string(got) != "prefix" {
				t.Errorf("dst = %q after error, want it unchanged", got)
			}
			t.Log(err)
		})
	}
}

type valuerFunc func() (driver.Value, error)

func (f valuerFunc) Value() (driver.Value, error) { return f() }

func valuerOf(v any) driver.Valuer { return valuerFunc(func() (driver.Value, error) { return v, nil }) }

// A Valuer returning itself must not recurse forever.
type selfValuer struct{}

func (s selfValuer) Value() (driver.Value, error) { return s, nil }

func TestAppendQuerySelfValuer(t *testing.T) {
	t.Parallel()
	if _, err := AppendQuery(nil, "pg", "db", "q", []any{selfValuer{}}); !errors.Is(err, ErrUnsupportedArg) {
		t.Fatalf("err = %v, want ErrUnsupportedArg", err)
	}
}

// Not parallel: AllocsPerRun.
func TestAppendQueryAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	sqlText := `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`
	args := []any{int64(42), 1}
	n := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = AppendQuery(buf[:0], "postgres", "localhost:5432/app?user=app", sqlText, args)
		if err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("AppendQuery allocates %v times, want 0", n)
	}
}
