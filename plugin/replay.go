package plugin

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
)

// The replay driver turns a cached entry, or a live result being captured,
// into a real *sql.Rows / *sql.Row, so that GORM and database/sql do the
// scanning with their own conversion rules. Its connection accepts one
// argument, a replayable source, through CheckNamedValue.

type replayConnector struct{}

func (replayConnector) Connect(context.Context) (driver.Conn, error) { return replayConn{}, nil }
func (replayConnector) Driver() driver.Driver                        { return replayDriver{} }

type replayDriver struct{}

func (replayDriver) Open(string) (driver.Conn, error) { return replayConn{}, nil }

type replayConn struct{}

var errReplayOnly = errors.New("gormcache: replay connection serves cached rows only")

func (replayConn) Prepare(string) (driver.Stmt, error) { return nil, errReplayOnly }
func (replayConn) Close() error                        { return nil }
func (replayConn) Begin() (driver.Tx, error)           { return nil, errReplayOnly }

// CheckNamedValue accepts the replayable argument as it is.
func (replayConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (replayConn) QueryContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) != 1 {
		return nil, errReplayOnly
	}
	src, ok := args[0].Value.(replayable)
	if !ok {
		return nil, errReplayOnly
	}
	return src.open()
}

var (
	_ driver.QueryerContext    = replayConn{}
	_ driver.NamedValueChecker = replayConn{}
)

func newReplayDB() *sql.DB {
	db := sql.OpenDB(replayConnector{})
	db.SetMaxIdleConns(256)
	return db
}

// replayDB is the one replay database, shared by every plugin: it is
// in-process and holds nothing, and it is never closed (statements still in
// flight when a plugin closes may be replaying through it).
var replayDB = newReplayDB()

// errSource replays a query error through a *sql.Row.
type errSource struct{ err error }

func (s errSource) open() (driver.Rows, error) { return nil, s.err }

// ---- column types ----

// scanTypes maps ColumnType.ScanType().String() back to the type, for the
// types met in this process plus the common ones (builtinScanTypes).
var scanTypes sync.Map

// builtinScanTypes are the scan types known in every process.
var builtinScanTypes = []any{
	int8(0), int16(0), int32(0), int64(0), int(0), uint8(0), uint16(0), uint32(0), uint64(0), uint(0),
	float32(0), float64(0), false, "", []byte(nil), time.Time{}, sql.RawBytes(nil),
	[][]byte(nil), // glebarez/go-sqlite's scan type of a BLOB value
	sql.NullString{}, sql.NullInt64{}, sql.NullInt32{}, sql.NullInt16{}, sql.NullByte{},
	sql.NullFloat64{}, sql.NullBool{}, sql.NullTime{}, new(any),
}

func init() {
	for _, v := range builtinScanTypes {
		t := reflect.TypeOf(v)
		if t.Kind() == reflect.Pointer {
			t = t.Elem() // interface {}
		}
		scanTypes.Store(t.String(), t)
	}
}

// commonScanType reports, without a map lookup, whether name is one of the
// scan types PostgreSQL's, MySQL's and SQLite's drivers report most (all of
// them builtinScanTypes): a hit checks every column's.
func commonScanType(name string) bool {
	switch name {
	case "", "int64", "int32", "int16", "string", "float64", "float32", "bool", "time.Time", "[]uint8", "interface {}",
		"sql.NullString", "sql.NullInt64", "sql.NullInt32", "sql.NullInt16", "sql.NullFloat64", "sql.NullBool", "sql.NullTime":
		return true
	}
	return false
}

func registerScanType(t reflect.Type) string {
	if t == nil {
		return ""
	}
	name := t.String()
	if _, ok := scanTypes.Load(name); !ok {
		scanTypes.Store(name, t)
	}
	return name
}

func scanTypeOf(name string) (reflect.Type, bool) {
	v, ok := scanTypes.Load(name)
	if !ok {
		return nil, false
	}
	return v.(reflect.Type), true
}

// entryKnowsScanTypes reports whether every column's scan type is known in
// this process; an entry from another process with an exotic type cannot
// report exact column types and is treated as a miss.
func entryKnowsScanTypes(e *serializer.Entry) bool {
	if !knowsScanTypes(e.Columns) {
		return false
	}
	for _, set := range e.ColumnSets {
		if !knowsScanTypes(set) {
			return false
		}
	}
	return true
}

func knowsScanTypes(cols []serializer.Column) bool {
	for i := range cols {
		if commonScanType(cols[i].ScanType) {
			continue
		}
		if _, ok := scanTypeOf(cols[i].ScanType); !ok {
			return false
		}
	}
	return true
}

// rowDependentTypes reports whether the driver's column types may depend on
// the current row, so that a capture must record them row by row.
// glebarez/go-sqlite and modernc.org/sqlite report the storage class of the
// current row's value (a BOOLEAN's scan type is bool only while a row holding
// an integer is current, and nil before the first row), and GORM allocates a
// map's values from ColumnTypes after Next. PostgreSQL's and MySQL's drivers
// report the result's metadata, the same at every row; unknown drivers are
// assumed to vary.
func (p *Plugin) rowDependentTypes() bool {
	return p.dialect != invalidation.Postgres && p.dialect != invalidation.MySQL
}

// newCapture starts the capture of a result whose column types before the
// first row are cols. rowTypes: record each row's column types too, when
// they depend on the row; the fast path's captures (struct and scalar
// destinations, which never read column types) do without, and a replay
// that needs them treats such an entry as a miss (see replaysTypes).
func (p *Plugin) newCapture(cols []serializer.Column, rowTypes bool) *capture {
	c := new(capture)
	p.startCapture(c, cols, rowTypes)
	return c
}

// startCapture is newCapture into c.
func (p *Plugin) startCapture(c *capture, cols []serializer.Column, rowTypes bool) {
	*c = capture{maxRows: p.cfg.MaxRows, maxBytes: p.cfg.MaxBytes, rowTypes: rowTypes && p.rowDependentTypes()}
	c.entry.Columns = cols
}

// replaysTypes reports whether e reports the column types the driver would
// at every row: it has per-row types, or needs none.
func (p *Plugin) replaysTypes(e *serializer.Entry) bool {
	return e.ColumnSets != nil || e.Rows == 0 || !p.rowDependentTypes()
}

// rowColumns reads the column types of rows' current row.
func rowColumns(rows *sql.Rows) []serializer.Column {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil // (closed: no current row)
	}
	return columnsOf(cts)
}

// knownColumns are the columns columnsOf last made for one plan's results,
// with their scan types: the next result whose column types are the same
// in every respect shares them (entries never modify their Columns).
type knownColumns struct {
	cols  []serializer.Column
	types []reflect.Type
}

// sharedColumnsOf is columnsOf(cts), or the equal columns memo holds; memo
// then holds the columns returned.
func sharedColumnsOf(memo *atomic.Pointer[knownColumns], cts []*sql.ColumnType) []serializer.Column {
	if k := memo.Load(); k != nil && k.match(cts) {
		return k.cols
	}
	k := &knownColumns{cols: columnsOf(cts), types: make([]reflect.Type, len(cts))}
	for i, ct := range cts {
		k.types[i] = ct.ScanType()
	}
	memo.Store(k)
	return k.cols
}

// match reports whether columnsOf(cts) would equal k.cols.
func (k *knownColumns) match(cts []*sql.ColumnType) bool {
	if len(cts) != len(k.cols) {
		return false
	}
	for i, ct := range cts {
		c := &k.cols[i]
		if ct.ScanType() != k.types[i] || ct.Name() != c.Name || ct.DatabaseTypeName() != c.DatabaseTypeName {
			return false
		}
		if n, ok := ct.Length(); n != c.Length || ok != c.HasLength {
			return false
		}
		if p, sc, ok := ct.DecimalSize(); p != c.Precision || sc != c.Scale || ok != c.HasDecimalSize {
			return false
		}
		if n, ok := ct.Nullable(); n != c.Nullable || ok != c.HasNullable {
			return false
		}
	}
	return true
}

func columnsOf(cts []*sql.ColumnType) []serializer.Column {
	cols := make([]serializer.Column, len(cts))
	for i, ct := range cts {
		c := &cols[i]
		c.Name = ct.Name()
		c.DatabaseTypeName = ct.DatabaseTypeName()
		c.ScanType = registerScanType(ct.ScanType())
		c.Length, c.HasLength = ct.Length()
		c.Precision, c.Scale, c.HasDecimalSize = ct.DecimalSize()
		c.Nullable, c.HasNullable = ct.Nullable()
	}
	return cols
}

// colTypes implements the driver's column-type interfaces over entry columns.
type colTypes struct{ cols []serializer.Column }

func (c colTypes) Columns() []string {
	names := make([]string, len(c.cols))
	for i := range c.cols {
		names[i] = c.cols[i].Name
	}
	return names
}

func (c colTypes) ColumnTypeDatabaseTypeName(i int) string { return c.cols[i].DatabaseTypeName }

func (c colTypes) ColumnTypeScanType(i int) reflect.Type {
	if c.cols[i].ScanType == "" {
		return nil // the driver reported none
	}
	if t, ok := scanTypeOf(c.cols[i].ScanType); ok {
		return t
	}
	return reflect.TypeOf(new(any)).Elem()
}

func (c colTypes) ColumnTypeLength(i int) (int64, bool) {
	return c.cols[i].Length, c.cols[i].HasLength
}

func (c colTypes) ColumnTypeNullable(i int) (bool, bool) {
	return c.cols[i].Nullable, c.cols[i].HasNullable
}

func (c colTypes) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return c.cols[i].Precision, c.cols[i].Scale, c.cols[i].HasDecimalSize
}

// ---- a cached entry ----

// The column types an entryRows reports are those the driver reported at
// the same point: Columns before the first row, then the row's set when the
// entry has per-row types.

type entryRows struct {
	colTypes
	e   *serializer.Entry
	row int
}

var (
	_ driver.RowsColumnTypeScanType         = (*entryRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*entryRows)(nil)
	_ driver.RowsColumnTypeLength           = (*entryRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*entryRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*entryRows)(nil)
	_ driver.RowsNextResultSet              = (*liveRows)(nil)
)

func (r *entryRows) Close() error { return nil }

func (r *entryRows) Next(dest []driver.Value) error {
	if r.row >= r.e.Rows {
		return io.EOF
	}
	n := len(r.e.Columns)
	copyOut(dest, r.e.Values[r.row*n:(r.row+1)*n])
	if r.e.RowSets != nil {
		r.cols = r.e.ColumnSets[r.e.RowSets[r.row]]
	}
	r.row++
	return nil
}

// copyOut hands out values; byte slices are copied, since a destination
// (a sql.Scanner, GORM's serializer) may keep or modify what it is given and
// the entry is shared.
func copyOut(dest []driver.Value, src []driver.Value) {
	for i, v := range src {
		if b, ok := v.([]byte); ok {
			v = bytes.Clone(b) // nil stays nil, empty stays empty
		}
		dest[i] = v
	}
}

// ---- a live result, captured as it is read ----

// The column types a liveRows reports are the real rows' at the same point:
// read once before the first row and, for a driver whose types depend on the
// row, again at every row.

type liveRows struct {
	colTypes
	src    *liveSource
	closed bool
}

func (r *liveRows) Next(dest []driver.Value) error {
	s := r.src
	if !s.advance() {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	cols, err := s.read()
	if err != nil {
		s.ended, s.err = true, err
		return err
	}
	for i, v := range s.vals {
		dest[i] = v
	}
	if s.rowTypes && cols != nil {
		r.cols = cols
	}
	return nil
}

func (r *liveRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	_, closeErr := r.src.close()
	return closeErr
}

// HasNextResultSet and NextResultSet pass further result sets through (a
// multi-statement query on MySQL); a result with several sets is not stored.
func (r *liveRows) HasNextResultSet() bool { return true }

func (r *liveRows) NextResultSet() error {
	if c := r.src.capture; c != nil {
		c.abandon(ReasonMultiStatement)
	}
	if !r.src.rows.NextResultSet() {
		if err := r.src.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	cts, err := r.src.rows.ColumnTypes()
	if err != nil {
		return err
	}
	r.colTypes = colTypes{columnsOf(cts)}
	r.src.reset(len(cts))
	r.src.ended, r.src.err = false, nil
	return nil
}
