package viewcache

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/internal/testsupport"
)

func sampleRecords() []*record {
	stamp := func(kind core.Kind, check string, tags []string, versions []uint64, created, deadline int64) core.Head {
		return core.Head{Kind: kind, Check: check, Tags: tags, Stamp: core.Stamp{Versions: versions, Created: created, Deadline: deadline}}
	}
	return []*record{
		{
			Head:   stamp(kindPage, "p\x00GET…", []string{"*", "*Viewcache:vc", "articles"}, []uint64{1 << 62, 7, 1<<64 - 1}, 1_700_000_000_000_000_000, 1_700_000_300_000_000_000),
			status: 200, header: http.Header{"Content-Type": {"text/html"}, "X-Multi": {"a", "b"}},
			body: []byte("<p>hello</p>"), vary: []string{"Accept-Language"}, etag: `"abc"`,
		},
		{
			Head:   stamp(kindPage, "big", []string{"*"}, []uint64{1}, 0, 0),
			status: 404, body: bytes.Repeat([]byte("compressible "), 1000),
		},
		{Head: stamp(kindVary, "base", []string{"articles"}, nil, 0, 0), vary: []string{"Accept", "Cookie"}},
		{Head: stamp(kindFragment, "f\x00sidebar", []string{"*", "a"}, []uint64{3, 4}, 0, 0), body: []byte("<ul></ul>")},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, want := range sampleRecords() {
		b, err := want.marshal()
		if err != nil {
			t.Fatal(err)
		}
		compressed := b[1]&core.FlagCompressed != 0
		if compressed != (i == 1) {
			t.Errorf("record %d: compressed = %v (%d bytes)", i, compressed, len(b))
		}
		got, err := unmarshal(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(normal(got), normal(want)) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// normal makes empty and nil slices and maps alike.
func normal(r *record) record {
	c := *r
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if len(c.Versions) == 0 {
		c.Versions = nil
	}
	if len(c.header) == 0 {
		c.header = nil
	}
	if len(c.body) == 0 {
		c.body = nil
	}
	if len(c.vary) == 0 {
		c.vary = nil
	}
	return c
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := sampleRecords()[0].marshal()
	big, _ := sampleRecords()[1].marshal()
	flagged := append([]byte(nil), good...)
	flagged[1] |= core.FlagCompressed
	value := core.AppendEnvelope(nil, &core.Head{Kind: core.KindValue}, []byte{0xc0}, 0)
	cases := map[string][]byte{
		"empty":                              nil,
		"one byte":                           {'E'},
		"future format":                      append([]byte{'E', core.EnvelopeVersion + 1}, good[2:]...),
		"truncated":                          good[:len(good)-3],
		"trailing bytes":                     append(append([]byte(nil), good...), 0xc0),
		"compressed flag on a plain payload": flagged,
		"truncated compressed payload":       big[:len(big)-5],
		"a low-level value":                  value,
	}
	for name, b := range cases {
		if _, err := unmarshal(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", name, err)
		}
	}
}

// TestFormerFormat: the records format 1 wrote before the envelope
// (testdata/format-1.hex: a page, a compressed page, a Vary record and a
// fragment, as that version wrote them) are corrupt entries of an
// unsupported format.
func TestFormerFormat(t *testing.T) {
	for i, b := range formerRecords(t) {
		if _, err := unmarshal(b); !errors.Is(err, errCorrupt) || !errors.Is(err, core.ErrUnsupported) {
			t.Errorf("record %d: %v, want errCorrupt and core.ErrUnsupported", i, err)
		}
	}
}

// formerRecords reads the records of testdata/format-1.hex.
func formerRecords(t testing.TB) [][]byte {
	t.Helper()
	raws := testsupport.HexLines(t, "testdata/format-1.hex")
	if len(raws) != 4 {
		t.Fatalf("%d records in testdata/format-1.hex, want 4", len(raws))
	}
	return raws
}

// FuzzUnmarshal: whatever the bytes, unmarshal returns a record or an
// error, never panics, and what it returns encodes back to the same record.
func FuzzUnmarshal(f *testing.F) {
	for _, r := range sampleRecords() {
		b, _ := r.marshal()
		f.Add(b)
	}
	for _, b := range formerRecords(f) {
		f.Add(b)
	}
	f.Add([]byte{'E', core.EnvelopeVersion, byte(kindPage), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x95, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshal(b)
		if err != nil {
			return
		}
		again, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := unmarshal(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(r), normal(r2)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", r, r2)
		}
	})
}

func TestCanonicalQuery(t *testing.T) {
	cases := map[string]string{
		"":                 "",
		"a=1&b=2":          "a=1&b=2",
		"b=2&a=1":          "a=1&b=2",
		"tag=y&a=1&tag=x":  "a=1&tag=y&tag=x",
		"q=a+b&x":          "q=a+b&x=",
		"q=a%20b":          "q=a+b",
		"a=%zz&&b":         "a=%zz&b=",
		"%62=1&a=2":        "a=2&b=1",
		"x=1;y=2&a=0":      "a=0&x=1%3By%3D2",
		"naïve=1&e=%C3%A9": "e=%C3%A9&na%C3%AFve=1",
	}
	for in, want := range cases {
		if got := canonicalQuery(in); got != want {
			t.Errorf("canonicalQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDirectivesAndTTL(t *testing.T) {
	h := http.Header{"Cache-Control": {`public, max-age="60"`, "S-MaxAge=120"}}
	if d := directives(h); d["max-age"] != "60" || d["s-maxage"] != "120" {
		t.Fatalf("directives %v", d)
	}
	for cc, want := range map[string]string{"max-age=abc": "0s", "s-maxage=5, max-age=60": "5s", "public": "none"} {
		ttl, ok := responseTTL(http.Header{"Cache-Control": {cc}}, timeZero)
		got := ttl.String()
		if !ok {
			got = "none"
		}
		if got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
	names, star := varyNames(http.Header{"Vary": {"accept-language, Accept", "Accept-Language"}})
	if strings.Join(names, ",") != "Accept,Accept-Language" || star {
		t.Fatalf("vary %v %v", names, star)
	}
}

var timeZero = time.Time{}

// FuzzCanonicalQuery: canonical order is a fixed point, and parameters in
// any order of distinct names give one key.
func FuzzCanonicalQuery(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "b=2&a=1&a=0", "q=a+b%20c", "%zz=1&x", "a;b=c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c := canonicalQuery(raw)
		if again := canonicalQuery(c); again != c {
			t.Fatalf("canonicalQuery(%q) = %q, but canonicalQuery(%q) = %q", raw, c, c, again)
		}
		parts := strings.Split(raw, "&")
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		names := map[string]bool{}
		for _, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if d, err := url.QueryUnescape(k); err == nil {
				k = d // %61 and a are one name
			}
			if names[k] {
				return // repeated names keep their order: reversing changes the key
			}
			names[k] = true
		}
		if rev := canonicalQuery(strings.Join(parts, "&")); rev != c {
			t.Fatalf("%q and its reverse give %q and %q", raw, c, rev)
		}
	})
}
