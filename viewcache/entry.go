package viewcache

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/vmihailenco/msgpack/v5"
)

// In a byte store a record is a core envelope (see internal/core's
// envelope.go) of kind core.KindPage, core.KindVary or core.KindFragment:
// its check text, tags, versions, creation time and deadline are the
// envelope's; its payload is a msgpack array of the rest (see encode),
// compressed with S2 when it is longer than core.DefaultCompressAbove and
// that pays. A record of another format (format 1, before the envelope),
// or one that does not decode, is a miss (counted as corrupt) and is
// deleted.
const (
	payloadFields = 5
	maxItems      = 1 << 16 // vary names, header fields or values
)

// Record kinds.
const (
	kindPage     = core.KindPage     // a stored response
	kindVary     = core.KindVary     // at a URL's base key: the headers its response varies on
	kindFragment = core.KindFragment // a rendered fragment
)

var errCorrupt = errors.New("viewcache: corrupt entry")

// record is what a key holds. Records are immutable once made: an
// in-process store keeps them as they are and hands the same *record to
// every reader.
type record struct {
	// Kind; Check, the canonical key text (a hit must match it exactly);
	// Tags, sorted (kindVary: the tags last stored, a hint); Versions, of
	// the tags, read before the handler ran (none for kindVary); Created;
	// Deadline (0 = none).
	core.Head
	status int
	header http.Header // canonical keys; every value slice clipped
	body   []byte
	vary   []string // canonical header names, sorted (kindVary; kindPage: the names in its key)
	etag   string   // the ETag sent with it, "" if none
}

// head returns the head of a record of kind for the key text check,
// depending on tags stamped with versions, made at now (no deadline).
func head(kind core.Kind, check string, tags []string, versions []uint64, now time.Time) core.Head {
	return core.Head{Kind: kind, Check: check, Tags: tags, Stamp: core.Stamp{Versions: versions, Created: now.UnixNano()}}
}

// size estimates the bytes r holds, for an in-process store's bound.
func (r *record) size() int {
	n := 160 + len(r.Check) + len(r.body) + len(r.etag) + 8*len(r.Versions)
	for _, t := range r.Tags {
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

// marshal returns r's envelope, its payload compressed when that pays.
func (r *record) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(32 + len(r.body) + 32*len(r.header))
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := r.encode(enc); err != nil {
		return nil, err
	}
	payload := buf.Bytes()
	dst := make([]byte, 0, core.EnvelopeSize(&r.Head, len(payload)))
	return core.AppendEnvelope(dst, &r.Head, payload, core.DefaultCompressAbove), nil
}

// encode writes the payload: what the envelope's head does not hold.
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
	try(enc.EncodeArrayLen(payloadFields))
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
// is an error wrapping errCorrupt (and core.ErrCorrupt or
// core.ErrUnsupported, for a record of an older format), never a panic,
// and never an allocation much larger than b (or than its payload's
// declared decompressed size, bounded by the envelope's guards).
func unmarshal(b []byte) (r *record, err error) {
	h, payload, err := core.OpenEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	defer func() {
		if p := recover(); p != nil { // the decoder should not panic; never let it crash a request
			r, err = nil, fmt.Errorf("%w: decoder panicked: %v", errCorrupt, p)
		}
	}()
	rd := bytes.NewReader(payload)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd)
	d := decoder{dec: dec, rd: rd}
	r = &record{Head: h}
	if d.arrayLen() != payloadFields {
		return nil, fmt.Errorf("%w: not a record", errCorrupt)
	}
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
	case r.Kind != kindPage && r.Kind != kindVary && r.Kind != kindFragment:
		return nil, fmt.Errorf("%w: kind %d", errCorrupt, r.Kind)
	case len(r.Tags) != len(r.Versions) && r.Kind != kindVary:
		return nil, fmt.Errorf("%w: %d tags, %d versions", errCorrupt, len(r.Tags), len(r.Versions))
	case r.Kind == kindPage && (r.status < 100 || r.status > 999):
		return nil, fmt.Errorf("%w: status %d", errCorrupt, r.status)
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
