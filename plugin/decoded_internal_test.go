package plugin

import (
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/gormcache/gormcache/serializer"
)

func encodedEntry(t *testing.T, v string) []byte {
	t.Helper()
	b, err := serializer.AppendEncode(nil, &serializer.Entry{
		Check:    []byte("q"),
		Versions: []uint64{7},
		Columns:  []serializer.Column{{Name: "name", ScanType: "string"}},
		Values:   []driver.Value{v},
		Rows:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A byte store's hit decodes an entry once while its bytes stay the same,
// and again as soon as they differ, whatever the store does with the
// buffer it returned.
func TestDecodedEntries(t *testing.T) {
	d := newDecodedEntries()
	a := encodedEntry(t, "alice")
	e1, err := d.decode("k", a)
	if err != nil || e1.Values[0] != "alice" {
		t.Fatalf("decode = %v, %v", e1, err)
	}
	if e2, _ := d.decode("k", append([]byte(nil), a...)); e2 != e1 {
		t.Fatal("the same bytes were decoded again")
	}
	if e3, _ := d.decode("other", a); e3 == e1 {
		t.Fatal("another key's slot served this key's entry")
	}

	// a store reusing its buffer: the bytes kept are a copy
	buf := encodedEntry(t, "bob__")
	e4, _ := d.decode("r", buf)
	copy(buf, encodedEntry(t, "carol"))
	e5, err := d.decode("r", buf)
	if err != nil || e4.Values[0] != "bob__" || e5.Values[0] != "carol" {
		t.Fatalf("after the buffer changed: %v then %v (%v)", e4.Values, e5.Values, err)
	}

	// corrupt bytes: an error, and the slot's entry is not served for them
	bad := append([]byte(nil), a...)
	bad = bad[:len(bad)-3]
	if _, err := d.decode("k", bad); !errors.Is(err, serializer.ErrCorrupt) {
		t.Fatalf("truncated entry: %v", err)
	}
	if e6, _ := d.decode("k", a); e6 != e1 {
		t.Fatal("a corrupt read replaced the decoded entry")
	}
}
