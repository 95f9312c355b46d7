package filestore

import (
	"encoding/binary"
	"errors"

	"github.com/cespare/xxhash/v2"
)

// The two file formats. Both are little-endian and end with the xxhash64 of
// everything before the checksum, so a truncated, extended or garbled file
// never decodes.
//
// Entry file (e/<shard>/<name>):
//
//	0   'G' 'C' 'E' entryFormat
//	4   uint32 key length k
//	8   int64  expiry deadline, unix nanoseconds; 0 = none
//	16  key (k bytes)
//	16+k value
//	end-8 uint64 xxhash64 of bytes [0, end-8)
//
// Version file (v/<tag>.v):
//
//	0   'G' 'C' 'V' versionFormat
//	4   flags (flagDurable), 3 bytes zero
//	8   uint64 version
//	16  boot id (16 bytes) of the host boot that wrote the file
//	32  uint32 number of holds n, 4 bytes zero
//	40  n × (uint64 lease id, int64 deadline in unix nanoseconds)
//	40+16n uint64 xxhash64 of bytes [0, 40+16n)
const (
	entryFormat  = 1
	entryHeader  = 16
	checksumSize = 8
	entryMin     = entryHeader + checksumSize

	versionFormat = 1
	versionHeader = 40
	holdSize      = 16
	versionMin    = versionHeader + checksumSize

	// flagDurable marks a version file written with fsync (Config.Sync): it
	// survives a crash of the host as written, so it stays valid across
	// boots.
	flagDurable = 1 << 0
)

var (
	errCorrupt  = errors.New("corrupt file")
	errOtherKey = errors.New("entry of another key") // a file-name hash collision
)

// encodeEntry returns the entry file for key and value.
func encodeEntry(key string, value []byte, expiry int64) []byte {
	n := entryMin + len(key) + len(value)
	b := make([]byte, n)
	b[0], b[1], b[2], b[3] = 'G', 'C', 'E', entryFormat
	binary.LittleEndian.PutUint32(b[4:], uint32(len(key)))
	binary.LittleEndian.PutUint64(b[8:], uint64(expiry))
	copy(b[entryHeader:], key)
	copy(b[entryHeader+len(key):], value)
	binary.LittleEndian.PutUint64(b[n-checksumSize:], xxhash.Sum64(b[:n-checksumSize]))
	return b
}

// decodeEntry checks an entry file and returns its value (a slice of b) and
// expiry deadline. It returns errCorrupt for a file that is not a whole entry
// and errOtherKey for a whole entry of another key.
func decodeEntry(b []byte, key string) (value []byte, expiry int64, err error) {
	if len(b) < entryMin || b[0] != 'G' || b[1] != 'C' || b[2] != 'E' || b[3] != entryFormat {
		return nil, 0, errCorrupt
	}
	k := binary.LittleEndian.Uint32(b[4:])
	if uint64(k) > uint64(len(b)-entryMin) {
		return nil, 0, errCorrupt
	}
	end := len(b) - checksumSize
	if xxhash.Sum64(b[:end]) != binary.LittleEndian.Uint64(b[end:]) {
		return nil, 0, errCorrupt
	}
	if string(b[entryHeader:entryHeader+int(k)]) != key {
		return nil, 0, errOtherKey
	}
	expiry = int64(binary.LittleEndian.Uint64(b[8:]))
	return b[entryHeader+int(k) : end : end], expiry, nil
}

// hold is one lease on a tag.
type hold struct {
	lease    uint64
	deadline int64 // unix nanoseconds
}

// tagState is the content of a version file.
type tagState struct {
	version uint64
	durable bool
	boot    [16]byte
	holds   []hold
}

// heldAt reports whether a hold of st is live at now.
func (st *tagState) heldAt(now int64) bool {
	for _, h := range st.holds {
		if now < h.deadline {
			return true
		}
	}
	return false
}

// prune drops the holds that have elapsed at now.
func (st *tagState) prune(now int64) {
	live := st.holds[:0]
	for _, h := range st.holds {
		if now < h.deadline {
			live = append(live, h)
		}
	}
	st.holds = live
}

// encodeVersion returns the version file of st.
func encodeVersion(st *tagState) []byte {
	n := versionMin + holdSize*len(st.holds)
	b := make([]byte, n)
	b[0], b[1], b[2], b[3] = 'G', 'C', 'V', versionFormat
	if st.durable {
		b[4] = flagDurable
	}
	binary.LittleEndian.PutUint64(b[8:], st.version)
	copy(b[16:32], st.boot[:])
	binary.LittleEndian.PutUint32(b[32:], uint32(len(st.holds)))
	for i, h := range st.holds {
		o := versionHeader + holdSize*i
		binary.LittleEndian.PutUint64(b[o:], h.lease)
		binary.LittleEndian.PutUint64(b[o+8:], uint64(h.deadline))
	}
	binary.LittleEndian.PutUint64(b[n-checksumSize:], xxhash.Sum64(b[:n-checksumSize]))
	return b
}

// checkVersion verifies a version file and returns its number of holds.
func checkVersion(b []byte) (holds int, err error) {
	if len(b) < versionMin || b[0] != 'G' || b[1] != 'C' || b[2] != 'V' || b[3] != versionFormat {
		return 0, errCorrupt
	}
	n := binary.LittleEndian.Uint32(b[32:])
	if uint64(n) != uint64(len(b)-versionMin)/holdSize || (len(b)-versionMin)%holdSize != 0 {
		return 0, errCorrupt
	}
	end := len(b) - checksumSize
	if xxhash.Sum64(b[:end]) != binary.LittleEndian.Uint64(b[end:]) {
		return 0, errCorrupt
	}
	if binary.LittleEndian.Uint64(b[8:]) == 0 {
		return 0, errCorrupt // a store never writes version 0
	}
	return int(n), nil
}

// peekVersion is the reader's decoder: it allocates nothing. It returns the
// version, whether a hold is live at now, and whether the file may be used on
// a host whose boot id is boot (written during this boot, or durably).
func peekVersion(b []byte, now int64, boot *[16]byte) (version uint64, held, current bool, err error) {
	n, err := checkVersion(b)
	if err != nil {
		return 0, false, false, err
	}
	for i := range n {
		o := versionHeader + holdSize*i
		if now < int64(binary.LittleEndian.Uint64(b[o+8:])) {
			held = true
			break
		}
	}
	current = b[4]&flagDurable != 0 || string(b[16:32]) == string(boot[:])
	return binary.LittleEndian.Uint64(b[8:]), held, current, nil
}

// decodeVersion is the writer's decoder.
func decodeVersion(b []byte) (*tagState, error) {
	n, err := checkVersion(b)
	if err != nil {
		return nil, err
	}
	st := &tagState{
		version: binary.LittleEndian.Uint64(b[8:]),
		durable: b[4]&flagDurable != 0,
		holds:   make([]hold, n),
	}
	copy(st.boot[:], b[16:32])
	for i := range st.holds {
		o := versionHeader + holdSize*i
		st.holds[i] = hold{
			lease:    binary.LittleEndian.Uint64(b[o:]),
			deadline: int64(binary.LittleEndian.Uint64(b[o+8:])),
		}
	}
	return st, nil
}
