package serializer

import (
	"database/sql/driver"
	"errors"
	"time"
	"unsafe"
)

// Version is the format version: the low seven bits of the first byte of every
// encoded entry. The high bit of that byte is [FlagCompressed]. An entry with
// per-row column types ([Entry.ColumnSets]) is written as [VersionRowTypes]
// instead, so that a reader of Version alone refuses only those.
const Version = 1

// VersionRowTypes is the format of an entry with [Entry.ColumnSets]: version
// 1 followed by the column sets and each row's set.
const VersionRowTypes = 2

// MaxColumnSets is the most [Entry.ColumnSets] an entry may have.
const MaxColumnSets = 256

// FlagCompressed is the "compressed" bit of the first byte: the check bytes
// and versions are followed by an S2 block holding the rest of the entry.
const FlagCompressed = 0x80

var (
	// ErrCorrupt reports an entry that is truncated, garbage, or has
	// inconsistent counts.
	ErrCorrupt = errors.New("serializer: corrupt entry")
	// ErrUnsupported reports an entry of another format version, or with a
	// field value this package does not know.
	ErrUnsupported = errors.New("serializer: unsupported entry")
	// ErrValueType reports a value that is not one of the driver.Value types
	// AppendEncode accepts.
	ErrValueType = errors.New("serializer: unsupported value type")
	// ErrInvalidEntry reports an Entry that AppendEncode cannot encode because
	// its shape is inconsistent: len(Values) != len(Columns)*Rows, negative
	// Rows, or RowSets that do not match Rows and ColumnSets.
	ErrInvalidEntry = errors.New("serializer: invalid entry")
)

// Column describes one result column as database/sql's *sql.ColumnType
// reports it, so that a replay can report exactly the same.
type Column struct {
	// Name is ColumnType.Name().
	Name string
	// DatabaseTypeName is ColumnType.DatabaseTypeName().
	DatabaseTypeName string
	// ScanType is the reflect type string of ColumnType.ScanType(), such as
	// "int64", "sql.NullString", "time.Time", "[]uint8" or "interface {}";
	// the plugin maps it back to a type.
	ScanType string
	// Length and HasLength are ColumnType.Length().
	Length    int64
	HasLength bool
	// Precision, Scale and HasDecimalSize are ColumnType.DecimalSize().
	Precision, Scale int64
	HasDecimalSize   bool
	// Nullable and HasNullable are ColumnType.Nullable().
	Nullable    bool
	HasNullable bool
}

// Entry is one cached result set, with what is needed to verify and validate
// it.
type Entry struct {
	// Check is the canonical query (the output of keys.AppendQuery): a hit
	// must match it exactly.
	Check []byte
	// Versions are the versions of the entry's tags (table versions) read
	// before its query ran, in the order the plugin computes the tags.
	Versions []uint64
	Columns  []Column
	// Values holds the rows, row-major: len(Values) == len(Columns)*Rows.
	// Each is nil, int64, float64, bool, []byte, string or time.Time.
	Values []driver.Value
	Rows   int
	// ColumnSets and RowSets are the column types seen while each row was
	// current, for drivers whose types depend on the row (SQLite's follow
	// each value's storage class): row i's are ColumnSets[RowSets[i]], and
	// each set has len(Columns) columns. Both are nil when every row reports
	// Columns, which are always the types seen before the first row.
	ColumnSets [][]Column
	RowSets    []uint8
	// Created is when the entry was stored, in unix nanoseconds.
	Created int64
}

// Size returns an estimate of the memory the entry holds, in bytes, for
// byte-bounded stores and limits.
func (e *Entry) Size() int {
	n := int(unsafe.Sizeof(*e)) + len(e.Check) + 8*len(e.Versions) +
		int(unsafe.Sizeof(Column{}))*len(e.Columns) + 16*len(e.Values)
	for i := range e.Columns {
		c := &e.Columns[i]
		n += len(c.Name) + len(c.DatabaseTypeName) + len(c.ScanType)
	}
	n += int(unsafe.Sizeof([]Column(nil)))*len(e.ColumnSets) + len(e.RowSets)
	for _, set := range e.ColumnSets {
		n += int(unsafe.Sizeof(Column{})) * len(set)
		for i := range set {
			n += len(set[i].DatabaseTypeName) + len(set[i].ScanType) // (names are Columns')
		}
	}
	for _, v := range e.Values {
		switch x := v.(type) {
		case int64, float64, uint64, float32:
			n += 8
		case string:
			n += len(x)
		case []byte:
			n += 24 + len(x)
		case time.Time:
			n += int(unsafe.Sizeof(x))
		}
	}
	return n
}
