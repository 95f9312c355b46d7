package keys

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrMalformedQuery is returned, wrapped with detail, by [ParseQuery] for
// bytes that are not a canonical query.
var ErrMalformedQuery = errors.New("keys: malformed canonical query")

// Query is a canonical query read back by [ParseQuery]: what [AppendQuery]
// was given, as the driver received it.
type Query struct {
	Dialect  string
	Identity string // the database identity
	SQL      string // after [Normalize]
	// Args are the arguments as driver values: nil, bool, int64, uint64
	// (above MaxInt64 only: smaller ones are written as int64), float64,
	// string, []byte (a nil one and an empty one differ), [TimeArg], or a
	// sql.NamedArg holding one of these.
	Args []any
}

// TimeArg is a time.Time argument read back. Time is its instant, in the
// location named Location when this process knows it (else in a fixed zone
// of the name and offset it was written with); Location is the writer's
// location name ("UTC", "Local", "Europe/Paris").
type TimeArg struct {
	Time     time.Time
	Location string
}

// String returns the instant in RFC 3339 with nanoseconds, followed by the
// location name in parentheses unless it is UTC.
func (t TimeArg) String() string {
	s := t.Time.Format(time.RFC3339Nano)
	if t.Location != "" && t.Location != "UTC" {
		s += " (" + t.Location + ")"
	}
	return s
}

// MarshalText returns [TimeArg.String], so that JSON shows the instant and
// its location.
func (t TimeArg) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ParseQuery decodes what [AppendQuery] wrote. Anything else is an error
// wrapping [ErrMalformedQuery] (or, for a canonical query of another
// [FormatVersion], an error saying so), never a panic: there is exactly one
// encoding of a query, so any b that decodes is what AppendQuery writes for
// the decoded query. The decoded strings and byte slices do not alias b.
func ParseQuery(b []byte) (Query, error) {
	r := &queryReader{b: b}
	var q Query
	if r.byte() != queryMagic || r.err != nil {
		return q, fmt.Errorf("%w: does not start with 'Q'", ErrMalformedQuery)
	}
	if f := r.byte(); r.err == nil && f != FormatVersion {
		return q, fmt.Errorf("keys: canonical query of format %d; this version reads format %d", f, FormatVersion)
	}
	q.Dialect = r.string()
	q.Identity = r.string()
	q.SQL = r.string()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) { // every argument takes at least a byte
		r.fail("%d arguments in %d bytes", n, len(r.b))
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		q.Args = append(q.Args, r.arg(0))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return Query{}, r.err
	}
	return q, nil
}

// queryReader reads the canonical encoding; every read is bounds-checked,
// and the first error sticks.
type queryReader struct {
	b   []byte
	err error
}

func (r *queryReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformedQuery, fmt.Sprintf(format, args...))
	}
}

func (r *queryReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// fixed reads n bytes; zeros once an error has occurred.
func (r *queryReader) fixed(n int) []byte {
	if r.err == nil && len(r.b) < n {
		r.fail("truncated")
	}
	if r.err != nil {
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *queryReader) uint64() uint64 { return binary.BigEndian.Uint64(r.fixed(8)) }
func (r *queryReader) uint32() uint32 { return binary.BigEndian.Uint32(r.fixed(4)) }

func (r *queryReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 || k != len(binary.AppendUvarint(nil, v)) { // AppendQuery writes the shortest form
		r.fail("bad length")
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *queryReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d past the end", n)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *queryReader) string() string { return string(r.bytes()) }

func (r *queryReader) arg(depth int) any {
	switch tag := r.byte(); tag {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		return int64(r.uint64())
	case tagUint:
		v := r.uint64()
		if v <= math.MaxInt64 {
			r.fail("uint64 %d is written as an int64", v) // as AppendQuery does
		}
		return v
	case tagFloat:
		return math.Float64frombits(r.uint64())
	case tagString:
		return r.string()
	case tagBytes:
		return append([]byte{}, r.bytes()...)
	case tagNilBytes:
		return []byte(nil)
	case tagTime:
		sec := int64(r.uint64())
		nsec := int64(r.uint32())
		offset := int(int32(r.uint32()))
		loc := r.string()
		zone := r.string()
		if r.err != nil {
			return nil
		}
		if nsec >= 1e9 {
			r.fail("%d nanoseconds", nsec)
			return nil
		}
		return TimeArg{Time: timeIn(time.Unix(sec, nsec), loc, zone, offset), Location: loc}
	case tagNamed:
		if depth > 0 {
			r.fail("nested named argument")
			return nil
		}
		name := r.string()
		return sql.Named(name, r.arg(depth+1))
	default:
		r.fail("unknown argument tag 0x%02x", tag)
		return nil
	}
}

// timeIn places t in the location it was written with: UTC, the location
// loc names when this process knows it, else (and for the writer's Local,
// which is not ours) a fixed zone of the written name and offset.
func timeIn(t time.Time, loc, zone string, offset int) time.Time {
	switch {
	case loc == "UTC" && offset == 0:
		return t.UTC()
	case loc == "Local":
		return t.In(time.FixedZone(zone, offset))
	}
	if l, err := time.LoadLocation(loc); err == nil {
		return t.In(l)
	}
	return t.In(time.FixedZone(zone, offset))
}
