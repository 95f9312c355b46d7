package core

import (
	"fmt"

	"github.com/klauspost/compress/s2"
)

// S2 compression (github.com/klauspost/compress/s2) of what the caches put
// in a byte store: the plugin's entry bodies (package serializer) and the
// payloads of envelopes. The guards are the same for every decoder.
const (
	// DefaultCompressAbove is the body size above which compression is
	// tried, for network stores: smaller bodies gain little, in size or in
	// time.
	DefaultCompressAbove = 1 << 10
	// MaxDecodedSize bounds a decompressed body: a block that declares
	// more is corrupt.
	MaxDecodedSize = 256 << 20

	// maxRatio and ratioMin bound the declared decompressed size of a block
	// by its compressed size, so that a few damaged bytes cannot make a
	// decoder allocate much: at most ratioMin plus maxRatio times the block.
	// Bodies that compress better than that (thousands of identical rows)
	// are stored uncompressed.
	maxRatio = 64
	ratioMin = 64 << 10
	// minSaving is the fraction of a body compression must save
	// (1/minSaving) to be kept: decompressing costs time on every hit.
	minSaving = 8
)

// CompressionPays reports whether a body of n bytes compressed to c bytes
// is kept compressed: it saves at least an eighth, and its ratio is within
// the guard that [Inflate] applies.
func CompressionPays(n, c int) bool {
	return c <= n-n/minSaving && n <= ratioMin+maxRatio*c
}

// Compress appends the S2 block of src to dst when that pays
// ([CompressionPays]); otherwise it returns dst unchanged and false. src
// must not overlap dst's spare capacity.
func Compress(dst, src []byte) ([]byte, bool) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 || len(src) > MaxDecodedSize {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	c := s2.Encode(dst[start:], src) // written in place: dst[start:] is large enough
	if !CompressionPays(len(src), len(c)) {
		return dst[:start], false
	}
	return dst[:start+len(c)], true
}

// Inflate decodes one S2 block, refusing one that declares more than
// [MaxDecodedSize], more than the ratio guard allows for its size, or
// nothing. The result does not alias block.
func Inflate(block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	switch {
	case err != nil:
		return nil, fmt.Errorf("compressed body: %w", err)
	case n > MaxDecodedSize || n > ratioMin+maxRatio*len(block):
		return nil, fmt.Errorf("compressed body of %d bytes declares %d", len(block), n)
	case n == 0:
		return nil, fmt.Errorf("empty compressed body")
	}
	body, err := s2.Decode(make([]byte, n), block)
	if err != nil || len(body) != n {
		return nil, fmt.Errorf("compressed body: %v", err)
	}
	return body, nil
}
