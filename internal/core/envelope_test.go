package core_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/serializer"
)

func sampleEnvelopes() []struct {
	head    core.Head
	payload []byte
} {
	return []struct {
		head    core.Head
		payload []byte
	}{
		{core.Head{Kind: core.KindValue, Tags: []string{"orders", "*Lowlevel:ll", "*"},
			Stamp: core.Stamp{Versions: []uint64{1, math.MaxUint64, 3}, Deadline: 1_700_000_300_000_000_000}}, []byte{0xc0}},
		{core.Head{Kind: core.KindPage, Check: "p\x00GET…", Tags: []string{"*", "articles"},
			Stamp: core.Stamp{Versions: []uint64{1 << 62, 7}, Created: 1_700_000_000_000_000_000, Deadline: math.MaxInt64}},
			bytes.Repeat([]byte("compressible "), 1000)},
		{core.Head{Kind: core.KindVary, Check: "base", Tags: []string{"articles"}}, []byte{0x90}},
		{core.Head{Kind: core.KindFragment, Check: strings.Repeat("c", 200), Tags: []string{"", "ü", strings.Repeat("t", 20000)},
			Stamp: core.Stamp{Versions: []uint64{0, 7, 9}}}, nil},
	}
}

// normalHead makes empty and nil slices alike.
func normalHead(h core.Head) core.Head {
	if len(h.Tags) == 0 {
		h.Tags = nil
	}
	if len(h.Versions) == 0 {
		h.Versions = nil
	}
	return h
}

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	for i, s := range sampleEnvelopes() {
		for _, above := range []int{0, core.DefaultCompressAbove} {
			b := core.AppendEnvelope([]byte("prefix"), &s.head, s.payload, above)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("%d: dst overwritten", i)
			}
			b = b[len("prefix"):]
			compressed := b[1]&core.FlagCompressed != 0
			if want := i == 1 && above > 0; compressed != want {
				t.Errorf("%d (above %d): compressed = %v, want %v", i, above, compressed, want)
			}
			if !compressed && len(b) != core.EnvelopeSize(&s.head, len(s.payload)) {
				t.Errorf("%d: %d bytes, EnvelopeSize %d", i, len(b), core.EnvelopeSize(&s.head, len(s.payload)))
			}
			h, p, err := core.OpenEnvelope(b)
			if err != nil {
				t.Fatalf("%d: %v", i, err)
			}
			if !reflect.DeepEqual(normalHead(h), normalHead(s.head)) || !bytes.Equal(p, s.payload) {
				t.Fatalf("%d: round trip\n got %+v %q\nwant %+v %q", i, h, p, s.head, s.payload)
			}
		}
	}
}

// TestOpenEnvelopeRejects: what is not a well-formed envelope of this
// version is an error of the right class, among them entries in the
// formats the caches wrote before the envelope.
func TestOpenEnvelopeRejects(t *testing.T) {
	t.Parallel()
	s := sampleEnvelopes()[0]
	good := core.AppendEnvelope(nil, &s.head, s.payload, 0)
	with := func(i int, c byte) []byte { b := bytes.Clone(good); b[i] = c; return b }
	plugin, err := serializer.AppendEncode(nil, &serializer.Entry{Check: []byte("q"), Versions: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, core.ErrUnsupported},
		{"magic only", []byte{'E'}, core.ErrUnsupported},
		{"low-level format L1", unhex("4c010000000000000000020c2a4c6f776c6576656c3a6c6c0500000000000000012a060000000000000007"), core.ErrUnsupported},
		{"page cache format 1", unhex("019ba0"), core.ErrUnsupported},
		{"page cache format 1, compressed", unhex("81ff0000"), core.ErrUnsupported},
		{"a plugin entry", plugin, core.ErrUnsupported},
		{"future version", with(1, core.EnvelopeVersion+1), core.ErrUnsupported},
		{"kind 0", with(2, 0), core.ErrUnsupported},
		{"unknown kind", with(2, 99), core.ErrUnsupported},
		{"head only", good[:3], core.ErrCorrupt},
		{"truncated head", good[:len(good)-len(s.payload)-1], core.ErrCorrupt},
		{"tag count beyond the entry", append(bytes.Clone(good[:4]), 0xff, 0xff, 0x03), core.ErrCorrupt},
		{"overlong varint", append(bytes.Clone(good[:3]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), core.ErrCorrupt},
		{"compressed flag on a plain payload", with(1, core.EnvelopeVersion|core.FlagCompressed), core.ErrCorrupt},
	}
	neg := core.Head{Kind: core.KindValue, Stamp: core.Stamp{Created: -1}}
	cases = append(cases, struct {
		name string
		b    []byte
		want error
	}{"negative time", core.AppendEnvelope(nil, &neg, []byte{1}, 0), core.ErrCorrupt})
	for _, tc := range cases {
		_, _, err := core.OpenEnvelope(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestOpenEnvelopeAllocations: the head's strings share one allocation.
func TestOpenEnvelopeAllocations(t *testing.T) {
	s := sampleEnvelopes()[0]
	b := core.AppendEnvelope(nil, &s.head, s.payload, 0)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = core.OpenEnvelope(b) }); n > 3 {
		t.Fatalf("%v allocations, want at most 3 (text, tags, versions)", n)
	}
}

// FuzzOpenEnvelope: no input makes the decoder panic or allocate much
// beyond its size; what decodes encodes back to an envelope that decodes
// to the same head and payload, and to the same bytes when it was not
// compressed and its varints were minimal (same length).
func FuzzOpenEnvelope(f *testing.F) {
	for _, s := range sampleEnvelopes() {
		f.Add(core.AppendEnvelope(nil, &s.head, s.payload, 0))
		f.Add(core.AppendEnvelope(nil, &s.head, s.payload, core.DefaultCompressAbove))
	}
	f.Add([]byte{'E', core.EnvelopeVersion | core.FlagCompressed, byte(core.KindPage), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := core.OpenEnvelope(b)
		if err != nil {
			if !errors.Is(err, core.ErrCorrupt) && !errors.Is(err, core.ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(p) > core.MaxDecodedSize {
			t.Fatalf("payload of %d bytes", len(p))
		}
		for _, above := range []int{0, 1} {
			again := core.AppendEnvelope(nil, &h, p, above)
			h2, p2, err := core.OpenEnvelope(again)
			if err != nil {
				t.Fatalf("re-encoded envelope does not decode: %v", err)
			}
			if !reflect.DeepEqual(normalHead(h), normalHead(h2)) || !bytes.Equal(p, p2) {
				t.Fatalf("round trip differs:\n%+v %q\n%+v %q", h, p, h2, p2)
			}
			if above == 0 && b[1]&core.FlagCompressed == 0 && len(again) == len(b) && !bytes.Equal(again, b) {
				t.Fatalf("re-encoded %x as %x", b, again)
			}
		}
	})
}

func TestFresh(t *testing.T) {
	t.Parallel()
	const marker = 1<<63 | 5
	cases := []struct {
		name           string
		stamp, current []uint64
		skip           int
		want           bool
	}{
		{"equal", []uint64{1, 2}, []uint64{1, 2}, -1, true},
		{"none", nil, []uint64{}, -1, true},
		{"changed", []uint64{1, 2}, []uint64{1, 3}, -1, false},
		{"other length", []uint64{1}, []uint64{1, 2}, -1, false},
		{"held", []uint64{1, 2}, []uint64{1, 0}, -1, false},
		{"zero stamp, held", []uint64{0, 2}, []uint64{0, 2}, -1, false},
		{"skipped tag held", []uint64{marker, 2}, []uint64{0, 2}, 0, true},
		{"skipped tag written", []uint64{marker, 2}, []uint64{9, 2}, 0, true},
		{"skipped tag with a version", []uint64{9, 2}, []uint64{9, 2}, 0, true},
		{"skipped tag, other held", []uint64{marker, 2}, []uint64{9, 0}, 0, false},
		{"marker elsewhere", []uint64{1, marker}, []uint64{1, 4}, 0, false},
	}
	for _, tc := range cases {
		got := core.FreshExcept(tc.stamp, tc.current, tc.skip, marker)
		if got != tc.want {
			t.Errorf("%s: FreshExcept = %v, want %v", tc.name, got, tc.want)
		}
		if tc.skip < 0 {
			s := core.Stamp{Versions: tc.stamp}
			if core.Fresh(tc.stamp, tc.current) != tc.want || s.Fresh(tc.current) != tc.want {
				t.Errorf("%s: Fresh differs from FreshExcept", tc.name)
			}
		}
	}
	if !core.Known([]uint64{1, 2}) || core.Known([]uint64{1, 0}) || !core.Known(nil) {
		t.Error("Known")
	}
	s := core.Stamp{Deadline: 100}
	if s.Expired(99) || !s.Expired(100) || (&core.Stamp{}).Expired(math.MaxInt64) {
		t.Error("Expired")
	}
}
