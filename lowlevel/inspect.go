package lowlevel

import (
	"strings"
	"time"

	"github.com/gormcache/gormcache/internal/core"
)

// EntryInfo is what a stored low-level entry holds, for tools that read a
// store directly (the CLI's inspect): the tags it depends on with their
// versions when it was stored, its deadline (zero: none), and its value's
// msgpack encoding.
type EntryInfo struct {
	Tags     []string
	Versions []uint64
	Deadline time.Time
	Payload  []byte
}

// IsEntry reports whether b looks like a low-level entry (its first
// bytes): an envelope of a value, or an entry of the format before it
// (first byte 'L'), which DecodeEntry reports as unsupported. DecodeEntry
// says whether it is one.
func IsEntry(b []byte) bool {
	k, ok := core.EnvelopeKind(b)
	return ok && k == core.KindValue || len(b) > 0 && b[0] == formerMagic
}

// formerMagic is the first byte of the entries written before the shared
// envelope (format 'L' 1): they read as a miss, counted as corrupt.
const formerMagic = 'L'

// DecodeEntry decodes an entry as a byte store holds it. Its errors wrap
// the internal core's ErrCorrupt or ErrUnsupported (an entry of an older
// format).
func DecodeEntry(b []byte) (EntryInfo, error) {
	e, err := unmarshal(b)
	if err != nil {
		return EntryInfo{}, err
	}
	info := EntryInfo{Tags: e.tags, Versions: e.Versions, Payload: e.payload}
	if e.Deadline != 0 {
		info.Deadline = time.Unix(0, e.Deadline)
	}
	return info, nil
}

// NamespaceTag returns the tag every entry of a cache with this prefix
// depends on ([Cache.Flush] bumps it).
func NamespaceTag(prefix string) string { return core.Namespace("Lowlevel", prefix) }

// NamespacePrefix returns the prefix of the cache a namespace tag belongs
// to, and whether tag is one.
func NamespacePrefix(tag string) (string, bool) {
	return strings.CutPrefix(tag, NamespaceTag(""))
}
