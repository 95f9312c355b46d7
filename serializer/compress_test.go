package serializer

import (
	"bytes"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
)

// compressed encodes e with compression above 1 byte.
func compressed(t testing.TB, e *Entry) []byte {
	t.Helper()
	b, err := AppendEncodeOptions(nil, e, Options{CompressAbove: 1})
	if err != nil {
		t.Fatalf("AppendEncodeOptions: %v", err)
	}
	return b
}

func TestCompressedRoundTrip(t *testing.T) {
	t.Parallel()
	random := make([]byte, 8<<10)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	tests := []struct {
		name  string
		e     *Entry
		above int
		want  bool // compressed
	}{
		{"empty entry", &Entry{}, 1, false},
		{"1 row", typical(1), 1, false}, // too little to save an eighth
		{"100 rows", typical(100), 1, true},
		{"100 rows above the default", typical(100), DefaultCompressAbove, true},
		{"1 row above the default", typical(1), DefaultCompressAbove, false},
		{"100 rows, threshold above the size", typical(100), 1 << 20, false},
		{"100 rows, compression off", typical(100), 0, false},
		{"100 rows, negative threshold", typical(100), -1, false},
		{"1000 rows", typical(1000), DefaultCompressAbove, true},
		{"100 rows with row types", withRowTypes(typical(100)), 1, true},
		{"realistic 100 rows", realistic(100), DefaultCompressAbove, true},
		{"golden", goldenEntry(), 1, false},
		{"incompressible bytes", oneColumn(random), 1, false},
		{"long string", oneColumn(strings.Repeat("abc", 10000)), 1, true},
		// 1 MB of NULLs compresses too well for the decoder's ratio bound:
		// stored uncompressed.
		{"a million NULLs", nulls(1 << 20), 1, false},
		{"10k NULLs", nulls(10 << 10), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plain, err := AppendEncode(nil, tt.e)
			if err != nil {
				t.Fatal(err)
			}
			b, err := AppendEncodeOptions([]byte("prefix"), tt.e, Options{CompressAbove: tt.above})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("dst not kept: %q", b[:6])
			}
			b = b[len("prefix"):]
			if got := b[0]&FlagCompressed != 0; got != tt.want {
				t.Fatalf("compressed = %v, want %v (%d bytes, %d uncompressed)", got, tt.want, len(b), len(plain))
			}
			if !tt.want && !bytes.Equal(b, plain) {
				t.Fatal("uncompressed AppendEncodeOptions differs from AppendEncode")
			}
			if tt.want && len(b) >= len(plain) {
				t.Fatalf("compressed %d bytes ≥ %d uncompressed", len(b), len(plain))
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := equalEntries(tt.e, got); err != nil {
				t.Fatal(err)
			}
			check, versions, err := DecodeHeader(b)
			if err != nil || !bytes.Equal(check, tt.e.Check) || !slices.Equal(versions, tt.e.Versions) {
				t.Fatalf("DecodeHeader = %q %v %v", check, versions, err)
			}
		})
	}
}

func nulls(n int) *Entry {
	return &Entry{Columns: []Column{{Name: "v"}}, Values: make([]driver.Value, n), Rows: n}
}

// TestCompressedHeaderCheap checks that the header of a compressed entry is
// read without decompressing: ParseHeader allocates nothing.
func TestCompressedHeaderCheap(t *testing.T) {
	b := compressed(t, typical(100))
	if b[0]&FlagCompressed == 0 {
		t.Fatal("not compressed")
	}
	versions := make([]uint64, 0, 4)
	// AllocsPerRun counts every goroutine's allocations (a background one
	// of an earlier test can add one): the least of three runs.
	allocs := 1e9
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(100, func() {
			if _, _, err := ParseHeader(b, versions[:0]); err != nil {
				t.Fatal(err)
			}
		}))
	}
	if allocs != 0 {
		t.Errorf("ParseHeader of a compressed entry: %v allocations", allocs)
	}
}

func TestCompressedDecodeDoesNotAlias(t *testing.T) {
	t.Parallel()
	e := typical(50)
	b := compressed(t, e)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if err := equalEntries(e, got); err != nil {
		t.Fatalf("decoded entry changed with its input: %v", err)
	}
}

// compressedWith builds a compressed entry from a header and a raw S2 block.
func compressedWith(block []byte) []byte {
	return append([]byte{Version | FlagCompressed, 0xc4, 1, 'q', 0x91, 7}, block...)
}

func uvarint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func TestCompressedCorrupt(t *testing.T) {
	t.Parallel()
	valid := compressed(t, typical(20))
	if valid[0]&FlagCompressed == 0 {
		t.Fatal("not compressed")
	}
	trailing := func() []byte {
		plain, _ := AppendEncode(nil, &Entry{Check: []byte("q"), Versions: []uint64{7}})
		// plain = header (6 bytes) + body; compress body + one junk byte.
		return compressedWith(s2.Encode(nil, append(bytes.Clone(plain[6:]), 0)))
	}
	okEntry := func() []byte {
		plain, _ := AppendEncode(nil, &Entry{Check: []byte("q"), Versions: []uint64{7}})
		return compressedWith(s2.Encode(nil, plain[6:]))
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"no block", compressedWith(nil)},
		{"empty block", compressedWith(uvarint(0))},
		{"bad uvarint", compressedWith([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		{"declares 200 MiB", compressedWith(append(uvarint(200<<20), 0, 0, 0, 0))},
		{"declares 4 GiB", compressedWith(append(uvarint(1<<32-1), 0, 0, 0, 0))},
		{"declares more than MaxDecodedSize", compressedWith(append(uvarint(MaxDecodedSize+1), make([]byte, 5<<20)...))},
		{"declares 100x its size", compressedWith(append(uvarint(100<<10), make([]byte, 1000)...))},
		{"literal shorter than declared", compressedWith(append(uvarint(10), 0x00, 'x'))},
		{"garbage block", compressedWith(append(uvarint(20), bytes.Repeat([]byte{0xfe}, 20)...))},
		{"body with a trailing byte", trailing()},
		{"valid entry with a trailing byte", append(bytes.Clone(valid), 0)},
		{"valid entry, block cut", valid[:len(valid)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Decode(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode: err = %v, want ErrCorrupt", err)
			}
		})
	}
	if e, err := Decode(okEntry()); err != nil || string(e.Check) != "q" || e.Versions[0] != 7 {
		t.Fatalf("hand-made compressed entry: %v %v", e, err)
	}
	for n := range len(valid) {
		if _, err := Decode(valid[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode of the first %d of %d bytes: err = %v, want ErrCorrupt", n, len(valid), err)
		}
	}
}

// TestCompressedLyingLengthAllocates checks that a few bytes declaring a
// huge body do not make Decode allocate it.
func TestCompressedLyingLengthAllocates(t *testing.T) {
	data := compressedWith(append(uvarint(255<<20), 0, 0, 0, 0))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("10 decodes of a %d-byte entry allocated %d bytes", len(data), n)
	}
}

func TestCompressedRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	valid := compressed(t, typical(20))
	for range 20000 {
		data := bytes.Clone(valid)
		for range 1 + r.IntN(4) {
			data[r.IntN(len(data))] = byte(r.Uint32())
		}
		if r.IntN(4) == 0 {
			data = data[:r.IntN(len(data))]
		}
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Decode(%x): err = %v", data, err)
			}
			continue
		}
		reencoded(t, e)
	}
}

// TestGoldenCompressed pins the compressed format: the golden file must
// decode to the entry, and today's encoding must have the same header and,
// once decompressed, the same body. The bytes of the S2 block itself are the
// compressor's choice and are not pinned.
func TestGoldenCompressed(t *testing.T) {
	t.Parallel()
	e := typical(20)
	b := compressed(t, e)
	path := filepath.Join("..", "testdata", "serializer", "entry_v1_s2.bin")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if want[0] != Version|FlagCompressed {
		t.Fatalf("golden format byte %#x", want[0])
	}
	got, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalEntries(e, got); err != nil {
		t.Fatal(err)
	}
	// emptyBody is the length of the body of an entry without columns and
	// rows: created, columns, rows, values.
	const emptyBody = 4
	split := func(data []byte) (header, body []byte) {
		t.Helper()
		check, versions, err := ParseHeader(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := AppendEncode(nil, &Entry{Check: check, Versions: versions})
		if err != nil {
			t.Fatal(err)
		}
		n := len(hdr) - emptyBody
		if body, err = s2.Decode(nil, data[n:]); err != nil {
			t.Fatal(err)
		}
		return data[:n], body
	}
	gh, gb := split(b)
	wh, wb := split(want)
	if !bytes.Equal(gh[1:], wh[1:]) || !bytes.Equal(gb, wb) {
		t.Fatalf("compressed encoding changed (bump Version and run go test -update if intended)\nheader %x\nwant   %x", gh, wh)
	}
}

// realistic returns rows rows of a users table as an application would
// have it: varied names, emails, cities, timestamps, a nullable column,
// a status enum, a decimal as a string, and a short free-text bio.
func realistic(rows int) *Entry {
	r := rand.New(rand.NewPCG(7, 8))
	first := strings.Fields("Ada Alan Grace Edsger Barbara Donald Ken Dennis Margaret Linus Guido Rob Niklaus John Frances Radia Tim Leslie Brian Bjarne Anders James Larry Sophie Katherine")
	last := strings.Fields("Lovelace Turing Hopper Dijkstra Liskov Knuth Thompson Ritchie Hamilton Torvalds Rossum Pike Wirth McCarthy Allen Perlman Berners-Lee Lamport Kernighan Stroustrup Hejlsberg Gosling Wall Wilson Johnson")
	cities := strings.Fields("London Paris Berlin Madrid Rome Vienna Prague Warsaw Lisbon Dublin Oslo Helsinki")
	words := strings.Fields("loves builds writes maintains open source databases compilers kernels networks distributed systems coffee hiking music chess photography and the for with")
	statuses := []string{"active", "active", "active", "pending", "suspended"}
	cols := []Column{
		{Name: "id", DatabaseTypeName: "INT8", ScanType: "int64", HasNullable: true},
		{Name: "first_name", DatabaseTypeName: "VARCHAR", ScanType: "string", Length: 64, HasLength: true, HasNullable: true},
		{Name: "last_name", DatabaseTypeName: "VARCHAR", ScanType: "string", Length: 64, HasLength: true, HasNullable: true},
		{Name: "email", DatabaseTypeName: "VARCHAR", ScanType: "string", Length: 255, HasLength: true, HasNullable: true},
		{Name: "city", DatabaseTypeName: "TEXT", ScanType: "sql.NullString", Nullable: true, HasNullable: true},
		{Name: "status", DatabaseTypeName: "TEXT", ScanType: "string", HasNullable: true},
		{Name: "balance", DatabaseTypeName: "NUMERIC", ScanType: "string", Precision: 12, Scale: 2, HasDecimalSize: true, HasNullable: true},
		{Name: "bio", DatabaseTypeName: "TEXT", ScanType: "sql.NullString", Nullable: true, HasNullable: true},
		{Name: "created_at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "time.Time", HasNullable: true},
		{Name: "updated_at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "time.Time", HasNullable: true},
		{Name: "deleted_at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "sql.NullTime", Nullable: true, HasNullable: true},
		{Name: "login_count", DatabaseTypeName: "INT4", ScanType: "int32", HasNullable: true},
	}
	e := &Entry{
		Check:    []byte("Q\x01\x08postgres\x1blocalhost:5432/app?user=app" + `SELECT * FROM "users" WHERE "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT 100`),
		Versions: []uint64{0x4000_1234_5678_9abc},
		Columns:  cols,
		Rows:     rows,
		Created:  1720105445123456789,
		Values:   make([]driver.Value, 0, rows*len(cols)),
	}
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		fn, ln := first[r.IntN(len(first))], last[r.IntN(len(last))]
		var city, bio any
		if r.IntN(5) > 0 {
			city = cities[r.IntN(len(cities))]
		}
		if r.IntN(3) > 0 {
			n := 4 + r.IntN(10)
			ws := make([]string, n)
			for j := range ws {
				ws[j] = words[r.IntN(len(words))]
			}
			bio = strings.Join(ws, " ")
		}
		created := base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
		e.Values = append(e.Values,
			int64(1000+i), fn, ln,
			fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(fn), strings.ToLower(ln), r.IntN(100)),
			city, statuses[r.IntN(len(statuses))],
			fmt.Sprintf("%d.%02d", r.IntN(100000), r.IntN(100)),
			bio, created, created.Add(time.Duration(r.Int64N(int64(90*24*time.Hour)))),
			nil, int64(r.IntN(500)))
	}
	return e
}

// TestCompressionRatio reports sizes on 100-row entries (go test -v -run Ratio).
func TestCompressionRatio(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		e    *Entry
	}{{"typical 100x8", typical(100)}, {"realistic 100x12", realistic(100)}} {
		plain, err := AppendEncode(nil, c.e)
		if err != nil {
			t.Fatal(err)
		}
		b := compressed(t, c.e)
		better := s2.EncodeBetter(nil, plain)
		t.Logf("%s: %d bytes uncompressed, %d compressed (S2, body only): ratio %.2f; S2 better on the whole entry would give %d (%.2f)",
			c.name, len(plain), len(b), float64(len(plain))/float64(len(b)), len(better), float64(len(plain))/float64(len(better)))
		if len(b) >= len(plain) {
			t.Errorf("%s: no gain", c.name)
		}
	}
}
