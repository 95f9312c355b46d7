package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// Hash128 hashes canonical query bytes for a key. It must be stable across
// processes and machines, and give at least 128 bits.
type Hash128 func(data []byte) [16]byte

// SHA256 is the default [Hash128]: SHA-256 truncated to 16 bytes.
func SHA256(data []byte) [16]byte {
	sum := sha256.Sum256(data)
	return [16]byte(sum[:16])
}

// DefaultPrefix is the Prefix a zero [Builder] uses.
const DefaultPrefix = "gc"

// Builder makes store keys. The zero Builder uses the prefix "gc" and
// [SHA256].
type Builder struct {
	// Prefix namespaces every key, e.g. "gc" or "myapp". Empty means
	// DefaultPrefix.
	Prefix string
	// Hash hashes canonical queries. Nil means SHA256; tests inject a weak
	// hash to force collisions.
	Hash Hash128
}

// Key returns the store key for canonical query bytes (the output of
// [AppendQuery]):
//
//	Prefix ":" FormatVersion ":" base64url(Hash(canonical))
//
// with unpadded URL-safe base64 (22 characters for 16 bytes). It allocates
// only the returned string.
func (b Builder) Key(canonical []byte) string {
	var buf [128]byte
	return string(b.AppendKey(buf[:0], canonical))
}

// AppendKey appends the key [Builder.Key] returns to dst, for callers that
// keep the key in a reused buffer.
func (b Builder) AppendKey(dst []byte, canonical []byte) []byte {
	prefix := b.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	hash := b.Hash
	if hash == nil {
		hash = SHA256
	}
	sum := hash(canonical)
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, FormatVersion, 10)
	dst = append(dst, ':')
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}
