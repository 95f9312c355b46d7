// Package serializer is the row-set codec of gormcache: what a cache entry
// holds.
//
// An [Entry] is one cached result set: the canonical query bytes it answers
// (to verify a hit exactly), the versions of its tables read before its query
// ran (to validate it), the columns as *sql.ColumnType reports them, and the
// driver values of every row. [AppendEncode] writes it as a version byte
// followed by a hand-written msgpack v5 encoding in which every value carries
// a type tag, so that string and []byte, NULL and empty bytes, and times with
// their zone all come back as they went in. [Decode] reads it back and never
// panics or over-allocates, whatever the input; [DecodeHeader] and
// [ParseHeader] read only the check bytes and versions, for a cheap
// verification before the rows are decoded.
//
// The first byte of an entry is the format: its low seven bits are [Version],
// or [VersionRowTypes] for an entry that also carries the column types seen
// at each row ([Entry.ColumnSets], for SQLite's drivers, whose types follow
// the current row's values); its high bit is [FlagCompressed]. [AppendEncodeOptions] with
// [Options.CompressAbove] compresses the body of a large entry (everything
// after the check bytes and versions, which stay readable without
// decompression) into one S2 block (github.com/klauspost/compress/s2); Decode
// reads both forms. An entry of another version is [ErrUnsupported]; a
// damaged one, compressed or not, is [ErrCorrupt]. Callers treat both as a
// miss.
package serializer
