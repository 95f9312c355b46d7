package plugin

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

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
// A value that needs a conversion takes GORM's own way for that field (its
// value pool, database/sql's conversion, field.Set), so results and errors
// are GORM's. Anything else (joins' nested columns, duplicate columns, a
// column mapping, arrays, another struct than the model) is left to
// gorm.Scan: directScan then reports false before touching anything.

// valueRows yields the driver values of a result, one row at a time.
type valueRows interface {
	Columns() ([]string, error)
	Next() bool
	// values returns the current row's values; the slice is read before the
	// next call to Next and not kept.
	values() ([]driver.Value, error)
	Err() error
}

// setKind says how a column's value reaches its field.
type setKind uint8

const (
	setIgnore setKind = iota // no field: the value is dropped, as GORM does
	setPool                  // GORM's own way (value pool, convertAssign, field.Set)
	setString
	setInt
	setUint
	setFloat
	setBool
	setTime
)

var (
	timeType    = reflect.TypeFor[time.Time]()
	scannerType = reflect.TypeFor[sql.Scanner]()
)

func kindOf(f *schema.Field) setKind {
	if f.Serializer != nil || reflect.PointerTo(f.FieldType).Implements(scannerType) {
		return setPool
	}
	if f.FieldType.PkgPath() != "" && f.FieldType != timeType {
		// A named type (type Level int): GORM sets it through its fallback
		// setter (NULL makes it zero; conversions are database/sql's).
		return setPool
	}
	if f.FieldType == timeType {
		return setTime
	}
	switch f.FieldType.Kind() {
	case reflect.String:
		return setString
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return setInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return setUint
	case reflect.Float64:
		return setFloat
	case reflect.Bool:
		return setBool
	}
	return setPool
}

type colSetter struct {
	field *schema.Field
	kind  setKind
}

// directTarget works out where rows go, or returns ok=false when gorm.Scan
// must do it.
func directTarget(db *gorm.DB, columns []string) (setters []colSetter, rv reflect.Value, elemType reflect.Type, isPtr, ok bool) {
	st := db.Statement
	sch := st.Schema
	if sch == nil || len(columns) < 2 || len(st.ColumnMapping) > 0 {
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
	setters = make([]colSetter, len(columns))
	for i, name := range columns {
		field := sch.LookUpField(name)
		if field == nil || !field.Readable {
			if len(utils.SplitNestedRelationName(name)) > 1 {
				return nil, rv, nil, false, false // a joined relation's column
			}
			continue
		}
		for j := 0; j < i; j++ {
			if columns[j] == name {
				return nil, rv, nil, false, false // GORM's duplicate-column rules
			}
		}
		setters[i] = colSetter{field: field, kind: kindOf(field)}
	}
	return setters, rv, elemType, isPtr, true
}

// directScan scans rows into the statement's destination as gorm.Scan(rows,
// db, 0) would, and reports true; or reports false, having read nothing,
// when the destination is not one it handles. sizeHint is the number of
// rows when known (0 otherwise).
func directScan(db *gorm.DB, rows valueRows, sizeHint int) bool {
	columns, _ := rows.Columns()
	setters, rv, elemType, isPtr, ok := directTarget(db, columns)
	if !ok {
		return false
	}
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
		if s.kind != setPool && setDirect(s, s.field.ReflectValueOf(ctx, elem), src) {
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

// setDirect does the assignments whose result database/sql and GORM would
// reach without loss or error; false sends the value GORM's way.
func setDirect(s *colSetter, f reflect.Value, src driver.Value) bool {
	switch s.kind {
	case setString:
		switch x := src.(type) {
		case string:
			f.SetString(x)
			return true
		case []byte:
			f.SetString(string(x))
			return true
		}
	case setInt:
		if x, ok := src.(int64); ok && !f.OverflowInt(x) {
			f.SetInt(x)
			return true
		}
	case setUint:
		switch x := src.(type) {
		case int64:
			if x >= 0 && !f.OverflowUint(uint64(x)) {
				f.SetUint(uint64(x))
				return true
			}
		case uint64:
			if !f.OverflowUint(x) {
				f.SetUint(x)
				return true
			}
		}
	case setFloat:
		switch x := src.(type) {
		case float64:
			f.SetFloat(x)
			return true
		case string: // PostgreSQL numeric: database/sql parses the text
			if v, err := strconv.ParseFloat(x, 64); err == nil && !math.IsInf(v, 0) {
				f.SetFloat(v)
				return true
			}
		case []byte:
			if v, err := strconv.ParseFloat(string(x), 64); err == nil && !math.IsInf(v, 0) {
				f.SetFloat(v)
				return true
			}
		}
	case setBool:
		switch x := src.(type) {
		case bool:
			f.SetBool(x)
			return true
		case int64: // driver.Bool takes exactly 0 and 1
			if x == 0 || x == 1 {
				f.SetBool(x == 1)
				return true
			}
		}
	case setTime:
		if x, ok := src.(time.Time); ok {
			*f.Addr().Interface().(*time.Time) = x
			return true
		}
	}
	return false
}
