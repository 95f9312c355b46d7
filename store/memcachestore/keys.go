package memcachestore

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// Key kinds, after the prefix.
const (
	kindEntry  = "e:"
	kindRecord = "v:"
	kindLease  = "l:"
)

// maxKey is memcached's key length limit.
const maxKey = 250

// legal reports whether s may appear in a memcached key: printable ASCII
// without spaces.
func legal(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// key returns prefix+kind+name, or prefix+kind+"#"+base64url(sha256(name))
// when that would not be a legal key or name starts with "#" (so that a
// hashed name never equals a plain one).
func (s *Store) key(kind, name string) string {
	if len(s.prefix)+len(kind)+len(name) <= maxKey && legal(name) && (name == "" || name[0] != '#') {
		return s.prefix + kind + name
	}
	sum := sha256.Sum256([]byte(name))
	return s.prefix + kind + "#" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// recordKey is the key of a tag's record.
func (s *Store) recordKey(tag string) string { return s.key(kindRecord, tag) }

// leaseKey is the key that exists while lease holds tag.
func (s *Store) leaseKey(tag string, lease uint64) string {
	return s.key(kindLease, leaseHex(lease)+":"+tag)
}

func leaseHex(lease uint64) string {
	const digits = "0000000000000000"
	h := strconv.FormatUint(lease, 16)
	return digits[len(h):] + h
}

// VersionKey returns the memcached key of tag's version record (for tools
// that check whether a tag has one without creating it, as Versions would).
func (s *Store) VersionKey(tag string) string { return s.recordKey(tag) }
