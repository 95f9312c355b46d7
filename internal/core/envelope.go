package core

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The envelope of a value that the low-level cache or the page cache puts
// in a byte store:
//
//	'E'        magic
//	format     EnvelopeVersion; the high bit is FlagCompressed
//	kind       Kind
//	check      uvarint length, bytes: the key's text, which a hit must match
//	tags       uvarint count; each: uvarint length, bytes
//	versions   uvarint count; each: uint64, little-endian (the Stamp)
//	created    int64, little-endian: unix nanoseconds, 0 = not kept
//	deadline   int64, little-endian: unix nanoseconds, 0 = none
//	payload    the front's encoding of the value, to the end; with
//	           FlagCompressed, one S2 block holding it (see Inflate)
//
// The head (everything before the payload) is never compressed. Entries
// written before the envelope (the low-level cache's 'L' 1, the page
// cache's format 1 or 0x81) and any other first byte are ErrUnsupported:
// the fronts count them as corrupt, treat them as a miss and delete them.
const (
	envelopeMagic = 'E'
	// EnvelopeVersion is the envelope's format version, its second byte.
	EnvelopeVersion = 1
	// FlagCompressed is the "compressed" bit of the format byte.
	FlagCompressed = 0x80
	// MaxItems bounds an envelope's tags and versions.
	MaxItems = 1 << 16

	envelopeFixed = 3 + 16 // magic, format, kind; created, deadline
)

// A Kind says what an envelope holds: one byte with one meaning across the
// caches, so that a front never takes another's value for its own.
type Kind byte

// The kinds of envelopes.
const (
	KindValue    Kind = 1 // a low-level cache's value (msgpack of the user's value)
	KindPage     Kind = 2 // a page cache's response
	KindVary     Kind = 3 // at a URL's base key: the headers its responses vary on
	KindFragment Kind = 4 // a page cache's rendered fragment
	maxKind           = KindFragment
)

var (
	// ErrCorrupt reports an envelope that is truncated, garbage, or has
	// inconsistent counts.
	ErrCorrupt = errors.New("gormcache: corrupt entry")
	// ErrUnsupported reports bytes of another format or version (an entry
	// written by another version of gormcache), or of an unknown kind.
	ErrUnsupported = errors.New("gormcache: unsupported entry")
)

// Head is what an envelope says about its value: everything but the
// payload.
type Head struct {
	// Kind says what the payload is.
	Kind Kind
	// Check is the canonical key text; a hit must match it exactly ("" for
	// caches that do not keep one).
	Check string
	// Tags are what the value depends on; Stamp.Versions are theirs (a
	// KindVary envelope keeps tags without versions).
	Tags []string
	Stamp
}

// EnvelopeSize returns the length of the uncompressed envelope of h with a
// payload of n bytes.
func EnvelopeSize(h *Head, n int) int {
	size := envelopeFixed + uvarintLen(len(h.Check)) + len(h.Check) +
		uvarintLen(len(h.Tags)) + uvarintLen(len(h.Versions)) + 8*len(h.Versions) + n
	for _, t := range h.Tags {
		size += uvarintLen(len(t)) + len(t)
	}
	return size
}

// uvarintLen is the length of n as a uvarint.
func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// AppendEnvelope appends the envelope of h and payload to dst. With
// compressAbove > 0, a payload longer than that is stored as an S2 block
// when that pays ([CompressionPays]). h must have at most [MaxItems] tags
// and versions.
func AppendEnvelope(dst []byte, h *Head, payload []byte, compressAbove int) []byte {
	start := len(dst)
	dst = append(dst, envelopeMagic, EnvelopeVersion, byte(h.Kind))
	dst = binary.AppendUvarint(dst, uint64(len(h.Check)))
	dst = append(dst, h.Check...)
	dst = binary.AppendUvarint(dst, uint64(len(h.Tags)))
	for _, t := range h.Tags {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(h.Versions)))
	for _, v := range h.Versions {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.Created))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.Deadline))
	if compressAbove > 0 && len(payload) > compressAbove {
		var ok bool
		if dst, ok = Compress(dst, payload); ok {
			dst[start+1] |= FlagCompressed
			return dst
		}
	}
	return append(dst, payload...)
}

// OpenEnvelope decodes an envelope: its head, and its payload, which
// aliases b unless it was compressed. Anything that is not a well-formed
// envelope is an error wrapping [ErrCorrupt] or [ErrUnsupported], never a
// panic, and never an allocation much larger than b (the guards of
// [Inflate] bound a compressed payload). The head's strings share one
// allocation.
func OpenEnvelope(b []byte) (Head, []byte, error) {
	var h Head
	if len(b) < 3 || b[0] != envelopeMagic {
		return h, nil, fmt.Errorf("%w: not an envelope (first byte %#x)", ErrUnsupported, first(b))
	}
	if v := b[1] &^ FlagCompressed; v != EnvelopeVersion {
		return h, nil, fmt.Errorf("%w: envelope version %d, want %d", ErrUnsupported, v, EnvelopeVersion)
	}
	if h.Kind = Kind(b[2]); h.Kind == 0 || h.Kind > maxKind {
		return h, nil, fmt.Errorf("%w: kind %d", ErrUnsupported, h.Kind)
	}
	r := reader{b: b, i: 3}
	// The check and the tags are kept in one string, made once they are
	// all read: their places are noted on the way (read again for more
	// than a few tags).
	checkAt, checkEnd := r.bytes()
	nTags := r.count(1)
	tagsAt := r.i
	var spans [8][2]int
	for i := range nTags {
		at, end := r.bytes()
		if i < len(spans) {
			spans[i] = [2]int{at, end}
		}
	}
	tagsEnd := r.i
	nVersions := r.count(8)
	versionsAt := r.i
	r.skip(8 * nVersions)
	created, deadline := int64(r.uint64()), int64(r.uint64())
	if r.err != nil {
		return h, nil, r.err
	}
	if created < 0 || deadline < 0 {
		return h, nil, fmt.Errorf("%w: negative time", ErrCorrupt)
	}
	if checkEnd > checkAt || nTags > 0 {
		text := string(b[checkAt:tagsEnd])
		h.Check = text[:checkEnd-checkAt]
		if nTags > 0 {
			h.Tags = make([]string, nTags)
			if nTags > len(spans) {
				t := reader{b: b, i: tagsAt}
				for i := range h.Tags {
					at, end := t.bytes()
					h.Tags[i] = text[at-checkAt : end-checkAt]
				}
			} else {
				for i := range h.Tags {
					h.Tags[i] = text[spans[i][0]-checkAt : spans[i][1]-checkAt]
				}
			}
		}
	}
	if nVersions > 0 {
		h.Versions = make([]uint64, nVersions)
		for i := range h.Versions {
			h.Versions[i] = binary.LittleEndian.Uint64(b[versionsAt+8*i:])
		}
	}
	h.Created, h.Deadline = created, deadline
	payload := b[r.i:]
	if b[1]&FlagCompressed != 0 {
		p, err := Inflate(payload)
		if err != nil {
			return Head{}, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		payload = p
	}
	return h, payload, nil
}

// EnvelopeKind returns the kind of the envelope b begins with, and whether
// it begins like one (its magic byte); [OpenEnvelope] says whether it is
// one.
func EnvelopeKind(b []byte) (Kind, bool) {
	if len(b) < 3 || b[0] != envelopeMagic {
		return 0, false
	}
	return Kind(b[2]), true
}

func first(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// reader reads an envelope's head; the first error sticks and makes every
// later read return zeros.
type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d of %d", ErrCorrupt, what, r.i, len(r.b))
	}
}

// uvarint reads a length or count that must not exceed limit. A one-byte
// uvarint (most are) takes the inlined path.
func (r *reader) uvarint(limit int) int {
	if i := r.i; i < len(r.b) {
		if c := int(r.b[i]); c < 0x80 && c <= limit {
			r.i = i + 1
			return c
		}
	}
	return r.uvarintSlow(limit)
}

func (r *reader) uvarintSlow(limit int) int {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.i:])
	if k <= 0 {
		r.fail("bad varint")
		return 0
	}
	if n > uint64(limit) {
		r.fail("length beyond the entry")
		return 0
	}
	r.i += k
	return int(n)
}

// count reads a count of items of at least size bytes each.
func (r *reader) count(size int) int {
	return r.uvarint(min(MaxItems, (len(r.b)-r.i)/size))
}

// bytes reads a length-prefixed string, returning where it lies in b.
func (r *reader) bytes() (at, end int) {
	n := r.uvarint(len(r.b) - r.i)
	at = r.i
	r.skip(n)
	return at, r.i
}

func (r *reader) skip(n int) {
	if r.err == nil {
		if n > len(r.b)-r.i {
			r.fail("truncated")
			return
		}
		r.i += n
	}
}

func (r *reader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.i < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.i:])
	r.i += 8
	return v
}
