package serializer

import (
	"bytes"
	"database/sql/driver"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var allFields = Column{
	Name: "price", DatabaseTypeName: "NUMERIC", ScanType: "sql.NullString",
	Length: 1 << 40, HasLength: true, Precision: 12, Scale: 2, HasDecimalSize: true,
	Nullable: true, HasNullable: true,
}

func oneColumn(v driver.Value) *Entry {
	return &Entry{
		Check:    []byte("Q\x01canonical"),
		Versions: []uint64{1, math.MaxUint64},
		Columns:  []Column{{Name: "v", DatabaseTypeName: "ANY", ScanType: "interface {}"}},
		Values:   []driver.Value{v},
		Rows:     1,
		Created:  1700000000123456789,
	}
}

func roundTrip(t *testing.T, e *Entry) *Entry {
	t.Helper()
	b, err := AppendEncode(nil, e)
	if err != nil {
		t.Fatalf("AppendEncode: %v", err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if err := equalEntries(e, got); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return got
}

func TestRoundTripValues(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	base := time.Date(2024, 7, 4, 15, 4, 5, 123456789, time.UTC)
	tests := []struct {
		name string
		v    driver.Value
	}{
		{"null", nil},
		{"false", false},
		{"true", true},
		{"zero", int64(0)},
		{"small int", int64(7)},
		{"negative", int64(-33)},
		{"big int", int64(1) << 40},
		{"min int64", int64(math.MinInt64)},
		{"max int64", int64(math.MaxInt64)},
		{"max uint64", uint64(math.MaxUint64)},
		{"uint64 zero", uint64(0)},
		{"float32", float32(1.5)},
		{"float32 NaN", float32(math.NaN())},
		{"float", 3.25},
		{"negative zero", math.Copysign(0, -1)},
		{"max float", math.MaxFloat64},
		{"smallest float", math.SmallestNonzeroFloat64},
		{"+inf", math.Inf(1)},
		{"-inf", math.Inf(-1)},
		{"nan", math.NaN()},
		{"empty string", ""},
		{"string", "hello"},
		{"unicode string", "héllo, 世界 🌍"},
		{"long string", string(bytes.Repeat([]byte("x"), 70000))},
		{"string with NUL", "a\x00b"},
		{"nil bytes", []byte(nil)},
		{"empty bytes", []byte{}},
		{"bytes", []byte{0, 1, 2, 0xff}},
		{"bytes that look like a string", []byte("hello")},
		{"utc", base},
		{"utc no nanos", base.Truncate(time.Second)},
		{"local", base.Local()},
		{"new york", base.In(ny)},
		{"new york winter", time.Date(2024, 1, 4, 15, 4, 5, 1, ny)},
		{"fixed zone", base.In(time.FixedZone("XYZ", 5*3600+1800))},
		{"fixed zone no name", base.In(time.FixedZone("", -3600))},
		{"fixed zone named UTC", base.In(time.FixedZone("UTC", 0))},
		{"zero time", time.Time{}},
		{"before 1970", time.Date(1900, 2, 3, 4, 5, 6, 7, time.UTC)},
		{"far future", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"monotonic dropped", time.Now()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "fixed zone named UTC" {
				// Per the contract, a named location that loads with the same
				// offset comes back as that location: here, time.UTC.
				b, _ := AppendEncode(nil, oneColumn(tt.v))
				e, err := Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				if got := e.Values[0].(time.Time); !got.Equal(tt.v.(time.Time)) || got.Location() != time.UTC {
					t.Errorf("got %v in %p, want the same instant in time.UTC", got, got.Location())
				}
				return
			}
			got := roundTrip(t, oneColumn(tt.v))
			if tm, ok := tt.v.(time.Time); ok {
				if gl, wl := got.Values[0].(time.Time).Location(), tm.Location(); gl.String() != wl.String() {
					t.Errorf("location %q, want %q", gl, wl)
				}
			}
		})
	}
}

func TestRoundTripTimeUnknownLocation(t *testing.T) {
	t.Parallel()
	// An entry written where "Mars/Olympus" loaded reads back as a FixedZone
	// with the recorded name and offset.
	b, err := AppendEncode(nil, oneColumn(time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("Mars/Olympus", 7200))))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	tm := e.Values[0].(time.Time)
	if name, off := tm.Zone(); name != "Mars/Olympus" || off != 7200 || tm.Location().String() != "Mars/Olympus" {
		t.Errorf("zone %q %d (location %q)", name, off, tm.Location())
	}
	// A named location whose offset differs from the recorded one (other
	// tzdata) also falls back to a FixedZone.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata")
	}
	loc := time.FixedZone("America/New_York", 3600) // lies about New York
	b, _ = AppendEncode(nil, oneColumn(time.Date(2024, 1, 1, 0, 0, 0, 0, loc)))
	e, err = Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	tm = e.Values[0].(time.Time)
	if _, off := tm.Zone(); off != 3600 || tm.Location() == ny {
		t.Errorf("got offset %d in %v, want the recorded 3600 in a FixedZone", off, tm.Location())
	}
}

func TestRoundTripEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    *Entry
	}{
		{"empty", &Entry{}},
		{"zero rows", &Entry{Check: []byte("q"), Columns: []Column{allFields, {Name: "id"}}}},
		{"all column fields", &Entry{Columns: []Column{allFields}, Values: []driver.Value{"12.50"}, Rows: 1}},
		{"no versions", &Entry{Check: []byte("q"), Columns: []Column{{Name: "n"}}, Values: []driver.Value{int64(1)}, Rows: 1}},
		{"1 row", typical(1)},
		{"100 rows", typical(100)},
		{"1000 rows", typical(1000)},
		{"row types", withRowTypes(typical(3))},
		{"row types, zero rows", &Entry{Columns: []Column{{Name: "id"}}, ColumnSets: [][]Column{{{Name: "id"}}}, RowSets: []uint8{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			roundTrip(t, tt.e)
		})
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	t.Parallel()
	e := typical(3)
	b, err := AppendEncode(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	check, versions, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if err := equalEntries(e, got); err != nil {
		t.Fatalf("decoded entry changed with its input: %v", err)
	}
	if !bytes.Equal(check, e.Check) || len(versions) != len(e.Versions) || versions[0] != e.Versions[0] {
		t.Fatalf("DecodeHeader results changed with the input")
	}
}

func TestDecodeHeader(t *testing.T) {
	t.Parallel()
	e := typical(10)
	b, err := AppendEncode([]byte("junk before"), e)
	if err != nil {
		t.Fatal(err)
	}
	b = b[len("junk before"):]
	check, versions, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(check, e.Check) || !slices.Equal(versions, e.Versions) {
		t.Errorf("DecodeHeader = %q %v, want %q %v", check, versions, e.Check, e.Versions)
	}
	buf := make([]uint64, 0, 8)
	check, versions, err = ParseHeader(b, buf[:0])
	if err != nil || !bytes.Equal(check, e.Check) || !slices.Equal(versions, e.Versions) {
		t.Errorf("ParseHeader = %q %v %v", check, versions, err)
	}
	// The header alone decodes from a prefix of the entry.
	if _, _, err := DecodeHeader(b[:len(b)/2]); err != nil {
		t.Errorf("DecodeHeader of a prefix holding the header: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    *Entry
		want error
	}{
		{"int32", oneColumn(int32(1)), ErrValueType},
		{"int", oneColumn(1), ErrValueType},
		{"struct", oneColumn(struct{}{}), ErrValueType},
		{"pointer", oneColumn(new(int64)), ErrValueType},
		{"named string", oneColumn(driver.Value(status("x"))), ErrValueType},
		{"values without rows", &Entry{Columns: []Column{{}}, Values: []driver.Value{int64(1)}}, ErrInvalidEntry},
		{"rows without values", &Entry{Columns: []Column{{}}, Rows: 2}, ErrInvalidEntry},
		{"negative rows", &Entry{Rows: -1}, ErrInvalidEntry},
		{"row sets without column sets", func() *Entry { e := withRowTypes(typical(2)); e.ColumnSets = nil; return e }(), ErrInvalidEntry},
		{"fewer row sets than rows", func() *Entry { e := withRowTypes(typical(2)); e.RowSets = e.RowSets[:1]; return e }(), ErrInvalidEntry},
		{"row set out of range", func() *Entry { e := withRowTypes(typical(2)); e.RowSets[1] = 2; return e }(), ErrInvalidEntry},
		{"column set too narrow", func() *Entry { e := withRowTypes(typical(2)); e.ColumnSets[0] = e.ColumnSets[0][1:]; return e }(), ErrInvalidEntry},
		{"too many column sets", func() *Entry {
			e := withRowTypes(typical(1))
			for len(e.ColumnSets) <= MaxColumnSets {
				e.ColumnSets = append(e.ColumnSets, e.Columns)
			}
			return e
		}(), ErrInvalidEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := AppendEncode([]byte("keep"), tt.e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(got) != "keep" {
				t.Errorf("dst = %q after error", got)
			}
			t.Log(err)
		})
	}
}

type status string

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	valid, err := AppendEncode(nil, typical(2))
	if err != nil {
		t.Fatal(err)
	}
	with := func(first byte) []byte { b := bytes.Clone(valid); b[0] = first; return b }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"nil", nil, ErrCorrupt},
		{"version 0", with(0), ErrUnsupported},
		{"version 3", with(3), ErrUnsupported},
		{"version 2 without row types", with(VersionRowTypes), ErrCorrupt},
		{"compressed flag on an uncompressed body", with(Version | FlagCompressed), ErrCorrupt},
		{"compressed version 3", with(3 | FlagCompressed), ErrUnsupported},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrCorrupt},
		{"lying check length", []byte{Version, 0xc6, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"lying versions count", []byte{Version, 0xc4, 0, 0xdd, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"lying columns count", []byte{Version, 0xc4, 0, 0x90, 0, 0xdd, 0x7f, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"bad value tag", []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0, 1, 0x91, 9}, ErrCorrupt},
		{"count mismatch", []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0, 2, 0x91, 0}, ErrCorrupt},
		{"unknown column flag", []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0x7f, 1, 0x91, 0}, ErrUnsupported},
		{"nanoseconds out of range", []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0, 1, 0x91, 7, 0, 0xce, 0x3b, 0x9a, 0xca, 0x00, 0}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Decode(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Decode: err = %v, want %v", err, tt.want)
			}
		})
	}
	// The hand-made entries are right apart from the defect under test.
	ok := []byte{Version, 0xc4, 0, 0x90, 0, 0x91, 0x97, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0, 1, 0x91, 0}
	if _, err := Decode(ok); err != nil {
		t.Fatalf("hand-made entry: %v", err)
	}
}

func TestDecodeTruncations(t *testing.T) {
	t.Parallel()
	valid, err := AppendEncode(nil, typical(3))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(valid) {
		if _, err := Decode(valid[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode of the first %d of %d bytes: err = %v, want ErrCorrupt", n, len(valid), err)
		}
	}
}

func TestDecodeRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	valid, err := AppendEncode(nil, typical(3))
	if err != nil {
		t.Fatal(err)
	}
	for range 20000 {
		var data []byte
		if r.IntN(2) == 0 {
			data = make([]byte, r.IntN(64))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			if len(data) > 0 && r.IntN(2) == 0 {
				data[0] = Version
			}
		} else {
			data = bytes.Clone(valid)
			for range 1 + r.IntN(4) {
				data[r.IntN(len(data))] = byte(r.Uint32())
			}
		}
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Decode(%x): err = %v, want ErrCorrupt or ErrUnsupported", data, err)
			}
			continue
		}
		reencoded(t, e)
	}
}

// reencoded checks that a decoded entry encodes and decodes to itself.
func reencoded(t *testing.T, e *Entry) {
	t.Helper()
	b, err := AppendEncode(nil, e)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	again, err := Decode(b)
	if err != nil {
		t.Fatalf("decode of re-encoded: %v", err)
	}
	if err := equalEntries(e, again); err != nil {
		t.Fatalf("re-encoded entry differs: %v", err)
	}
}

func TestEntrySize(t *testing.T) {
	t.Parallel()
	small, large := typical(1).Size(), typical(100).Size()
	if small <= 0 || large <= small {
		t.Errorf("Size: 1 row %d, 100 rows %d", small, large)
	}
	b, _ := AppendEncode(nil, typical(100))
	if large < len(b) {
		t.Errorf("Size %d is below the encoded size %d", large, len(b))
	}
}

// TestGolden pins the format byte for byte. If it fails after an intended
// change, bump Version and run go test -update.
func TestGolden(t *testing.T) {
	t.Parallel()
	b, err := AppendEncode(nil, goldenEntry())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "testdata", "serializer", "entry_v1.bin")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding changed (bump Version and run go test -update if intended)\ngot  %x\nwant %x", b, want)
	}
	e, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalEntries(goldenEntry(), e); err != nil {
		t.Fatal(err)
	}
}

// goldenEntry uses only fixed zones, so the fixture does not depend on the
// machine's time zone or tzdata.
func goldenEntry() *Entry {
	ts := time.Date(2024, 7, 4, 15, 4, 5, 123456789, time.UTC)
	return &Entry{
		Check:    []byte("Q\x01\x08postgres\x02db\x08SELECT 1\x00"),
		Versions: []uint64{1, 1 << 40, math.MaxUint64},
		Columns: []Column{
			{Name: "id", DatabaseTypeName: "INT8", ScanType: "int64", Nullable: false, HasNullable: true},
			{Name: "name", DatabaseTypeName: "VARCHAR", ScanType: "sql.NullString", Length: 255, HasLength: true, Nullable: true, HasNullable: true},
			{Name: "price", DatabaseTypeName: "NUMERIC", ScanType: "sql.NullString", Precision: 12, Scale: 2, HasDecimalSize: true},
			{Name: "at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "time.Time"},
			{Name: "data", DatabaseTypeName: "BYTEA", ScanType: "[]uint8"},
			{Name: "ok", DatabaseTypeName: "BOOL", ScanType: "bool"},
			{Name: "f", DatabaseTypeName: "FLOAT8", ScanType: "float64"},
		},
		Values: []driver.Value{
			int64(1), "héllo", "12.50", ts, []byte{1, 2}, true, 1.5,
			int64(math.MinInt64), "", nil, ts.In(time.FixedZone("CET", 3600)), []byte{}, false, math.Inf(-1),
			int64(math.MaxInt64), nil, nil, time.Time{}, []byte(nil), nil, math.NaN(),
		},
		Rows:    3,
		Created: 1720105445123456789,
	}
}

// typical returns an entry of rows rows of 8 columns: id, two strings, a
// time, a NULL, a bool, a float and a small int.
func typical(rows int) *Entry {
	cols := []Column{
		{Name: "id", DatabaseTypeName: "INT8", ScanType: "int64", HasNullable: true},
		{Name: "name", DatabaseTypeName: "TEXT", ScanType: "string", HasNullable: true},
		{Name: "email", DatabaseTypeName: "VARCHAR", ScanType: "sql.NullString", Length: 255, HasLength: true, Nullable: true, HasNullable: true},
		{Name: "created_at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "time.Time", HasNullable: true},
		{Name: "deleted_at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "sql.NullTime", Nullable: true, HasNullable: true},
		{Name: "active", DatabaseTypeName: "BOOL", ScanType: "bool", HasNullable: true},
		{Name: "score", DatabaseTypeName: "FLOAT8", ScanType: "float64", HasNullable: true},
		{Name: "age", DatabaseTypeName: "INT4", ScanType: "int32", HasNullable: true},
	}
	ts := time.Date(2024, 7, 4, 15, 4, 5, 123456000, time.UTC)
	e := &Entry{
		Check:    []byte(`Q` + "\x01\x08postgres\x1blocalhost:5432/app?user=app" + `SELECT * FROM "users" WHERE "users"."deleted_at" IS NULL`),
		Versions: []uint64{0x1234567890, 42},
		Columns:  cols,
		Rows:     rows,
		Created:  1720105445123456789,
		Values:   make([]driver.Value, 0, rows*len(cols)),
	}
	for i := range rows {
		e.Values = append(e.Values,
			int64(100000+i), "Ada Lovelace", "ada@example.com", ts.Add(time.Duration(i)*time.Second),
			nil, i%2 == 0, 98.25+float64(i), int64(36))
	}
	return e
}

// withRowTypes gives e per-row column types as SQLite reports them: before
// the first row, every scan type is nil (""); rows alternate between two sets.
func withRowTypes(e *Entry) *Entry {
	first := slices.Clone(e.Columns)
	second := slices.Clone(e.Columns)
	for i := range e.Columns {
		e.Columns[i].ScanType = ""
		second[i].ScanType = "string"
		second[i].Length, second[i].HasLength = math.MaxInt64, true
	}
	e.ColumnSets = [][]Column{first, second}
	e.RowSets = make([]uint8, e.Rows)
	for i := range e.RowSets {
		e.RowSets[i] = uint8(i % 2)
	}
	return e
}
