package serializer

import (
	"bytes"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// decodeState reads one entry. The msgpack.Decoder reads straight from r (a
// bytes.Reader is an io.ByteScanner, so the decoder does not buffer), which
// lets the codec check lengths against r.Len() and slice strings out of data.
type decodeState struct {
	data    []byte
	r       bytes.Reader
	dec     *msgpack.Decoder
	arena   string // a copy of data that decoded strings are sliced from
	version byte   // of the entry being read
}

var decodePool = sync.Pool{New: func() any {
	s := new(decodeState)
	s.dec = msgpack.NewDecoder(&s.r)
	return s
}}

func getDecoder(data []byte) *decodeState {
	s := decodePool.Get().(*decodeState)
	s.data = data
	s.r.Reset(data)
	s.dec.Reset(&s.r)
	return s
}

func putDecoder(s *decodeState) {
	s.data, s.arena, s.version = nil, "", 0
	s.r.Reset(nil)
	decodePool.Put(s)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Decode parses data as produced by [AppendEncode] or [AppendEncodeOptions],
// compressed or not. Errors wrap [ErrCorrupt] or [ErrUnsupported]. It never
// panics, whatever the input, and bounds every count by the bytes that
// remain, so a lying length cannot make it allocate much: a compressed body
// may declare at most 64 KiB plus 64 times its compressed size, and at most
// [MaxDecodedSize]. The returned Entry does not alias data.
func Decode(data []byte) (*Entry, error) {
	s := getDecoder(data)
	defer putDecoder(s)
	e := new(Entry)
	check, versions, err := s.header(nil)
	if err != nil {
		return nil, err
	}
	if len(check) > 0 {
		e.Check = bytes.Clone(check)
	}
	e.Versions = versions
	if s.data[0]&FlagCompressed != 0 {
		if err := s.inflate(); err != nil {
			return nil, err
		}
	}
	if err := s.body(e); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeHeader parses only the check bytes and the versions of an entry,
// without decoding its rows (nor decompressing them: the header of a
// compressed entry is not compressed). The results do not alias data. Errors are as
// [Decode]'s, for the part it reads.
func DecodeHeader(data []byte) (check []byte, versions []uint64, err error) {
	check, versions, err = ParseHeader(data, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(check) > 0 {
		check = bytes.Clone(check)
	} else {
		check = nil
	}
	return check, versions, nil
}

// ParseHeader is [DecodeHeader] without allocations: check aliases data, and
// the versions are appended to versions (which may be a reused buffer).
func ParseHeader(data []byte, versions []uint64) (check []byte, _ []uint64, err error) {
	s := getDecoder(data)
	defer putDecoder(s)
	return s.header(versions)
}

func (s *decodeState) header(versions []uint64) (check []byte, _ []uint64, err error) {
	if len(s.data) == 0 {
		return nil, nil, corrupt("empty")
	}
	b, _ := s.r.ReadByte()
	if v := b &^ FlagCompressed; v != Version && v != VersionRowTypes {
		return nil, nil, formatError(b)
	}
	s.version = b &^ FlagCompressed
	if check, err = s.rawBin(); err != nil {
		return nil, nil, err
	}
	n, err := s.arrayLen(1)
	if err != nil {
		return nil, nil, err
	}
	if versions == nil && n > 0 {
		versions = make([]uint64, 0, n)
	}
	for range n {
		v, err := s.dec.DecodeUint64()
		if err != nil {
			return nil, nil, corrupt("version: %v", err)
		}
		versions = append(versions, v)
	}
	return check, versions, nil
}

func (s *decodeState) body(e *Entry) error {
	d := s.dec
	var err error
	if e.Created, err = d.DecodeInt64(); err != nil {
		return corrupt("created: %v", err)
	}
	// A column takes at least 8 bytes: array header, three strings, four
	// numbers.
	if e.Columns, err = s.columns(); err != nil {
		return err
	}
	ncol := len(e.Columns)
	rows, err := d.DecodeUint64()
	if err != nil {
		return corrupt("rows: %v", err)
	}
	if rows > math.MaxInt32 {
		return corrupt("%d rows", rows)
	}
	e.Rows = int(rows)
	nval, err := s.arrayLen(1)
	if err != nil {
		return err
	}
	if uint64(nval) != uint64(ncol)*rows {
		return corrupt("%d values for %d columns and %d rows", nval, ncol, rows)
	}
	if nval > 0 {
		e.Values = make([]driver.Value, nval)
	}
	for i := range e.Values {
		if e.Values[i], err = s.value(); err != nil {
			return fmt.Errorf("value %d: %w", i, err)
		}
	}
	if s.version == VersionRowTypes {
		if err := s.rowTypes(e); err != nil {
			return err
		}
	}
	if s.r.Len() != 0 {
		return corrupt("%d trailing bytes", s.r.Len())
	}
	return nil
}

// columns reads an array of columns.
func (s *decodeState) columns() ([]Column, error) {
	// A column takes at least 8 bytes: array header, three strings, four
	// numbers.
	ncol, err := s.arrayLen(8)
	if err != nil {
		return nil, err
	}
	if ncol == 0 {
		return nil, nil
	}
	cols := make([]Column, ncol)
	for i := range cols {
		if err := s.column(&cols[i]); err != nil {
			return nil, fmt.Errorf("column %d: %w", i, err)
		}
	}
	return cols, nil
}

// rowTypes reads the column sets and each row's set (VersionRowTypes).
func (s *decodeState) rowTypes(e *Entry) error {
	// A set takes at least one byte.
	nset, err := s.arrayLen(1)
	if err != nil {
		return err
	}
	if nset == 0 || nset > MaxColumnSets {
		return corrupt("%d column sets", nset)
	}
	e.ColumnSets = make([][]Column, nset)
	for i := range e.ColumnSets {
		set, err := s.columns()
		if err != nil {
			return fmt.Errorf("column set %d: %w", i, err)
		}
		if len(set) != len(e.Columns) {
			return corrupt("column set %d of %d columns, want %d", i, len(set), len(e.Columns))
		}
		e.ColumnSets[i] = set
	}
	sets, err := s.rawBin()
	if err != nil {
		return err
	}
	if len(sets) != e.Rows {
		return corrupt("%d row sets for %d rows", len(sets), e.Rows)
	}
	for i, k := range sets {
		if int(k) >= nset {
			return corrupt("row %d of column set %d, of %d", i, k, nset)
		}
	}
	e.RowSets = bytes.Clone(sets)
	if e.RowSets == nil {
		e.RowSets = []uint8{}
	}
	return nil
}

func (s *decodeState) column(c *Column) error {
	n, err := s.arrayLen(1)
	if err != nil {
		return err
	}
	if n != columnFields {
		return corrupt("column of %d fields", n)
	}
	if c.Name, err = s.str(); err != nil {
		return err
	}
	if c.DatabaseTypeName, err = s.str(); err != nil {
		return err
	}
	if c.ScanType, err = s.str(); err != nil {
		return err
	}
	d := s.dec
	if c.Length, err = d.DecodeInt64(); err != nil {
		return corrupt("length: %v", err)
	}
	if c.Precision, err = d.DecodeInt64(); err != nil {
		return corrupt("precision: %v", err)
	}
	if c.Scale, err = d.DecodeInt64(); err != nil {
		return corrupt("scale: %v", err)
	}
	flags, err := d.DecodeUint64()
	if err != nil {
		return corrupt("flags: %v", err)
	}
	if flags&^colKnownFlags != 0 {
		return fmt.Errorf("%w: column flags %#x", ErrUnsupported, flags)
	}
	c.HasLength = flags&colHasLength != 0
	c.HasDecimalSize = flags&colHasDecimalSize != 0
	c.Nullable = flags&colNullable != 0
	c.HasNullable = flags&colHasNullable != 0
	return nil
}

// arrayLen reads an array header whose elements take at least min bytes each,
// and checks the count against the bytes left.
func (s *decodeState) arrayLen(min int) (int, error) {
	n, err := s.dec.DecodeArrayLen()
	if err != nil {
		return 0, corrupt("array: %v", err)
	}
	if n < 0 || n > s.r.Len()/min {
		return 0, corrupt("array of %d elements in %d bytes", n, s.r.Len())
	}
	return n, nil
}

// payload reads the length of a str (str true) or bin and returns the bytes
// that follow, aliasing data, and their offset in data.
func (s *decodeState) payload(str bool) ([]byte, int, error) {
	c, err := s.dec.PeekCode()
	if err != nil {
		return nil, 0, corrupt("%v", err)
	}
	if str && !msgpcode.IsString(c) || !str && !msgpcode.IsBin(c) {
		return nil, 0, corrupt("unexpected code %#x", c)
	}
	n, err := s.dec.DecodeBytesLen()
	if err != nil {
		return nil, 0, corrupt("%v", err)
	}
	if n < 0 || n > s.r.Len() {
		return nil, 0, corrupt("length %d with %d bytes left", n, s.r.Len())
	}
	off := len(s.data) - s.r.Len()
	_, _ = s.r.Seek(int64(n), io.SeekCurrent)
	return s.data[off : off+n : off+n], off, nil
}

func (s *decodeState) rawBin() ([]byte, error) {
	b, _, err := s.payload(false)
	return b, err
}

// str reads a msgpack str. All strings of one entry share one copy of data
// (one allocation instead of one per string).
func (s *decodeState) str() (string, error) {
	b, off, err := s.payload(true)
	if err != nil || len(b) == 0 {
		return "", err
	}
	if s.arena == "" {
		s.arena = string(s.data)
	}
	return s.arena[off : off+len(b)], nil
}

func (s *decodeState) value() (driver.Value, error) {
	tag, err := s.r.ReadByte()
	if err != nil {
		return nil, corrupt("value tag: %v", err)
	}
	d := s.dec
	switch tag {
	case tagNull:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagInt:
		n, err := d.DecodeInt64()
		if err != nil {
			return nil, corrupt("int: %v", err)
		}
		return n, nil
	case tagFloat:
		c, err := d.PeekCode()
		if err != nil || c != msgpcode.Double {
			return nil, corrupt("float: code %#x, %v", c, err)
		}
		f, err := d.DecodeFloat64()
		if err != nil {
			return nil, corrupt("float: %v", err)
		}
		return f, nil
	case tagUint:
		n, err := d.DecodeUint64()
		if err != nil {
			return nil, corrupt("uint: %v", err)
		}
		return n, nil
	case tagFloat32:
		c, err := d.PeekCode()
		if err != nil || c != msgpcode.Float {
			return nil, corrupt("float32: code %#x, %v", c, err)
		}
		f, err := d.DecodeFloat32()
		if err != nil {
			return nil, corrupt("float32: %v", err)
		}
		return f, nil
	case tagString:
		return s.str()
	case tagBytes:
		b, _, err := s.payload(false)
		if err != nil {
			return nil, err
		}
		return append(make([]byte, 0, len(b)), b...), nil
	case tagNilBytes:
		return []byte(nil), nil
	case tagTime:
		return s.time()
	}
	return nil, corrupt("value tag %d", tag)
}

func (s *decodeState) time() (time.Time, error) {
	d := s.dec
	sec, err := d.DecodeInt64()
	if err != nil {
		return time.Time{}, corrupt("time: %v", err)
	}
	nsec, err := d.DecodeUint64()
	if err != nil || nsec >= 1e9 {
		return time.Time{}, corrupt("time nanoseconds %d: %v", nsec, err)
	}
	kind, err := d.DecodeUint64()
	if err != nil {
		return time.Time{}, corrupt("time zone: %v", err)
	}
	t := time.Unix(sec, int64(nsec))
	if kind == zoneUTC {
		return t.UTC(), nil
	}
	if kind != zoneLocal && kind != zoneNamed {
		return time.Time{}, corrupt("time zone kind %d", kind)
	}
	name, err := s.str()
	if err != nil {
		return time.Time{}, err
	}
	offset, err := d.DecodeInt64()
	if err != nil || offset < math.MinInt32 || offset > math.MaxInt32 {
		return time.Time{}, corrupt("time zone offset %d: %v", offset, err)
	}
	var loc *time.Location
	if kind == zoneLocal {
		loc = time.Local
	} else {
		loc = loadLocation(name)
	}
	if loc != nil {
		if _, off := t.In(loc).Zone(); off == int(offset) {
			return t.In(loc), nil
		}
	}
	return t.In(fixedZone(name, int(offset))), nil
}

// maxCachedZones bounds each zone cache: names come from the store, which a
// damaged entry could fill with garbage.
const maxCachedZones = 1024

var (
	locations, fixedZones sync.Map
	nLocations, nFixed    atomic.Int64
)

// loadLocation is time.LoadLocation, cached (failures too); nil if the name
// does not load.
func loadLocation(name string) *time.Location {
	if v, ok := locations.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		loc = nil // "" would load as UTC: a FixedZone("", 0) is not UTC
	}
	if nLocations.Load() < maxCachedZones {
		// Clone: name may be a slice of a decoded entry's arena.
		if _, loaded := locations.LoadOrStore(strings.Clone(name), loc); !loaded {
			nLocations.Add(1)
		}
	}
	return loc
}

type zoneKey struct {
	name   string
	offset int
}

// fixedZone is time.FixedZone, cached.
func fixedZone(name string, offset int) *time.Location {
	k := zoneKey{name, offset}
	if v, ok := fixedZones.Load(k); ok {
		return v.(*time.Location)
	}
	k.name = strings.Clone(name) // name may be a slice of a decoded entry's arena
	loc := time.FixedZone(k.name, offset)
	if nFixed.Load() < maxCachedZones {
		if _, loaded := fixedZones.LoadOrStore(k, loc); !loaded {
			nFixed.Add(1)
		}
	}
	return loc
}
