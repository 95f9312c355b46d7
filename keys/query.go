package keys

import (
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"
)

// FormatVersion is the cache format version. It is part of every key and of
// every canonical query, so a format change never reads old entries.
const FormatVersion = 1

// ErrUnsupportedArg is returned, wrapped with the argument's index and Go type,
// for an argument that cannot be encoded by type. A query with such an
// argument is not cacheable.
var ErrUnsupportedArg = errors.New("keys: unsupported argument type")

// Argument type tags of the canonical encoding. Never renumber them: change
// FormatVersion instead.
const (
	tagNil      = 0x00
	tagFalse    = 0x01
	tagTrue     = 0x02
	tagInt      = 0x03 // int64, 8 bytes big-endian; also every uint up to MaxInt64
	tagUint     = 0x04 // uint64 above MaxInt64, 8 bytes big-endian
	tagFloat    = 0x05 // float64 bits, 8 bytes big-endian
	tagString   = 0x06 // uvarint length, bytes
	tagBytes    = 0x07 // uvarint length, bytes
	tagNilBytes = 0x08 // []byte(nil)
	tagTime     = 0x09 // unix seconds (8), nanoseconds (4), offset (4), location name, zone name
	tagNamed    = 0x0a // name, then the value
)

// queryMagic opens every canonical query.
const queryMagic = 'Q'

// maxArgDepth bounds the Valuer and pointer chains followed for one argument.
const maxArgDepth = 8

// AppendQuery appends the canonical, unambiguous encoding of one query to dst
// and returns the extended buffer: the format version, the dialect, the
// database identity, the SQL after [Normalize], and the arguments encoded by
// type. Every part is length-prefixed and every argument type-tagged, so the
// boundaries between parts cannot shift, and the string "1", the int 1, the
// float 1.0, []byte("1") and true all differ, as do nil, "" and []byte{}. This
// is what [Builder.Key] hashes, and what an entry stores to verify a hit.
//
// Arguments are encoded as the value the driver receives, the way
// database/sql's default converter sees them:
//
//   - nil; bool; every int and uint kind as the same integer (int(1),
//     uint8(1) and int64(1) are all the driver value int64(1); uints above
//     MaxInt64 are tagged apart); float32 and float64 as float64;
//     string; []byte (nil and empty differ);
//   - time.Time as its instant (unix seconds and nanoseconds), its location
//     name, zone name and offset, so equal instants in different zones differ;
//     the monotonic reading is ignored;
//   - a driver.Valuer as the result of its Value method (an error from Value
//     is returned wrapped; a nil pointer whose element type implements
//     driver.Valuer is nil, as in database/sql);
//   - a pointer as its pointee (a nil pointer is nil);
//   - sql.NamedArg as its name and value;
//   - a named type whose underlying kind is one of the above (type Status
//     string, type ID int64, json.RawMessage) exactly as the basic value.
//
// Anything else (structs, maps, slices other than byte slices, channels,
// funcs) returns an error wrapping [ErrUnsupportedArg]. On error the returned
// slice has dst's length (its contents past that length are unspecified).
func AppendQuery(dst []byte, dialect, identity, sql string, args []any) ([]byte, error) {
	start := len(dst)
	dst = append(dst, queryMagic, FormatVersion)
	dst = appendString(dst, dialect)
	dst = appendString(dst, identity)
	dst = appendString(dst, Normalize(sql))
	dst = binary.AppendUvarint(dst, uint64(len(args)))
	for i, a := range args {
		var err error
		dst, err = appendArg(dst, a, 0)
		if err != nil {
			return dst[:start], fmt.Errorf("keys: argument %d (%T): %w", i, a, err)
		}
	}
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendInt(dst []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagInt), uint64(n))
}

func appendUint(dst []byte, n uint64) []byte {
	if n <= math.MaxInt64 {
		return appendInt(dst, int64(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, tagUint), n)
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(f))
}

func appendBytes(dst []byte, b []byte) []byte {
	if b == nil {
		return append(dst, tagNilBytes)
	}
	dst = binary.AppendUvarint(append(dst, tagBytes), uint64(len(b)))
	return append(dst, b...)
}

func appendTime(dst []byte, t time.Time) []byte {
	zone, offset := t.Zone()
	dst = append(dst, tagTime)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(int32(offset)))
	dst = appendString(dst, t.Location().String())
	return appendString(dst, zone)
}

var valuerType = reflect.TypeFor[driver.Valuer]()

// appendArg encodes one argument. The type switch covers the common types
// without reflection; reflection is used only for Valuers (the nil-pointer
// check), pointers and named types.
func appendArg(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxArgDepth {
		return dst, ErrUnsupportedArg
	}
	switch x := v.(type) {
	case nil:
		return append(dst, tagNil), nil
	case bool:
		if x {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case int64:
		return appendInt(dst, x), nil
	case int:
		return appendInt(dst, int64(x)), nil
	case int32:
		return appendInt(dst, int64(x)), nil
	case int16:
		return appendInt(dst, int64(x)), nil
	case int8:
		return appendInt(dst, int64(x)), nil
	case uint64:
		return appendUint(dst, x), nil
	case uint:
		return appendUint(dst, uint64(x)), nil
	case uint32:
		return appendUint(dst, uint64(x)), nil
	case uint16:
		return appendUint(dst, uint64(x)), nil
	case uint8:
		return appendUint(dst, uint64(x)), nil
	case uintptr:
		return appendUint(dst, uint64(x)), nil
	case float64:
		return appendFloat(dst, x), nil
	case float32:
		return appendFloat(dst, float64(x)), nil
	case string:
		return appendString(append(dst, tagString), x), nil
	case []byte:
		return appendBytes(dst, x), nil
	case time.Time:
		return appendTime(dst, x), nil
	case sql.NamedArg:
		if depth > 0 {
			return dst, ErrUnsupportedArg // database/sql does not unwrap nested NamedArgs either
		}
		dst = appendString(append(dst, tagNamed), x.Name)
		return appendArg(dst, x.Value, depth+1)
	case driver.Valuer:
		// As database/sql's callValuerValue: a nil pointer whose element type
		// implements Valuer (by value) is NULL; anything else is asked.
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() && rv.Type().Elem().Implements(valuerType) {
			return append(dst, tagNil), nil
		}
		val, err := x.Value()
		if err != nil {
			return dst, fmt.Errorf("Value: %w", err)
		}
		return appendArg(dst, val, depth+1)
	}
	return appendReflect(dst, reflect.ValueOf(v), depth)
}

// appendReflect handles pointers and named types by kind, as database/sql's
// default converter does.
func appendReflect(dst []byte, rv reflect.Value, depth int) ([]byte, error) {
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return append(dst, tagNil), nil
		}
		return appendArg(dst, rv.Elem().Interface(), depth+1)
	case reflect.Bool:
		if rv.Bool() {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return appendInt(dst, rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return appendUint(dst, rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(dst, rv.Float()), nil
	case reflect.String:
		return appendString(append(dst, tagString), rv.String()), nil
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return appendBytes(dst, rv.Bytes()), nil
		}
	}
	return dst, ErrUnsupportedArg
}
