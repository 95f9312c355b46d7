package lowlevel

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/vmihailenco/msgpack/v5"
)

// In a byte store an entry is a core envelope of kind core.KindValue (see
// internal/core's envelope.go): its tags are the entry's sorted, normalised
// tables followed by the cache's namespace tag and store.GlobalTag, their
// versions as read before the value was computed, its deadline, and the
// msgpack of the value as payload. It keeps no check text (the key is the
// user's) and no creation time, and is never compressed.

// entry is one cached value with its stamp. Entries are immutable once
// made: an in-process store keeps them as they are and hands the same
// *entry to every reader.
type entry struct {
	tags       []string
	core.Stamp // Versions and Deadline

	// value is the Go value itself, when hasValue: kept only in an
	// in-process store, for values that may be shared (see shareable).
	value    any
	hasValue bool
	// payload is the msgpack encoding of the value, when !hasValue.
	payload []byte
}

// newEntry returns the entry of payload for tags stamped with versions
// (which it keeps), expiring at deadline (unix nanoseconds, 0 = none).
func newEntry(tags []string, versions []uint64, deadline int64, payload []byte) *entry {
	return &entry{tags: tags, Stamp: core.Stamp{Versions: versions, Deadline: deadline}, payload: payload}
}

// head returns e's envelope head.
func (e *entry) head() core.Head {
	return core.Head{Kind: core.KindValue, Tags: e.tags, Stamp: e.Stamp}
}

// size estimates the bytes e holds, for an in-process store's bound.
func (e *entry) size() int {
	n := 64 + len(e.payload) + 8*len(e.Versions)
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
	h := e.head()
	return core.EnvelopeSize(&h, len(e.payload))
}

// marshal returns e's envelope. e must hold a payload.
func (e *entry) marshal() []byte {
	h := e.head()
	return core.AppendEnvelope(make([]byte, 0, core.EnvelopeSize(&h, len(e.payload))), &h, e.payload, 0)
}

// unmarshal parses an envelope. Its payload aliases b. Anything that is not
// a well-formed envelope of a value is an error wrapping core.ErrCorrupt or
// core.ErrUnsupported (an entry of an older format among them), never a
// panic.
func unmarshal(b []byte) (*entry, error) {
	h, payload, err := core.OpenEnvelope(b)
	switch {
	case err != nil:
		return nil, fmt.Errorf("lowlevel: %w", err)
	case h.Kind != core.KindValue:
		return nil, fmt.Errorf("lowlevel: %w: kind %d, not a value", core.ErrUnsupported, h.Kind)
	case len(h.Tags) != len(h.Versions):
		return nil, fmt.Errorf("lowlevel: %w: %d tags, %d versions", core.ErrCorrupt, len(h.Tags), len(h.Versions))
	case len(payload) == 0:
		return nil, fmt.Errorf("lowlevel: %w: entry without a payload", core.ErrCorrupt)
	}
	return &entry{tags: h.Tags, Stamp: h.Stamp, payload: payload}, nil
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
	return nil, fmt.Errorf("lowlevel: %w: foreign value of type %T", core.ErrUnsupported, raw)
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
