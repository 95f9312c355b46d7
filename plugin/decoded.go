package plugin

import (
	"bytes"
	"hash/maphash"
	"sync/atomic"

	"github.com/gormcache/gormcache/serializer"
)

// decodedSlots and decodedMax bound the entries a byte store's hits keep
// decoded: at most decodedSlots entries of at most decodedMax bytes each
// (4 MiB of encodings, and their decoded rows).
const (
	decodedSlots = 256
	decodedMax   = 16 << 10
)

// decodedEntries keeps, for a store of bytes (Redis, memcached, files), the
// last decoded entry of a few keys with the bytes it was decoded from: a hit
// that reads the same bytes again skips the decoding. Entries are immutable
// once decoded (an in-process store shares them the same way), and an entry
// is a function of its bytes, so the bytes' equality is the whole check; the
// versions are checked on every hit as for any entry. Slots are
// direct-mapped by key: a key that collides replaces the other's slot.
type decodedEntries struct {
	seed  maphash.Seed
	slots [decodedSlots]atomic.Pointer[decoded]
}

type decoded struct {
	key   string
	raw   []byte
	entry *serializer.Entry
}

func newDecodedEntries() *decodedEntries {
	return &decodedEntries{seed: maphash.MakeSeed()}
}

func (d *decodedEntries) slot(key string) *atomic.Pointer[decoded] {
	return &d.slots[maphash.String(d.seed, key)%decodedSlots]
}

// decode returns the entry b encodes, decoded now or when key last held
// exactly b.
func (d *decodedEntries) decode(key string, b []byte) (*serializer.Entry, error) {
	s := d.slot(key)
	if m := s.Load(); m != nil && m.key == key && bytes.Equal(m.raw, b) {
		return m.entry, nil
	}
	e, err := serializer.Decode(b)
	if err != nil {
		return nil, err
	}
	if len(b) <= decodedMax {
		// a copy: a store of the application's may reuse its buffer
		s.Store(&decoded{key: key, raw: bytes.Clone(b), entry: e})
	}
	return e, nil
}
