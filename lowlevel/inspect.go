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

// IsEntry reports whether b looks like a low-level entry (its first byte);
// DecodeEntry says whether it is one.
func IsEntry(b []byte) bool { return len(b) > 0 && b[0] == magic }

// DecodeEntry decodes an entry as a byte store holds it.
func DecodeEntry(b []byte) (EntryInfo, error) {
	e, err := unmarshal(b)
	if err != nil {
		return EntryInfo{}, err
	}
	info := EntryInfo{Tags: e.tags, Versions: e.versions, Payload: e.payload}
	if e.deadline != 0 {
		info.Deadline = time.Unix(0, e.deadline)
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
