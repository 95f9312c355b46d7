package serializer

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Value tags: one byte (a msgpack positive fixint) before every value. Never
// renumber them: change Version instead.
const (
	tagNull   = 0
	tagFalse  = 1
	tagTrue   = 2
	tagInt    = 3 // msgpack int
	tagFloat  = 4 // msgpack float64
	tagString = 5 // msgpack str
	tagBytes  = 6 // msgpack bin ([]byte{} is an empty bin)
	tagTime   = 7 // unix seconds (int), nanoseconds (uint), zone kind (uint), then for zoneLocal and zoneNamed: name (str), offset (int)
	// tagNilBytes is []byte(nil): database/sql scans it unlike nil (into a
	// *string it gives "", where nil is an error), so it is kept apart.
	tagNilBytes = 8
	// tagUint is uint64 and tagFloat32 is float32: go-sql-driver/mysql
	// returns them for unsigned BIGINT and FLOAT columns.
	tagUint    = 9  // msgpack uint
	tagFloat32 = 10 // msgpack float32
)

// Zone kinds of a time value.
const (
	zoneUTC   = 0 // time.UTC
	zoneLocal = 1 // time.Local; name is the zone abbreviation at that instant
	zoneNamed = 2 // any other location; name is Location().String()
)

// columnFields is the length of the msgpack array of one column.
const columnFields = 7

// Column flag bits.
const (
	colHasLength = 1 << iota
	colHasDecimalSize
	colNullable
	colHasNullable
	colKnownFlags = 1<<iota - 1
)

// appendWriter lets a msgpack.Encoder append to a caller's buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type encodeState struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encodePool = sync.Pool{New: func() any {
	s := new(encodeState)
	s.enc = msgpack.NewEncoder(&s.w)
	return s
}}

// AppendEncode appends the encoding of e to dst: the version byte, then
// msgpack v5. Values must be nil, int64, float64, bool, []byte, string or
// time.Time (the driver.Value types); anything else returns an error wrapping
// [ErrValueType] with the column name and Go type. An entry whose
// len(Values) is not len(Columns)*Rows returns [ErrInvalidEntry]. On error the
// returned slice has dst's length.
//
// Times keep their instant to the nanosecond and their location: UTC,
// time.Local and other locations (by name and offset at that instant) are
// encoded distinctly. Monotonic clock readings are dropped. []byte(nil) and
// []byte{} stay distinct from each other and from nil.
//
// AppendEncode never compresses; see [AppendEncodeOptions].
func AppendEncode(dst []byte, e *Entry) ([]byte, error) {
	return AppendEncodeOptions(dst, e, Options{})
}

// AppendEncodeOptions is [AppendEncode] with options: with
// [Options.CompressAbove] set, the body of a large entry is compressed and
// the first byte has [FlagCompressed]. The check bytes and versions stay
// uncompressed, so [ParseHeader] reads them without decompressing.
func AppendEncodeOptions(dst []byte, e *Entry, o Options) ([]byte, error) {
	if e.Rows < 0 || len(e.Values) != len(e.Columns)*e.Rows {
		return dst, fmt.Errorf("%w: %d values for %d columns and %d rows", ErrInvalidEntry, len(e.Values), len(e.Columns), e.Rows)
	}
	if err := validRowTypes(e); err != nil {
		return dst, err
	}
	version := byte(Version)
	if e.ColumnSets != nil {
		version = VersionRowTypes
	}
	s := encodePool.Get().(*encodeState)
	start := len(dst)
	s.w.b = append(dst, version)
	s.enc.Reset(&s.w)
	s.header(e)
	body := len(s.w.b)
	err := s.body(e)
	dst = s.w.b
	s.w.b = nil
	encodePool.Put(s)
	if err != nil {
		return dst[:start], err
	}
	if o.CompressAbove > 0 && len(dst)-body > o.CompressAbove {
		dst = compressBody(dst, start, body)
	}
	return dst, nil
}

// header encodes the check bytes and the versions.
func (s *encodeState) header(e *Entry) {
	s.bytes(e.Check)
	_ = s.enc.EncodeArrayLen(len(e.Versions))
	for _, v := range e.Versions {
		_ = s.enc.EncodeUint(v)
	}
}

// body encodes everything after the versions.
func (s *encodeState) body(e *Entry) error {
	enc := s.enc
	_ = enc.EncodeInt(e.Created)
	if err := s.columns(e.Columns); err != nil {
		return err
	}
	_ = enc.EncodeUint(uint64(e.Rows))
	_ = enc.EncodeArrayLen(len(e.Values))
	for i, v := range e.Values {
		if err := s.value(v); err != nil {
			col := &e.Columns[i%len(e.Columns)]
			return fmt.Errorf("%w: column %q: %T", err, col.Name, v)
		}
	}
	if e.ColumnSets == nil {
		return nil
	}
	// VersionRowTypes: the sets, then each row's.
	_ = enc.EncodeArrayLen(len(e.ColumnSets))
	for _, set := range e.ColumnSets {
		if err := s.columns(set); err != nil {
			return err
		}
	}
	s.bytes(e.RowSets)
	return nil
}

// columns encodes an array of columns.
func (s *encodeState) columns(cols []Column) error {
	enc := s.enc
	_ = enc.EncodeArrayLen(len(cols))
	for i := range cols {
		c := &cols[i]
		if err := s.strings(c.Name, c.DatabaseTypeName, c.ScanType); err != nil {
			return fmt.Errorf("%w: column %d: %w", ErrInvalidEntry, i, err)
		}
		var flags uint64
		if c.HasLength {
			flags |= colHasLength
		}
		if c.HasDecimalSize {
			flags |= colHasDecimalSize
		}
		if c.Nullable {
			flags |= colNullable
		}
		if c.HasNullable {
			flags |= colHasNullable
		}
		_ = enc.EncodeInt(c.Length)
		_ = enc.EncodeInt(c.Precision)
		_ = enc.EncodeInt(c.Scale)
		_ = enc.EncodeUint(flags)
	}
	return nil
}

// validRowTypes checks ColumnSets and RowSets against the entry's shape.
func validRowTypes(e *Entry) error {
	if e.ColumnSets == nil && e.RowSets == nil {
		return nil
	}
	if len(e.ColumnSets) == 0 || len(e.ColumnSets) > MaxColumnSets || len(e.RowSets) != e.Rows {
		return fmt.Errorf("%w: %d column sets and %d row sets for %d rows", ErrInvalidEntry, len(e.ColumnSets), len(e.RowSets), e.Rows)
	}
	for i, set := range e.ColumnSets {
		if len(set) != len(e.Columns) {
			return fmt.Errorf("%w: column set %d of %d columns, want %d", ErrInvalidEntry, i, len(set), len(e.Columns))
		}
	}
	for i, k := range e.RowSets {
		if int(k) >= len(e.ColumnSets) {
			return fmt.Errorf("%w: row %d of column set %d, of %d", ErrInvalidEntry, i, k, len(e.ColumnSets))
		}
	}
	return nil
}

// strings encodes the three column strings (the array header first).
func (s *encodeState) strings(a, b, c string) error {
	_ = s.enc.EncodeArrayLen(columnFields)
	for _, x := range [3]string{a, b, c} {
		if len(x) > math.MaxUint32 {
			return fmt.Errorf("string of %d bytes", len(x))
		}
		_ = s.enc.EncodeString(x)
	}
	return nil
}

// bytes encodes b as a msgpack bin, empty for nil.
func (s *encodeState) bytes(b []byte) {
	_ = s.enc.EncodeBytesLen(len(b))
	s.w.b = append(s.w.b, b...)
}

// value writes one tagged value. The writer never fails, so the errors of the
// msgpack calls are ignored.
func (s *encodeState) value(v any) error {
	enc := s.enc
	switch x := v.(type) {
	case nil:
		s.w.b = append(s.w.b, tagNull)
	case int64:
		s.w.b = append(s.w.b, tagInt)
		_ = enc.EncodeInt(x)
	case string:
		if len(x) > math.MaxUint32 {
			return ErrValueType
		}
		s.w.b = append(s.w.b, tagString)
		_ = enc.EncodeString(x)
	case []byte:
		if x == nil {
			s.w.b = append(s.w.b, tagNilBytes)
			break
		}
		if len(x) > math.MaxUint32 {
			return ErrValueType
		}
		s.w.b = append(s.w.b, tagBytes)
		s.bytes(x)
	case float64:
		s.w.b = append(s.w.b, tagFloat)
		_ = enc.EncodeFloat64(x)
	case uint64:
		s.w.b = append(s.w.b, tagUint)
		_ = enc.EncodeUint(x)
	case float32:
		s.w.b = append(s.w.b, tagFloat32)
		_ = enc.EncodeFloat32(x)
	case bool:
		if x {
			s.w.b = append(s.w.b, tagTrue)
		} else {
			s.w.b = append(s.w.b, tagFalse)
		}
	case time.Time:
		s.w.b = append(s.w.b, tagTime)
		_ = enc.EncodeInt(x.Unix())
		_ = enc.EncodeUint(uint64(x.Nanosecond()))
		switch loc := x.Location(); loc {
		case time.UTC:
			_ = enc.EncodeUint(zoneUTC)
		case time.Local:
			name, offset := x.Zone()
			_ = enc.EncodeUint(zoneLocal)
			_ = enc.EncodeString(name)
			_ = enc.EncodeInt(int64(offset))
		default:
			_, offset := x.Zone()
			_ = enc.EncodeUint(zoneNamed)
			_ = enc.EncodeString(loc.String())
			_ = enc.EncodeInt(int64(offset))
		}
	default:
		return ErrValueType
	}
	return nil
}
