package serializer

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
)

// DefaultCompressAbove is a good [Options.CompressAbove] for network stores:
// bodies below it gain little from compression, in size or in time.
const DefaultCompressAbove = 1 << 10

// MaxDecodedSize bounds the decompressed body of an entry. A compressed
// entry that declares more is [ErrCorrupt].
const MaxDecodedSize = 256 << 20

// maxRatio bounds the declared decompressed size of a body by its
// compressed size, so that a few damaged bytes cannot make Decode allocate
// much: at most 64 KiB plus maxRatio times the input. Bodies that compress
// better than that (thousands of identical rows) are stored uncompressed.
const (
	maxRatio = 64
	ratioMin = 64 << 10
)

// minSaving is the fraction of the body compression must save (1/minSaving)
// for the compressed form to be kept: decompressing costs time on every hit.
const minSaving = 8

// Options configure [AppendEncodeOptions]. The zero Options encodes as
// [AppendEncode] does: uncompressed.
type Options struct {
	// CompressAbove compresses, with S2 (github.com/klauspost/compress/s2),
	// the body of an entry (everything after the check bytes and versions)
	// when it is longer than this many bytes and compression saves at least
	// an eighth of it. 0 or negative means never; DefaultCompressAbove is a
	// good value for network stores.
	CompressAbove int
}

var scratchPool sync.Pool // *[]byte, for compressed bodies

// maxPooledScratch bounds the buffers kept in scratchPool.
const maxPooledScratch = 1 << 20

// compressBody replaces the body of the entry at dst[start:], which begins
// at dst[body:], with its S2 block and sets FlagCompressed, when that pays.
func compressBody(dst []byte, start, body int) []byte {
	src := dst[body:]
	n := s2.MaxEncodedLen(len(src))
	if n < 0 || len(src) > MaxDecodedSize {
		return dst
	}
	p, _ := scratchPool.Get().(*[]byte)
	if p == nil || cap(*p) < n {
		if p != nil {
			scratchPool.Put(p)
		}
		b := make([]byte, n)
		p = &b
	}
	c := s2.Encode((*p)[:n], src)
	if len(c) <= len(src)-len(src)/minSaving && len(src) <= ratioMin+maxRatio*len(c) {
		dst = append(dst[:body], c...)
		dst[start] |= FlagCompressed
	}
	if cap(*p) <= maxPooledScratch {
		scratchPool.Put(p)
	}
	return dst
}

// inflate replaces the decoder's input, positioned at an S2 block that runs
// to the end of the entry, with the decompressed body.
func (s *decodeState) inflate() error {
	block := s.data[len(s.data)-s.r.Len():]
	n, err := s2.DecodedLen(block)
	if err != nil {
		return corrupt("compressed body: %v", err)
	}
	if n > MaxDecodedSize || n > ratioMin+maxRatio*len(block) {
		return corrupt("compressed body of %d bytes declares %d", len(block), n)
	}
	if n == 0 {
		return corrupt("empty compressed body")
	}
	body, err := s2.Decode(make([]byte, n), block)
	if err != nil || len(body) != n {
		return corrupt("compressed body: %v", err)
	}
	s.data = body
	s.r.Reset(body)
	s.dec.Reset(&s.r)
	// body is this entry's own, never written again: its strings can share it
	// without the copy str makes of an uncompressed input.
	s.arena = unsafe.String(&body[0], len(body))
	return nil
}

// formatError reports a first byte this package cannot read.
func formatError(b byte) error {
	return fmt.Errorf("%w: format version %d, want %d", ErrUnsupported, b&^FlagCompressed, Version)
}
