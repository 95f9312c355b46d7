package plugin

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"sync/atomic"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
	"gorm.io/gorm/utils"
)

// The direct scan: for the destinations GORM's query chain meets most (a
// struct, or a slice of structs or of pointers to structs, of the
// statement's model), rows go straight into the fields, without gorm.Scan's
// per-row pools, pointer-to-pointer values and appends. It is gorm.Scan
// (v1.31's default case, mode 0) restricted to those destinations: the same
// field lookup, NULL leaving a field as it is, RowsAffected, the same errors.
// A field of a type the conversion table (convert.go) knows is set by it; a
// value it has no rule for, and any other field, takes GORM's own way for
// that field (its value pool, database/sql's conversion, field.Set), so
// results and errors are GORM's. Anything else (joins' nested columns, duplicate columns, a
// column mapping, arrays, another struct than the model) is left to
// gorm.Scan: directScan then reports false before touching anything.

// valueRows yields the driver values of a result, one row at a time.
type valueRows interface {
	Columns() ([]string, error)
	// hasColumns reports whether the result's column names are names.
	hasColumns(names []string) bool
	Next() bool
	// values returns the current row's values; the slice is read before the
	// next call to Next and not kept.
	values() ([]driver.Value, error)
	Err() error
}

var scannerType = reflect.TypeFor[sql.Scanner]()

// kindOf classifies a field for the conversion table (convert.go). A
// named type (type Level int) is set by GORM's fallback setter, where NULL
// makes it zero and conversions are database/sql's: setPool.
func kindOf(f *schema.Field) (setKind, uint8) {
	if f.Serializer != nil || reflect.PointerTo(f.FieldType).Implements(scannerType) {
		return setPool, 0
	}
	return destKind(f.FieldType)
}

type colSetter struct {
	field *schema.Field
	kind  setKind
	bits  uint8 // of a number
}

// scanLayout is where the columns of a result go in a schema's fields:
// the part of directTarget that depends on the schema and the column names
// only. A plan keeps its last one (plan.layout), so that a query scanned
// again (every hit) does not look its fields up and classify them again.
type scanLayout struct {
	sch     *schema.Schema
	columns []string // never modified
	setters []colSetter
	ok      bool // false: gorm.Scan must scan these columns
}

// newScanLayout works out the fields of sch that columns go to.
func newScanLayout(sch *schema.Schema, columns []string) *scanLayout {
	l := &scanLayout{sch: sch, columns: columns}
	if len(columns) < 2 {
		return l
	}
	setters := make([]colSetter, len(columns))
	for i, name := range columns {
		field := sch.LookUpField(name)
		if field == nil || !field.Readable {
			if len(utils.SplitNestedRelationName(name)) > 1 {
				return l // a joined relation's column
			}
			continue
		}
		for j := 0; j < i; j++ {
			if columns[j] == name {
				return l // GORM's duplicate-column rules
			}
		}
		kind, bits := kindOf(field)
		setters[i] = colSetter{field: field, kind: kind, bits: bits}
	}
	l.setters, l.ok = setters, true
	return l
}

// layoutFor returns the layout of rows' columns in sch: memo's when it is
// that one, or a new one, which memo then keeps.
func layoutFor(memo *atomic.Pointer[scanLayout], sch *schema.Schema, rows valueRows) *scanLayout {
	if l := memo.Load(); l != nil && l.sch == sch && rows.hasColumns(l.columns) {
		return l
	}
	columns, _ := rows.Columns()
	l := newScanLayout(sch, columns)
	memo.Store(l)
	return l
}

// directTarget works out where rows go, or returns ok=false when gorm.Scan
// must do it. memo keeps the layout of the columns (see scanLayout).
func directTarget(db *gorm.DB, rows valueRows, memo *atomic.Pointer[scanLayout]) (l *scanLayout, rv reflect.Value, elemType reflect.Type, isPtr, ok bool) {
	st := db.Statement
	sch := st.Schema
	if sch == nil || len(st.ColumnMapping) > 0 {
		return nil, rv, nil, false, false
	}
	rv = st.ReflectValue
	if rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Slice:
		elemType = rv.Type().Elem()
		if elemType.Kind() == reflect.Pointer {
			isPtr = true
			elemType = elemType.Elem()
		}
	case reflect.Struct:
		elemType = rv.Type()
		if !rv.CanAddr() {
			return nil, rv, nil, false, false
		}
	default:
		return nil, rv, nil, false, false
	}
	if elemType != sch.ModelType {
		return nil, rv, nil, false, false
	}
	l = layoutFor(memo, sch, rows)
	return l, rv, elemType, isPtr, l.ok
}

// directScan scans rows into the statement's destination as gorm.Scan(rows,
// db, 0) would, and reports true; or reports false, having read nothing,
// when the destination is not one it handles. sizeHint is the number of
// rows when known (0 otherwise); memo keeps the layout of the columns.
func directScan(db *gorm.DB, rows valueRows, memo *atomic.Pointer[scanLayout], sizeHint int) bool {
	l, rv, elemType, isPtr, ok := directTarget(db, rows, memo)
	if !ok {
		return false
	}
	setters, columns := l.setters, l.columns
	db.RowsAffected = 0
	if rv.Kind() == reflect.Struct {
		if rows.Next() {
			db.RowsAffected++
			setRow(db, rows, setters, columns, rv)
		}
	} else {
		sv := reflect.New(rv.Type()).Elem()
		if rv.Cap() == 0 {
			if sizeHint <= 0 {
				sizeHint = 20 // as gorm.Scan
			}
			sv.Set(reflect.MakeSlice(rv.Type(), 0, sizeHint))
		} else {
			sv.Set(rv.Slice(0, 0)) // a slice with capacity is reused, as by gorm.Scan
		}
		for rows.Next() {
			n := sv.Len()
			if n == sv.Cap() {
				sv.Grow(1)
			}
			sv.SetLen(n + 1)
			slot := sv.Index(n)
			db.RowsAffected++
			if isPtr {
				e := reflect.New(elemType)
				setRow(db, rows, setters, columns, e.Elem())
				slot.Set(e)
			} else {
				slot.SetZero()
				setRow(db, rows, setters, columns, slot)
			}
		}
		db.Statement.ReflectValue.Set(sv)
	}
	if err := rows.Err(); err != nil && err != db.Error {
		db.AddError(err)
	}
	if db.RowsAffected == 0 && db.Statement.RaiseErrorOnNotFound && db.Error == nil {
		db.AddError(gorm.ErrRecordNotFound)
	}
	return true
}

// setRow sets the fields of elem from the current row. A value that cannot
// be converted stops the row with database/sql's error, as rows.Scan does.
func setRow(db *gorm.DB, rows valueRows, setters []colSetter, columns []string, elem reflect.Value) {
	vals, err := rows.values()
	if err != nil {
		db.AddError(err)
		return
	}
	ctx := db.Statement.Context
	for i := range setters {
		s := &setters[i]
		src := vals[i]
		if s.kind == setIgnore || src == nil && s.kind != setPool {
			continue // NULL leaves a field as it is (GORM sets nothing)
		}
		if s.kind != setPool && setValue(s.kind, s.bits, s.field.ReflectValueOf(ctx, elem), src) {
			continue
		}
		v := s.field.NewValuePool.Get()
		if err := assign(v, src); err != nil {
			db.AddError(fmt.Errorf("sql: Scan error on column index %d, name %q: %w", i, columns[i], err))
			// rows.Scan stops at the failing column, and gorm.Scan then sets
			// every field from its pooled value, scanned or not: the same here.
			for j := i; j < len(setters); j++ {
				if f := setters[j].field; f != nil {
					if j != i {
						v = f.NewValuePool.Get()
					}
					db.AddError(f.Set(ctx, elem, v))
					f.NewValuePool.Put(v)
				}
			}
			return
		}
		db.AddError(s.field.Set(ctx, elem, v))
		s.field.NewValuePool.Put(v)
	}
}
