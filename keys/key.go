package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// DefaultPrefix is the Prefix a zero [Builder] uses.
const DefaultPrefix = "gc"

// Builder makes store keys. The zero Builder uses the prefix "gc".
type Builder struct {
	// Prefix namespaces every key, e.g. "gc" or "myapp". Empty means
	// DefaultPrefix.
	Prefix string
}

// Key returns the store key for canonical query bytes (the output of
// [AppendQuery]):
//
//	Prefix ":" FormatVersion ":" base64url(SHA-256(canonical)[:16])
//
// with unpadded URL-safe base64 (22 characters for 16 bytes): stable across
// processes and machines. It allocates
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
	sum := sha256.Sum256(canonical)
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, FormatVersion, 10)
	dst = append(dst, ':')
	return base64.RawURLEncoding.AppendEncode(dst, sum[:16])
}
