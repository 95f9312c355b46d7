package plugin

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
)

// The replay driver turns a cached entry, or a live result being captured,
// into a real *sql.Rows / *sql.Row, so that GORM and database/sql do the
// scanning with their own conversion rules. Its connection accepts one
// argument, a rowSource, through CheckNamedValue.

// rowSource yields the driver rows of one query.
type rowSource interface {
	open() (driver.Rows, error)
}

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

// CheckNamedValue accepts the rowSource argument as it is.
func (replayConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (replayConn) QueryContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) != 1 {
		return nil, errReplayOnly
	}
	src, ok := args[0].Value.(rowSource)
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

// entrySource replays a cached entry.
type entrySource struct{ e *serializer.Entry }

func (s entrySource) open() (driver.Rows, error) {
	return &entryRows{colTypes: colTypes{s.e.Columns}, e: s.e}, nil
}

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

// liveSource streams a real result to the caller and keeps a copy of it.
type liveSource struct {
	rows *sql.Rows
	// rowTypes: the driver's column types depend on the row (see
	// Plugin.rowDependentTypes); they are read again at every row.
	rowTypes bool
	// capture: nil when the result is not to be stored.
	capture *capture
	// known: the plan's last result columns (knownColumns), or nil
	known *atomic.Pointer[knownColumns]
	// done is called once, when the rows are closed (see finish).
	done     func(c *capture, complete bool, err error)
	finished bool
}

// finish calls done once.
func (s *liveSource) finish(c *capture, complete bool, err error) {
	if s.finished || s.done == nil {
		return
	}
	s.finished = true
	s.done(c, complete, err)
}

type capture struct {
	entry    serializer.Entry
	maxRows  int
	maxBytes int
	size     int
	reason   Reason // why the capture was abandoned
	// rowTypes: keep records each row's column types (see
	// Plugin.rowDependentTypes).
	rowTypes bool
}

func (c *capture) abandon(reason Reason) {
	if c.reason == "" {
		c.reason = reason
	}
	c.entry.Values, c.entry.ColumnSets, c.entry.RowSets = nil, nil, nil
}

func (s *liveSource) open() (driver.Rows, error) {
	cts, err := s.rows.ColumnTypes()
	if err != nil {
		s.rows.Close()
		s.finish(nil, false, err)
		return nil, err
	}
	var cols []serializer.Column
	if s.known != nil {
		cols = sharedColumnsOf(s.known, cts)
	} else {
		cols = columnsOf(cts)
	}
	r := &liveRows{colTypes: colTypes{cols}, src: s}
	r.reset(len(cols))
	if s.capture != nil {
		s.capture.entry.Columns = cols
	}
	return r, nil
}

// rowBuf scans the current row of real rows as driver values.
type rowBuf struct {
	vals []any // the current row's values
	ptrs []any // &vals[i]
}

// reset makes room for rows of n columns.
func (b *rowBuf) reset(n int) {
	buf := make([]any, 2*n)
	b.vals, b.ptrs = buf[:n:n], buf[n:]
	for i := range b.vals {
		b.ptrs[i] = &b.vals[i]
	}
}

// scan reads the current row into vals.
func (b *rowBuf) scan(rows *sql.Rows) error { return rows.Scan(b.ptrs...) }

// The column types a liveRows reports are the real rows' at the same point:
// read once before the first row and, for a driver whose types depend on the
// row, again at every row.

type liveRows struct {
	colTypes
	rowBuf
	src    *liveSource
	ended  bool
	err    error
	closed bool
}

func (r *liveRows) Next(dest []driver.Value) error {
	if r.ended {
		return io.EOF
	}
	rows := r.src.rows
	if !rows.Next() {
		r.ended = true
		r.err = rows.Err()
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	if err := r.scan(rows); err != nil {
		r.ended, r.err = true, err
		return err
	}
	for i, v := range r.vals {
		dest[i] = v
	}
	var cols []serializer.Column
	if r.src.rowTypes {
		if cols = rowColumns(rows); cols != nil {
			r.cols = cols
		}
	}
	if c := r.src.capture; c != nil && c.reason == "" {
		c.keep(r.vals, cols)
	}
	return nil
}

// keep appends a row to the capture, or abandons the capture. cols are the
// row's column types, read when c.rowTypes.
func (c *capture) keep(vals []any, cols []serializer.Column) {
	if c.entry.Rows >= c.maxRows {
		c.abandon(ReasonTooManyRows)
		return
	}
	if c.rowTypes && !c.keepTypes(cols) {
		return
	}
	if c.entry.Values == nil {
		c.entry.Values = make([]driver.Value, 0, len(vals)) // (one row: First, Take)
	}
	for _, v := range vals {
		switch x := v.(type) {
		case nil, int64, float64, bool, uint64, float32:
			// (go-sql-driver/mysql returns uint64 and float32 over the binary protocol)
			c.size += 8
		case string:
			c.size += len(x) + 16
		case []byte:
			c.size += len(x) + 24
			v = bytes.Clone(x)
		case time.Time:
			c.size += 24
		default:
			c.abandon(ReasonUnsupportedValue)
			return
		}
		c.entry.Values = append(c.entry.Values, v)
	}
	c.entry.Rows++
	if c.size > c.maxBytes {
		c.abandon(ReasonTooLarge)
	}
}

// keepTypes records the column types of the row being kept: the index of
// an equal set of entry.ColumnSets, or a new one. It reports false when it
// abandoned the capture.
func (c *capture) keepTypes(cols []serializer.Column) bool {
	e := &c.entry
	if len(cols) != len(e.Columns) {
		c.abandon(ReasonPartialRead) // (no current row: the rows were closed)
		return false
	}
	k := -1
	if n := len(e.RowSets); n > 0 && slices.Equal(e.ColumnSets[e.RowSets[n-1]], cols) {
		k = int(e.RowSets[n-1]) // the common case: as the row before
	} else {
		for i, set := range e.ColumnSets {
			if slices.Equal(set, cols) {
				k = i
				break
			}
		}
	}
	if k < 0 {
		if len(e.ColumnSets) == serializer.MaxColumnSets {
			c.abandon(ReasonTooLarge)
			return false
		}
		k = len(e.ColumnSets)
		e.ColumnSets = append(e.ColumnSets, cols)
		c.size += len(cols) * int(unsafe.Sizeof(serializer.Column{}))
	}
	e.RowSets = append(e.RowSets, uint8(k))
	c.size++
	return true
}

func (r *liveRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	complete, closeErr := closeCaptured(r.src.rows, r.src.capture, r.ended, r.err)
	err := r.err
	if err == nil {
		err = closeErr
	}
	r.src.finish(r.src.capture, complete && err == nil, err)
	return closeErr
}

// closeCaptured closes real rows read while capturing them into c (nil:
// not captured). ended: Next returned false, with readErr the rows' error
// then. complete reports whether the whole result was read without error:
// First, Take and Row read one row and close, so for rows not read to the
// end one more Next tells whether that row was all.
func closeCaptured(rows *sql.Rows, c *capture, ended bool, readErr error) (complete bool, closeErr error) {
	complete = ended && readErr == nil
	if !ended && c != nil && c.reason == "" {
		if rows.Next() {
			c.abandon(ReasonPartialRead)
		} else {
			complete = rows.Err() == nil
		}
	}
	closeErr = rows.Close()
	return complete && closeErr == nil, closeErr
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
	r.reset(len(cts))
	r.ended, r.err = false, nil
	return nil
}
