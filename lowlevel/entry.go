package lowlevel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The envelope of an entry in a byte store:
//
//	'L' formatVersion
//	deadline   int64, little-endian: unix nanoseconds, 0 = none
//	n          uvarint: number of tags
//	n × (len uvarint, tag bytes, version uint64 little-endian): the stamp
//	payload    msgpack of the value, to the end
//
// The tags are the entry's sorted, normalised tables followed by the cache's
// namespace tag and store.GlobalTag; the versions are theirs as read before
// the value was computed.
const (
	magic         = 'L'
	formatVersion = 1
	headerFixed   = 2 + 8 // magic, version, deadline
	maxTags       = 1 << 12
)

// entry is one cached value with its stamp. Entries are immutable once
// made: an in-process store keeps them as they are and hands the same
// *entry to every reader.
type entry struct {
	tags     []string
	versions []uint64
	deadline int64 // unix nanoseconds; 0 = no expiry

	// value is the Go value itself, when hasValue: kept only in an
	// in-process store, for values that may be shared (see shareable).
	value    any
	hasValue bool
	// payload is the msgpack encoding of the value, when !hasValue.
	payload []byte
}

// expired reports whether e's deadline has passed at now (unix nanoseconds).
func (e *entry) expired(now int64) bool { return e.deadline != 0 && now >= e.deadline }

// fresh reports whether the stamp equals current, a vector of current
// versions of the same tags in which 0 means unknown or held.
func fresh(stamp, current []uint64) bool {
	if len(stamp) != len(current) {
		return false
	}
	for i, v := range current {
		if v == 0 || stamp[i] != v {
			return false
		}
	}
	return true
}

// anyZero reports whether a version is unknown or held.
func anyZero(vs []uint64) bool { return slices.Contains(vs, 0) }

// size estimates the bytes e holds, for an in-process store's bound.
func (e *entry) size() int {
	n := 64 + len(e.payload) + 8*len(e.versions)
	for _, t := range e.tags {
		n += 16 + len(t)
	}
	if e.hasValue {
		n += estimate(e.value)
	}
	return n
}

// estimate is a rough size of a shareable value (see shareable).
func estimate(v any) int {
	if v == nil {
		return 0
	}
	return int(reflect.TypeOf(v).Size())
}

// envelopeSize is the length of e's envelope.
func (e *entry) envelopeSize() int {
	n := headerFixed + binary.MaxVarintLen64
	for _, t := range e.tags {
		n += binary.MaxVarintLen64 + len(t) + 8
	}
	return n + len(e.payload)
}

// marshal returns e's envelope. e must hold a payload.
func (e *entry) marshal() []byte {
	b := make([]byte, 0, e.envelopeSize())
	b = append(b, magic, formatVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.deadline))
	b = binary.AppendUvarint(b, uint64(len(e.tags)))
	for i, t := range e.tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
		b = binary.LittleEndian.AppendUint64(b, e.versions[i])
	}
	return append(b, e.payload...)
}

// unmarshal parses an envelope. Its payload aliases b. Anything that is not
// a well-formed envelope of this format is an error, never a panic.
func unmarshal(b []byte) (*entry, error) {
	if len(b) < headerFixed || b[0] != magic {
		return nil, fmt.Errorf("lowlevel: not an entry")
	}
	if b[1] != formatVersion {
		return nil, fmt.Errorf("lowlevel: entry format %d, want %d", b[1], formatVersion)
	}
	e := &entry{deadline: int64(binary.LittleEndian.Uint64(b[2:]))}
	if e.deadline < 0 {
		return nil, fmt.Errorf("lowlevel: entry with a negative deadline")
	}
	b = b[headerFixed:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxTags || n > uint64(len(b)) {
		return nil, fmt.Errorf("lowlevel: bad tag count")
	}
	b = b[k:]
	e.tags = make([]string, n)
	e.versions = make([]uint64, n)
	for i := range e.tags {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || uint64(len(b)-k)-l < 8 {
			return nil, fmt.Errorf("lowlevel: truncated tag %d", i)
		}
		b = b[k:]
		e.tags[i] = string(b[:l])
		e.versions[i] = binary.LittleEndian.Uint64(b[l:])
		b = b[l+8:]
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("lowlevel: entry without a payload")
	}
	e.payload = b
	return e, nil
}

// parse interprets what a store returned for a key: nil (none), an *entry
// (kept as a Go value by an in-process store), or an envelope.
func parse(raw any) (*entry, error) {
	switch r := raw.(type) {
	case *entry:
		return r, nil
	case []byte:
		return unmarshal(r)
	}
	return nil, fmt.Errorf("lowlevel: foreign value of type %T", raw)
}

// encode returns the msgpack encoding of v.
func encode(v any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lowlevel: encoding %T panicked: %v", v, r)
		}
	}()
	return msgpack.Marshal(v)
}

// decodeInto decodes the msgpack payload into dst (a pointer). Unknown
// struct fields and trailing bytes are errors, so that an entry of another
// type is less likely to pass as this one; a decoder panic is an error too.
func decodeInto(payload []byte, dst any) (err error) {
	if err := checkMsgpack(payload); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lowlevel: decoding panicked: %v", r)
		}
	}()
	r := bytes.NewReader(payload)
	dec := msgpack.GetDecoder()
	dec.Reset(r)
	dec.DisallowUnknownFields(true)
	err = dec.Decode(dst)
	msgpack.PutDecoder(dec)
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("lowlevel: %d trailing bytes after the value", r.Len())
	}
	return err
}

// valueOf returns e's value as a T. A Go value of another type is converted
// through msgpack, as a byte store would have done.
func valueOf[T any](e *entry) (T, error) {
	var v T
	if e.hasValue {
		if t, ok := e.value.(T); ok {
			return t, nil
		}
		if e.value == nil {
			return v, nil // a nil interface or pointer stored as T
		}
		b, err := encode(e.value)
		if err != nil {
			return v, err
		}
		err = decodeInto(b, &v)
		return v, err
	}
	err := decodeInto(e.payload, &v)
	return v, err
}

// shareable reports whether values of type t can be handed to several
// callers (and kept by an in-process store) without copying: whether
// nothing reachable from a copy of the value can be modified through
// another copy. time.Time counts as shareable (its *Location is never
// modified).
func shareable(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if v, ok := shareableTypes.Load(t); ok {
		return v.(bool)
	}
	ok := computeShareable(t, 0)
	shareableTypes.Store(t, ok)
	return ok
}

var (
	shareableTypes sync.Map // reflect.Type → bool
	timeType       = reflect.TypeFor[time.Time]()
)

func computeShareable(t reflect.Type, depth int) bool {
	if depth > 32 {
		return false
	}
	if t == timeType {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return computeShareable(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			if !computeShareable(t.Field(i).Type, depth+1) {
				return false
			}
		}
		return true
	}
	return false // pointers, slices, maps, interfaces, channels, functions
}

// maxDepth bounds the nesting of a payload's arrays and maps.
const maxDepth = 1000

// checkMsgpack checks that b holds exactly one msgpack value whose every
// declared length fits in the bytes that remain, nested at most maxDepth
// deep. msgpack's decoder allocates what a header declares (a []any or a
// map of 2^32 elements) and recurses as deep as the nesting goes, so a
// corrupt entry could otherwise exhaust memory or the stack, which no
// recover catches.
func checkMsgpack(b []byte) error {
	bad := fmt.Errorf("lowlevel: malformed msgpack payload")
	var stack []uint64 // values still to read in each open container
	i := 0
	for first := true; first || len(stack) > 0; first = false {
		if i >= len(b) {
			return bad
		}
		c := b[i]
		i++
		rest := uint64(len(b) - i)
		var skip, items uint64 // bytes to skip; values to read in a new container
		var container bool
		size := func(n int) (uint64, bool) { // a big-endian length of n bytes
			if uint64(n) > rest {
				return 0, false
			}
			var v uint64
			for _, x := range b[i : i+n] {
				v = v<<8 | uint64(x)
			}
			i += n
			rest -= uint64(n)
			return v, true
		}
		var ok = true
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			container, items = true, 2*uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			container, items = true, uint64(c&0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, ok = size(1)
		case c == 0xc5 || c == 0xda:
			skip, ok = size(2)
		case c == 0xc6 || c == 0xdb:
			skip, ok = size(4)
		case c == 0xc7, c == 0xc8, c == 0xc9:
			skip, ok = size(1 << (c - 0xc7))
			skip++ // the ext type
		case c == 0xca || c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			container = true
			items, ok = size(2)
		case c == 0xdd:
			container = true
			items, ok = size(4)
		case c == 0xde:
			container = true
			items, ok = size(2)
			items *= 2
		case c == 0xdf:
			container = true
			items, ok = size(4)
			items *= 2
		default: // 0xc1
			ok = false
		}
		if !ok || skip > rest || items > rest {
			return bad
		}
		i += int(skip)
		if len(stack) > 0 {
			stack[len(stack)-1]--
		}
		if container && items > 0 {
			if len(stack) >= maxDepth {
				return bad
			}
			stack = append(stack, items)
		}
		for len(stack) > 0 && stack[len(stack)-1] == 0 {
			stack = stack[:len(stack)-1]
		}
	}
	if i != len(b) {
		return fmt.Errorf("lowlevel: %d trailing bytes after the value", len(b)-i)
	}
	return nil
}
