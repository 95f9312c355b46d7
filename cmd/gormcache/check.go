package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gormcache/gormcache/keys"
)

// canonicalQuery is an entry's check bytes read back: what keys.AppendQuery
// wrote.
type canonicalQuery struct {
	Format   int            `json:"format"`
	Dialect  string         `json:"dialect"`
	Identity string         `json:"identity"`
	SQL      string         `json:"sql"`
	Args     []canonicalArg `json:"args"`
}

// canonicalArg is one argument, as the driver received it.
type canonicalArg struct {
	Name  string `json:"name,omitempty"` // sql.Named
	Type  string `json:"type"`           // nil, bool, int64, uint64, float64, string, []byte, time
	Value any    `json:"value"`
}

// Argument tags of keys.AppendQuery (keys/query.go).
const (
	argNil      = 0x00
	argFalse    = 0x01
	argTrue     = 0x02
	argInt      = 0x03
	argUint     = 0x04
	argFloat    = 0x05
	argString   = 0x06
	argBytes    = 0x07
	argNilBytes = 0x08
	argTime     = 0x09
	argNamed    = 0x0a
)

var errCheck = errors.New("malformed canonical query")

// checkReader reads the canonical encoding; every read is bounds-checked.
type checkReader struct {
	b   []byte
	err error
}

func (r *checkReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCheck, fmt.Sprintf(format, args...))
	}
}

func (r *checkReader) byte() byte {
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

func (r *checkReader) fixed(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *checkReader) uvarint() uint64 {
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

func (r *checkReader) bytes() []byte {
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

func (r *checkReader) string() string { return string(r.bytes()) }

// parseCheck decodes the check bytes of an entry (keys.AppendQuery's
// output). It never panics, whatever b holds.
func parseCheck(b []byte) (canonicalQuery, error) {
	r := &checkReader{b: b}
	var q canonicalQuery
	if r.byte() != 'Q' || r.err != nil {
		return q, fmt.Errorf("%w: does not start with 'Q'", errCheck)
	}
	q.Format = int(r.byte())
	if r.err == nil && q.Format != keys.FormatVersion {
		return q, fmt.Errorf("canonical query of format %d; this gormcache reads format %d", q.Format, keys.FormatVersion)
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
	return q, r.err
}

func (r *checkReader) arg(depth int) canonicalArg {
	switch tag := r.byte(); tag {
	case argNil:
		return canonicalArg{Type: "nil"}
	case argFalse:
		return canonicalArg{Type: "bool", Value: false}
	case argTrue:
		return canonicalArg{Type: "bool", Value: true}
	case argInt:
		return canonicalArg{Type: "int64", Value: int64(binary.BigEndian.Uint64(r.fixed(8)))}
	case argUint:
		v := binary.BigEndian.Uint64(r.fixed(8))
		if v <= math.MaxInt64 && r.err == nil {
			r.fail("uint64 %d is written as an int64", v) // as AppendQuery does
		}
		return canonicalArg{Type: "uint64", Value: v}
	case argFloat:
		return canonicalArg{Type: "float64", Value: math.Float64frombits(binary.BigEndian.Uint64(r.fixed(8)))}
	case argString:
		return canonicalArg{Type: "string", Value: r.string()}
	case argBytes:
		return canonicalArg{Type: "[]byte", Value: append([]byte{}, r.bytes()...)}
	case argNilBytes:
		return canonicalArg{Type: "[]byte", Value: []byte(nil)}
	case argTime:
		sec := int64(binary.BigEndian.Uint64(r.fixed(8)))
		nsec := int64(binary.BigEndian.Uint32(r.fixed(4)))
		offset := int(int32(binary.BigEndian.Uint32(r.fixed(4))))
		loc := r.string()
		zone := r.string()
		if r.err != nil {
			return canonicalArg{}
		}
		t := time.Unix(sec, nsec)
		switch {
		case loc == "UTC" && offset == 0:
			t = t.UTC()
		case loc == "Local":
			t = t.In(time.FixedZone(zone, offset)) // the writer's Local, not ours
		default:
			if l, err := time.LoadLocation(loc); err == nil {
				t = t.In(l)
			} else {
				t = t.In(time.FixedZone(zone, offset))
			}
		}
		return canonicalArg{Type: "time", Value: timeArg{T: t, Location: loc}}
	case argNamed:
		if depth > 0 {
			r.fail("nested named argument")
			return canonicalArg{}
		}
		name := r.string()
		a := r.arg(depth + 1)
		a.Name = name
		return a
	default:
		if r.err == nil {
			r.fail("unknown argument tag 0x%02x", tag)
		}
		return canonicalArg{}
	}
}

// timeArg is a time argument and the name of its location.
type timeArg struct {
	T        time.Time
	Location string
}

func (t timeArg) String() string {
	s := t.T.Format(time.RFC3339Nano)
	if t.Location != "" && t.Location != "UTC" {
		s += " (" + t.Location + ")"
	}
	return s
}

// MarshalText makes JSON output show the time and its location.
func (t timeArg) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// display is an argument for people: type and value.
func (a canonicalArg) display() string {
	var v string
	switch x := a.Value.(type) {
	case nil:
		if a.Type == "[]byte" {
			return "[]byte(nil)"
		}
		return "NULL"
	case string:
		v = fmt.Sprintf("%q", x)
	case []byte:
		v = formatBytes(x, 0)
	case timeArg:
		v = x.String()
	default:
		v = fmt.Sprint(x)
	}
	s := a.Type + " " + v
	if a.Name != "" {
		s = "@" + a.Name + " = " + s
	}
	return s
}
