package keys_test

import (
	"bytes"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/gormcache/gormcache/keys"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, paris)
	type status string
	for _, tc := range []struct {
		name string
		args []any
		want []any
	}{
		{"none", nil, nil},
		{"scalars", []any{nil, true, false, 42, int8(-3), uint64(1) << 63, 1.5, float32(0.25), "x", []byte("b"), []byte(nil), []byte{}},
			[]any{nil, true, false, int64(42), int64(-3), uint64(1) << 63, 1.5, 0.25, "x", []byte("b"), []byte(nil), []byte{}}},
		{"named types and pointers", []any{status("open"), ptr(7), uint8(1)}, []any{"open", int64(7), int64(1)}},
		{"named argument", []any{sql.Named("id", 9)}, []any{sql.Named("id", int64(9))}},
		{"time", []any{at, at.UTC()}, []any{keys.TimeArg{Time: at, Location: paris.String()}, keys.TimeArg{Time: at.UTC(), Location: "UTC"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := keys.AppendQuery(nil, "postgres", "postgres:h/5432/db/u/public", "SELECT * FROM t WHERE a = $1", tc.args)
			if err != nil {
				t.Fatal(err)
			}
			q, err := keys.ParseQuery(b)
			if err != nil {
				t.Fatal(err)
			}
			if q.Dialect != "postgres" || q.Identity != "postgres:h/5432/db/u/public" || q.SQL != keys.Normalize("SELECT * FROM t WHERE a = $1") {
				t.Errorf("header: %+v", q)
			}
			if len(q.Args) != len(tc.want) {
				t.Fatalf("args: %#v, want %#v", q.Args, tc.want)
			}
			for i, a := range q.Args {
				w := tc.want[i]
				if ta, ok := a.(keys.TimeArg); ok {
					wt := w.(keys.TimeArg)
					if !ta.Time.Equal(wt.Time) || ta.Location != wt.Location || ta.String() != wt.String() {
						t.Errorf("arg %d = %v, want %v", i, ta, wt)
					}
					continue
				}
				if !reflect.DeepEqual(a, w) {
					t.Errorf("arg %d = %#v, want %#v", i, a, w)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseQueryRejects(t *testing.T) {
	t.Parallel()
	good, _ := keys.AppendQuery(nil, "sqlite", "id", "SELECT 1", []any{1, "x"})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"not Q":          append([]byte{'X'}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"unknown tag":    append(append([]byte{}, good[:len(good)-3]...), 0x7f, 1, 'x'),
	} {
		if _, err := keys.ParseQuery(b); !errors.Is(err, keys.ErrMalformedQuery) {
			t.Errorf("%s: err = %v, want ErrMalformedQuery", name, err)
		}
	}
	if _, err := keys.ParseQuery(append([]byte{'Q', 99}, good[2:]...)); err == nil {
		t.Error("another format: no error")
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, args := range [][]any{nil, {1, "x", nil, true, 1.5, []byte("b")}, {time.Unix(0, 0).UTC()}, {sql.Named("a", "b")}} {
		b, err := keys.AppendQuery(nil, "postgres", "id", "SELECT $1", args)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := keys.ParseQuery(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes. Times aside: arbitrary
		// bytes can name a location with an offset it never has, which no
		// time.Time encodes (TestParseQuery covers real times).
		for _, a := range q.Args {
			if n, ok := a.(sql.NamedArg); ok {
				a = n.Value
			}
			if _, ok := a.(keys.TimeArg); ok {
				return
			}
		}
		again, err := keys.AppendQuery(nil, q.Dialect, q.Identity, q.SQL, q.Args)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", q, err)
		}
		if keys.Normalize(q.SQL) == q.SQL && !bytes.Equal(again, b) {
			t.Fatalf("round trip differs:\n%x\n%x", b, again)
		}
	})
}
