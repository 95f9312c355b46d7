package serializer

import (
	"database/sql/driver"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzDecode(f *testing.F) {
	seed := func(b []byte) {
		f.Add(b)
		for _, n := range []int{0, 1, len(b) / 3, len(b) / 2, len(b) - 1} {
			f.Add(b[:n])
		}
	}
	for _, e := range []*Entry{{}, typical(1), typical(3), goldenEntry(), oneColumn(time.Now()), oneColumn([]byte{}), oneColumn([]byte(nil)), withRowTypes(typical(3))} {
		b, err := AppendEncode(nil, e)
		if err != nil {
			f.Fatal(err)
		}
		seed(b)
	}
	// Compressed entries, and a few hand-made compressed bodies.
	for _, e := range []*Entry{typical(10), typical(30), realistic(5), oneColumn(strings.Repeat("ab", 100))} {
		b, err := AppendEncodeOptions(nil, e, Options{CompressAbove: 1})
		if err != nil {
			f.Fatal(err)
		}
		if b[0]&FlagCompressed == 0 {
			f.Fatalf("seed %d rows not compressed", e.Rows)
		}
		seed(b)
	}
	f.Add(compressedWith(uvarint(200 << 20)))
	f.Add(compressedWith(append(uvarint(10), 0x00, 'x')))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		check, versions, herr := DecodeHeader(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Decode: err = %v, want ErrCorrupt or ErrUnsupported", err)
			}
			if herr != nil && !errors.Is(herr, ErrCorrupt) && !errors.Is(herr, ErrUnsupported) {
				t.Fatalf("DecodeHeader: err = %v", herr)
			}
			return
		}
		if herr != nil || string(check) != string(e.Check) || !slices.Equal(versions, e.Versions) {
			t.Fatalf("DecodeHeader disagrees with Decode: %q %v %v", check, versions, herr)
		}
		if len(e.Values) != len(e.Columns)*e.Rows {
			t.Fatalf("%d values for %d columns × %d rows", len(e.Values), len(e.Columns), e.Rows)
		}
		reencoded(t, e)
		// And through compression.
		b, err := AppendEncodeOptions(nil, e, Options{CompressAbove: 1})
		if err != nil {
			t.Fatalf("re-encode compressed: %v", err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded compressed (%#x): %v", b[0], err)
		}
		if err := equalEntries(e, again); err != nil {
			t.Fatalf("re-encoded compressed entry differs: %v", err)
		}
	})
}

func TestDecodeLocalFallback(t *testing.T) {
	t.Parallel()
	// A time written as Local where Local was 3h25m45s east: unless this
	// process's Local has that offset then, it reads back as a FixedZone with
	// the recorded zone name and offset.
	const offset = 3*3600 + 25*60 + 45
	data := []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa1, 'v', 0xa0, 0xa0, 0, 0, 0, 0, 1, 0x91,
		tagTime, 0x00, 0x00, zoneLocal, 0xa3, 'X', 'S', 'T', 0xcd, offset >> 8, offset & 0xff}
	e, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	tm := e.Values[0].(time.Time)
	if name, off := tm.Zone(); name != "XST" || off != offset || tm.Unix() != 0 || tm.Location() == time.Local {
		t.Errorf("got %v (zone %q %d, location %p)", tm, name, off, tm.Location())
	}
	var _ driver.Value = tm
}
