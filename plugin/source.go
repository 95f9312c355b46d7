package plugin

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gormcache/gormcache/serializer"
	"gorm.io/gorm"
)

// The rows of a read come from one of two sources: a cached entry
// (entrySource, a hit) or the database, captured as they are read to be
// stored (liveSource, a miss). A source is read one of two ways, chosen by
// the statement's destination: GORM's structs and slices scan it as
// gorm.Rows (directScan, or gorm.Scan), and maps, Row and Rows read it as
// database/sql rows, through the replay driver (open; replay.go).

// rowSource is the rows of one query.
type rowSource interface {
	gorm.Rows
	valueRows
	replayable
}

// replayable is what the replay driver turns into *sql.Rows: its driver
// rows, opened once.
type replayable interface {
	open() (driver.Rows, error)
}

var (
	_ rowSource  = (*entrySource)(nil)
	_ rowSource  = (*liveSource)(nil)
	_ replayable = errSource{}
	_ replayable = oneValue{}
)

// ---- a cached entry ----

// entrySource is the rows of a cached entry; row is the current row (-1
// before the first).
type entrySource struct {
	e   *serializer.Entry
	row int
	err error
}

func newEntrySource(e *serializer.Entry) *entrySource { return &entrySource{e: e, row: -1} }

func (r *entrySource) open() (driver.Rows, error) {
	return &entryRows{colTypes: colTypes{r.e.Columns}, e: r.e}, nil
}

func (r *entrySource) Columns() ([]string, error) {
	// A fresh slice each time: gorm.Scan rewrites it with ColumnMapping.
	names := make([]string, len(r.e.Columns))
	for i := range r.e.Columns {
		names[i] = r.e.Columns[i].Name
	}
	return names, nil
}

func (r *entrySource) hasColumns(names []string) bool {
	if len(names) != len(r.e.Columns) {
		return false
	}
	for i := range names {
		if names[i] != r.e.Columns[i].Name {
			return false
		}
	}
	return true
}

var errNoColumnTypes = errors.New("gormcache: column types are not available on the fast path")

func (r *entrySource) ColumnTypes() ([]*sql.ColumnType, error) { return nil, errNoColumnTypes }

func (r *entrySource) Next() bool {
	if r.row+1 >= r.e.Rows {
		r.row = r.e.Rows
		return false
	}
	r.row++
	return true
}

func (r *entrySource) Err() error { return r.err }

func (r *entrySource) values() ([]driver.Value, error) {
	n := len(r.e.Columns)
	return r.e.Values[r.row*n : (r.row+1)*n], nil
}

func (r *entrySource) Close() error { return nil }

func (r *entrySource) Scan(dest ...any) error {
	if r.row < 0 || r.row >= r.e.Rows {
		return errors.New("sql: Scan called without calling Next")
	}
	n := len(r.e.Columns)
	return scanRow(dest, r.e.Values[r.row*n:(r.row+1)*n], func(i int) string { return r.e.Columns[i].Name })
}

// scanRow assigns a row's values to dest as *sql.Rows.Scan would, with
// its errors; name gives a column's name, for them.
func scanRow(dest []any, vals []driver.Value, name func(int) string) error {
	if len(dest) != len(vals) {
		return errors.New("sql: expected " + strconv.Itoa(len(vals)) + " destination arguments in Scan, not " + strconv.Itoa(len(dest)))
	}
	for i, d := range dest {
		if err := assign(d, vals[i]); err != nil {
			return fmt.Errorf("sql: Scan error on column index %d, name %q: %w", i, name(i), err)
		}
	}
	return nil
}

// ---- the database's rows, captured as they are read ----

// liveSource is real rows, read once, each row kept in capture as it is
// read (nil: not to be stored). done is called once, when they are closed
// (finish).
type liveSource struct {
	rowBuf
	rows *sql.Rows
	// rowTypes: the driver's column types depend on the row (see
	// Plugin.rowDependentTypes); they are read again at every row.
	rowTypes bool
	capture  *capture
	kept     capture // the capture, when the source makes its own
	// known: the plan's last result columns (knownColumns), or nil
	known    *atomic.Pointer[knownColumns]
	done     func(c *capture, complete bool, err error)
	finished bool

	names   []string // the columns' names, once read
	dvals   []driver.Value
	ended   bool  // Next returned false
	err     error // the rows' error then, or a scan's
	scanned bool  // the current row is in vals
}

// advance moves to the next row; false at the end, with the rows' error
// in err.
func (s *liveSource) advance() bool {
	if s.ended {
		return false
	}
	s.scanned = false
	if !s.rows.Next() {
		s.ended, s.err = true, s.rows.Err()
		return false
	}
	return true
}

// read scans the current row into vals, once, and keeps it in the
// capture. cols are the row's column types when they depend on the row.
func (s *liveSource) read() (cols []serializer.Column, err error) {
	if s.scanned {
		return nil, nil
	}
	if err := s.scan(s.rows); err != nil {
		return nil, err
	}
	s.scanned = true
	c := s.capture
	if s.rowTypes || c != nil && c.rowTypes {
		cols = rowColumns(s.rows)
	}
	if c != nil && c.reason == "" {
		c.keep(s.vals, cols)
	}
	return cols, nil
}

// finish calls done once.
func (s *liveSource) finish(c *capture, complete bool, err error) {
	if s.finished || s.done == nil {
		return
	}
	s.finished = true
	s.done(c, complete, err)
}

// close closes the rows and reports to done (finish): complete when the
// whole result was read without error.
func (s *liveSource) close() (complete bool, closeErr error) {
	complete, closeErr = closeCaptured(s.rows, s.capture, s.ended, s.err)
	err := s.err
	if err == nil {
		err = closeErr
	}
	s.finish(s.capture, complete && err == nil, err)
	return complete, closeErr
}

// open reads the columns' types and makes the driver rows of the replay.
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
	s.reset(len(cols))
	if s.capture != nil {
		s.capture.entry.Columns = cols
	}
	return &liveRows{colTypes: colTypes{cols}, src: s}, nil
}

// The fast path's gorm.Rows.

func (s *liveSource) Columns() ([]string, error) { return s.rows.Columns() } // a fresh slice each call

func (s *liveSource) hasColumns(names []string) bool {
	if s.names == nil {
		cols, err := s.rows.Columns()
		if err != nil {
			return false
		}
		s.names = cols
	}
	return slices.Equal(s.names, names)
}

func (s *liveSource) ColumnTypes() ([]*sql.ColumnType, error) { return s.rows.ColumnTypes() }

func (s *liveSource) Next() bool { return s.advance() }

func (s *liveSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

func (s *liveSource) Close() error { return nil } // the fast path closes (close)

// values reads the current row (once) and keeps it.
func (s *liveSource) values() ([]driver.Value, error) {
	if s.scanned {
		return s.dvals, nil
	}
	if s.vals == nil {
		if s.names == nil {
			cols, err := s.rows.Columns()
			if err != nil {
				return nil, err
			}
			s.names = cols
		}
		s.reset(len(s.names))
		s.dvals = make([]driver.Value, len(s.names))
	}
	if _, err := s.read(); err != nil {
		if s.capture != nil {
			s.capture.abandon(ReasonPartialRead)
		}
		return nil, err
	}
	for i, v := range s.vals {
		s.dvals[i] = v
	}
	return s.dvals, nil
}

func (s *liveSource) Scan(dest ...any) error {
	vals, err := s.values()
	if err != nil {
		return err
	}
	return scanRow(dest, vals, func(i int) string { return s.names[i] })
}

// ---- what a miss keeps ----

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
