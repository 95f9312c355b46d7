package serializer

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/klauspost/compress/s2"
)

// DefaultCompressAbove is a good [Options.CompressAbove] for network stores:
// bodies below it gain little from compression, in size or in time.
const DefaultCompressAbove = core.DefaultCompressAbove

// MaxDecodedSize bounds the decompressed body of an entry. A compressed
// entry that declares more, or more than 64 KiB plus 64 times its
// compressed size, is [ErrCorrupt]: a few damaged bytes cannot make Decode
// allocate much. (Bodies that compress better than that, thousands of
// identical rows, are stored uncompressed.) The guards are those of the
// low-level and page caches too (internal/core).
const MaxDecodedSize = core.MaxDecodedSize

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
	if core.CompressionPays(len(src), len(c)) {
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
	body, err := core.Inflate(s.data[len(s.data)-s.r.Len():])
	if err != nil {
		return corrupt("%v", err)
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
