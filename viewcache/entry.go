package viewcache

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/vmihailenco/msgpack/v5"
)

// The envelope of a record in a byte store:
//
//	format  1 byte: low seven bits formatVersion, high bit flagCompressed
//	body    msgpack array of the record's fields (see encode), or, with
//	        flagCompressed, one S2 block holding it
//
// A record of another format version, or one that does not decode, is a
// miss (counted as corrupt) and is deleted.
const (
	formatVersion  = 1
	flagCompressed = 0x80
	recordFields   = 11

	// compressAbove is the body size above which compression is tried; it
	// is kept when it saves at least an eighth.
	compressAbove = 1 << 10
	// maxDecoded bounds a decompressed body, and maxRatio the ratio of a
	// decompressed to a compressed body, so that damaged bytes cannot make
	// the decoder allocate much.
	maxDecoded = 256 << 20
	maxRatio   = 64
	ratioMin   = 64 << 10
	maxItems   = 1 << 16 // tags, vary names, header fields or values
)

// Record kinds.
const (
	kindPage     = 1 // a stored response
	kindVary     = 2 // at a URL's base key: the headers its response varies on
	kindFragment = 3 // a rendered fragment
)

var errCorrupt = errors.New("viewcache: corrupt entry")

// record is what a key holds. Records are immutable once made: an
// in-process store keeps them as they are and hands the same *record to
// every reader.
type record struct {
	kind     uint8
	check    string   // the canonical key text: a hit must match it exactly
	tags     []string // sorted; kindVary: the tags last stored (a hint)
	versions []uint64 // the versions of tags read before the handler ran
	created  int64    // unix nanoseconds
	deadline int64    // unix nanoseconds; 0 = none
	status   int
	header   http.Header // canonical keys; every value slice clipped
	body     []byte
	vary     []string // canonical header names, sorted (kindVary; kindPage: the names in its key)
	etag     string   // the ETag sent with it, "" if none
}

// size estimates the bytes r holds, for an in-process store's bound.
func (r *record) size() int {
	n := 160 + len(r.check) + len(r.body) + len(r.etag) + 8*len(r.versions)
	for _, t := range r.tags {
		n += 16 + len(t)
	}
	for _, v := range r.vary {
		n += 16 + len(v)
	}
	for k, vs := range r.header {
		n += 48 + len(k)
		for _, v := range vs {
			n += 16 + len(v)
		}
	}
	return n
}

// fresh reports whether r is stamped with exactly current, a vector of the
// versions of r.tags in which 0 means unknown or held.
func (r *record) fresh(current []uint64) bool {
	if len(current) != len(r.versions) {
		return false
	}
	for i, v := range current {
		if v == 0 || v != r.versions[i] {
			return false
		}
	}
	return true
}

// expired reports whether r's deadline has passed at now (unix nanoseconds).
func (r *record) expired(now int64) bool { return r.deadline != 0 && now >= r.deadline }

// marshal returns r's envelope, compressed when that pays.
func (r *record) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(64 + len(r.body) + 32*len(r.header))
	buf.WriteByte(formatVersion)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := r.encode(enc); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if body := b[1:]; len(body) > compressAbove {
		if n := s2.MaxEncodedLen(len(body)); n > 0 {
			out := make([]byte, 1+n)
			c := s2.Encode(out[1:], body) // written in place: out[1:] is large enough
			if len(c) <= len(body)-len(body)/8 && len(body) <= ratioMin+maxRatio*len(c) {
				out[0] = formatVersion | flagCompressed
				return out[:1+len(c)], nil
			}
		}
	}
	return b, nil
}

func (r *record) encode(enc *msgpack.Encoder) error {
	keys := make([]string, 0, len(r.header))
	for k := range r.header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var err error
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	try(enc.EncodeArrayLen(recordFields))
	try(enc.EncodeUint8(r.kind))
	try(enc.EncodeString(r.check))
	try(encodeStrings(enc, r.tags))
	try(enc.EncodeArrayLen(len(r.versions)))
	for _, v := range r.versions {
		try(enc.EncodeUint64(v))
	}
	try(enc.EncodeInt64(r.created))
	try(enc.EncodeInt64(r.deadline))
	try(enc.EncodeInt64(int64(r.status)))
	try(enc.EncodeArrayLen(2 * len(keys)))
	for _, k := range keys {
		try(enc.EncodeString(k))
		try(encodeStrings(enc, r.header[k]))
	}
	try(enc.EncodeBytes(r.body))
	try(encodeStrings(enc, r.vary))
	try(enc.EncodeString(r.etag))
	return err
}

func encodeStrings(enc *msgpack.Encoder, ss []string) error {
	if err := enc.EncodeArrayLen(len(ss)); err != nil {
		return err
	}
	for _, s := range ss {
		if err := enc.EncodeString(s); err != nil {
			return err
		}
	}
	return nil
}

// unmarshal parses an envelope. Anything that is not a well-formed record
// of this format is an error wrapping errCorrupt, never a panic, and never
// an allocation much larger than b (or than its declared decompressed
// size, itself bounded by b's length).
func unmarshal(b []byte) (r *record, err error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", errCorrupt, len(b))
	}
	if b[0]&^flagCompressed != formatVersion {
		return nil, fmt.Errorf("%w: format %d, want %d", errCorrupt, b[0]&^flagCompressed, formatVersion)
	}
	body := b[1:]
	if b[0]&flagCompressed != 0 {
		n, err := s2.DecodedLen(body)
		if err != nil || n <= 0 || n > maxDecoded || n > ratioMin+maxRatio*len(body) {
			return nil, fmt.Errorf("%w: compressed body", errCorrupt)
		}
		if body, err = s2.Decode(make([]byte, n), body); err != nil || len(body) != n {
			return nil, fmt.Errorf("%w: compressed body: %v", errCorrupt, err)
		}
	}
	defer func() {
		if p := recover(); p != nil { // the decoder should not panic; never let it crash a request
			r, err = nil, fmt.Errorf("%w: decoder panicked: %v", errCorrupt, p)
		}
	}()
	rd := bytes.NewReader(body)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd)
	d := decoder{dec: dec, rd: rd}
	r = &record{}
	if d.arrayLen() != recordFields {
		return nil, fmt.Errorf("%w: not a record", errCorrupt)
	}
	r.kind = uint8(d.uint(255))
	r.check = d.str()
	r.tags = d.strs()
	n := d.arrayLen()
	if n > 0 {
		r.versions = make([]uint64, n)
		for i := range r.versions {
			r.versions[i] = d.uint(1<<64 - 1)
		}
	}
	r.created = d.int()
	r.deadline = d.int()
	r.status = int(d.int())
	if n := d.arrayLen(); n > 0 {
		if n%2 != 0 {
			d.fail("odd header list")
		}
		r.header = make(http.Header, n/2)
		for i := 0; i < n/2 && d.err == nil; i++ {
			k := d.str()
			vs := d.strs()
			if k == "" || len(vs) == 0 {
				d.fail("empty header")
			}
			r.header[k] = slices.Clip(vs)
		}
	}
	r.body = d.bytes()
	r.vary = d.strs()
	r.etag = d.str()
	switch {
	case d.err != nil:
		return nil, fmt.Errorf("%w: %v", errCorrupt, d.err)
	case rd.Len() != 0:
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, rd.Len())
	case r.kind < kindPage || r.kind > kindFragment:
		return nil, fmt.Errorf("%w: kind %d", errCorrupt, r.kind)
	case len(r.tags) != len(r.versions) && r.kind != kindVary:
		return nil, fmt.Errorf("%w: %d tags, %d versions", errCorrupt, len(r.tags), len(r.versions))
	case r.kind == kindPage && (r.status < 100 || r.status > 999):
		return nil, fmt.Errorf("%w: status %d", errCorrupt, r.status)
	case r.created < 0 || r.deadline < 0:
		return nil, fmt.Errorf("%w: negative time", errCorrupt)
	}
	return r, nil
}

// decoder reads msgpack values, checking every declared length against the
// bytes that remain before allocating; the first error sticks.
type decoder struct {
	dec *msgpack.Decoder
	rd  *bytes.Reader
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *decoder) arrayLen() int {
	if d.err != nil {
		return 0
	}
	n, err := d.dec.DecodeArrayLen()
	switch {
	case err != nil:
		d.err = err
	case n < 0:
		return 0 // nil
	case n > maxItems || n > d.rd.Len():
		d.fail("array longer than the entry")
	default:
		return n
	}
	return 0
}

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, err := d.dec.DecodeBytesLen()
	switch {
	case err != nil:
		d.err = err
		return nil
	case n <= 0:
		return nil
	case n > d.rd.Len():
		d.fail("bytes longer than the entry")
		return nil
	}
	b := make([]byte, n)
	if err := d.dec.ReadFull(b); err != nil {
		d.err = err
		return nil
	}
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) strs() []string {
	n := d.arrayLen()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *decoder) uint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.dec.DecodeUint64()
	if err != nil {
		d.err = err
	} else if v > limit {
		d.fail("number out of range")
	}
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.dec.DecodeInt64()
	if err != nil {
		d.err = err
	}
	return v
}
