package plugin

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// FuzzConvert is the differential test of the hit path's conversions: for a
// driver value and every destination kind, the cached path must give what
// the database would. For entrySource.Scan (assign) the reference is
// database/sql's own Scan of the value through a replay driver; for the
// direct scan (setRow) it is gorm.Scan's way for a struct field: the field's
// pooled value, database/sql's Scan into it, field.Set. Values and errors
// must be the same, and a destination must not keep the entry's bytes.
func FuzzConvert(f *testing.F) {
	for _, s := range convertSeeds() {
		f.Add(s.kind, s.i, s.f, s.s)
	}
	f.Fuzz(func(t *testing.T, kind uint8, i int64, fl float64, s string) {
		checkScanConversions(t, func() driver.Value { return fuzzValue(kind, i, fl, s) })
		checkDirectConversions(t, func() driver.Value { return fuzzValue(kind, i, fl, s) })
	})
}

type convertSeed struct {
	kind uint8
	i    int64
	f    float64
	s    string
}

// The kinds of driver value fuzzValue makes, the types a cached entry holds.
const (
	srcNil uint8 = iota
	srcInt64
	srcFloat64
	srcBool
	srcString
	srcBytes
	srcTime
	srcUint64
	srcFloat32
	srcKinds
)

func fuzzValue(kind uint8, i int64, fl float64, s string) driver.Value {
	switch kind % srcKinds {
	case srcInt64:
		return i
	case srcFloat64:
		return fl
	case srcBool:
		return i&1 == 1
	case srcString:
		return s
	case srcBytes:
		return []byte(s)
	case srcTime:
		loc := time.UTC
		if i&1 == 1 {
			loc = time.FixedZone("X", 3600)
		}
		return time.Unix(i>>1, int64(math.Abs(math.Mod(fl, 1e9)))).In(loc)
	case srcUint64:
		return uint64(i)
	case srcFloat32:
		return float32(fl)
	}
	return nil
}

func convertSeeds() []convertSeed {
	ints := []int64{0, 1, -1, 2, 7, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
		65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1,
		math.MaxUint32, math.MaxUint32 + 1, 1 << 24, 1<<24 + 1, 1 << 53, 1<<53 + 1, -(1<<53 + 1),
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 1.5, -2.5, 0.1, 7, 255, 256, -129,
		math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat32, math.MaxFloat32 * 2, math.SmallestNonzeroFloat32,
		math.SmallestNonzeroFloat64, math.MaxFloat64, 1 << 24, 1<<24 + 1, 1 << 53, 1<<53 + 1, 1 << 63, 1 << 64,
		-(1 << 63), 1e20, 1e21, 1e-5, 16777217, 3.4028235e38}
	strs := []string{"", "0", "1", "-1", "+1", "-0", "7", "12", " 1", "1 ", "01", "0x10", "0b1", "0o7", "1_000",
		"1e3", "1.5", "1.0", ".5", "5.", "Inf", "+Inf", "-Inf", "inf", "infinity", "-Infinity", "NaN", "nan",
		"1e400", "-1e400", "1e-400", "0x1p-2", "true", "false", "t", "F", "TRUE", "True", "yes", "garbage",
		"127", "128", "-128", "-129", "255", "256", "65535", "65536", "2147483647", "2147483648",
		"4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
		"3.4028235e38", "3.5e38", "1e-46", "16777217", "9007199254740993",
		"2006-01-02 15:04:05", "2006-01-02T15:04:05Z", "2006-01-02", "\xff", "é"}
	var seeds []convertSeed
	seeds = append(seeds, convertSeed{kind: srcNil})
	for _, i := range ints {
		for _, k := range []uint8{srcInt64, srcUint64, srcTime} {
			seeds = append(seeds, convertSeed{kind: k, i: i})
		}
	}
	seeds = append(seeds, convertSeed{kind: srcBool}, convertSeed{kind: srcBool, i: 1},
		convertSeed{kind: srcTime, i: 3, f: 123456789})
	for _, fl := range floats {
		for _, k := range []uint8{srcFloat64, srcFloat32} {
			seeds = append(seeds, convertSeed{kind: k, f: fl})
		}
	}
	for _, s := range strs {
		for _, k := range []uint8{srcString, srcBytes} {
			seeds = append(seeds, convertSeed{kind: k, s: s})
		}
	}
	return seeds
}

// Named types with scalar underlying kinds: database/sql converts them by
// other rules than the plain types (type B bool takes no 0 or 1).
type (
	fzInt     int
	fzInt8    int8
	fzUint16  uint16
	fzUint    uint64
	fzFloat   float64
	fzFloat32 float32
	fzStr     string
	fzBoolean bool
	fzBlob    []byte
	fzTimeT   time.Time
)

type scanDest struct {
	name string
	new  func() any
}

// destOf returns destinations *T and **T (GORM scans struct fields through
// pointers to pointers).
func destOf[T any]() []scanDest {
	name := reflect.TypeFor[T]().String()
	return []scanDest{
		{"*" + name, func() any { return new(T) }},
		{"**" + name, func() any { return new(*T) }},
	}
}

var scanDests = func() []scanDest {
	var d []scanDest
	for _, ds := range [][]scanDest{
		destOf[string](), destOf[[]byte](), destOf[any](), destOf[bool](), destOf[time.Time](),
		destOf[int](), destOf[int8](), destOf[int16](), destOf[int32](), destOf[int64](),
		destOf[uint](), destOf[uint8](), destOf[uint16](), destOf[uint32](), destOf[uint64](),
		destOf[float32](), destOf[float64](),
		destOf[fzInt](), destOf[fzInt8](), destOf[fzUint16](), destOf[fzUint](), destOf[fzFloat](),
		destOf[fzFloat32](), destOf[fzStr](), destOf[fzBoolean](), destOf[fzBlob](), destOf[fzTimeT](),
		destOf[sql.NullString](), destOf[sql.NullInt64](), destOf[sql.NullInt32](), destOf[sql.NullInt16](),
		destOf[sql.NullByte](), destOf[sql.NullFloat64](), destOf[sql.NullBool](), destOf[sql.NullTime](),
		destOf[sql.Null[int8]](), destOf[sql.Null[uint64]](), destOf[sql.Null[float32]](),
	} {
		d = append(d, ds...)
	}
	return d
}()

var referenceDB = newReplayDB()

// sqlScan scans src into dest as database/sql does for a one-column row,
// and returns its error as it is.
func sqlScan(dest any, src driver.Value) error {
	return referenceDB.QueryRow("", oneValue{src}).Scan(dest)
}

func checkScanConversions(t *testing.T, value func() driver.Value) {
	t.Helper()
	for _, d := range scanDests {
		want, got := d.new(), d.new()
		src := value()
		wantErr := sqlScan(want, src)
		gotErr := assign(got, src)
		if gotErr != nil {
			// as entrySource.Scan reports it
			gotErr = fmt.Errorf("sql: Scan error on column index %d, name %q: %w", 0, "v", gotErr)
		}
		w, g := show(reflect.ValueOf(want)), show(reflect.ValueOf(got))
		if errString(wantErr) != errString(gotErr) || w != g {
			t.Errorf("Scan %s from %s: got %s, %v; database/sql: %s, %v", d.name, showSrc(src), g, gotErr, w, wantErr)
			continue
		}
		if b, ok := src.([]byte); ok {
			for i := range b {
				b[i] = 'X'
			}
			if after := show(reflect.ValueOf(got)); after != g {
				t.Errorf("Scan %s from %s: the destination shares the entry's bytes (%s after they changed)", d.name, showSrc(src), after)
			}
		}
	}
}

// fzRow has a field of every kind a model can have.
type fzRow struct {
	String   string
	Bytes    []byte
	Bool     bool
	Time     time.Time
	Int      int
	Int8     int8
	Int16    int16
	Int32    int32
	Int64    int64
	Uint     uint
	Uint8    uint8
	Uint16   uint16
	Uint32   uint32
	Uint64   uint64
	Float32  float32
	Float64  float64
	PString  *string
	PBytes   *[]byte
	PBool    *bool
	PTime    *time.Time
	PInt     *int
	PInt8    *int8
	PUint    *uint
	PUint64  *uint64
	PFloat32 *float32
	PFloat64 *float64
	NInt     fzInt
	NInt8    fzInt8
	NUint16  fzUint16
	NUint    fzUint
	NFloat   fzFloat
	NFloat32 fzFloat32
	NString  fzStr
	NBool    fzBoolean
	NBytes   fzBlob
	NTime    fzTimeT
	PNInt    *fzInt
	SString  sql.NullString
	SInt64   sql.NullInt64
	SInt16   sql.NullInt16
	SFloat64 sql.NullFloat64
	SBool    sql.NullBool
	STime    sql.NullTime
	SUint8   sql.Null[uint8]
}

var fzSchema = sync.OnceValue(func() *schema.Schema {
	s, err := schema.Parse(&fzRow{}, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		panic(err)
	}
	return s
})

// oneRowValues is a valueRows of one row of one value.
type oneRowValues struct{ v driver.Value }

func (r oneRowValues) Columns() ([]string, error)      { return []string{"v"}, nil }
func (r oneRowValues) Next() bool                      { return true }
func (r oneRowValues) values() ([]driver.Value, error) { return []driver.Value{r.v}, nil }
func (r oneRowValues) Err() error                      { return nil }
func (r oneRowValues) hasColumns(names []string) bool  { return len(names) == 1 && names[0] == "v" }

func checkDirectConversions(t *testing.T, value func() driver.Value) {
	t.Helper()
	sch := fzSchema()
	ctx := context.Background()
	newDB := func() *gorm.DB {
		return &gorm.DB{Config: &gorm.Config{}, Statement: &gorm.Statement{Context: ctx}}
	}
	for _, f := range sch.Fields {
		want, got := reflect.New(sch.ModelType).Elem(), reflect.New(sch.ModelType).Elem()
		prefill(want)
		prefill(got)

		// gorm.Scan's way (scanIntoStruct)
		src := value()
		ref := newDB()
		v := f.NewValuePool.Get()
		ref.AddError(sqlScan(v, src))
		ref.AddError(f.Set(ctx, want, v))
		f.NewValuePool.Put(v)

		db := newDB()
		kind, bits := kindOf(f)
		setRow(db, oneRowValues{src}, []colSetter{{field: f, kind: kind, bits: bits}}, []string{"v"}, got)

		w, g := show(f.ReflectValueOf(ctx, want)), show(f.ReflectValueOf(ctx, got))
		if ref.Error != nil && db.Error != nil {
			if _, ok := v.(sql.Scanner); ok {
				// A failed Scanner.Scan leaves the pooled value as its last
				// use did, and field.Set then sets that: not comparable.
				w, g = "", ""
			}
		}
		if errString(ref.Error) != errString(db.Error) || w != g {
			t.Errorf("field %s (%s, kind %d) from %s: got %s, %v; GORM: %s, %v", f.Name, f.FieldType, kind, showSrc(src), g, db.Error, w, ref.Error)
			continue
		}
		if b, ok := src.([]byte); ok {
			for i := range b {
				b[i] = 'X'
			}
			if after := show(f.ReflectValueOf(ctx, got)); after != g {
				t.Errorf("field %s from %s: the field shares the entry's bytes (%s after they changed)", f.Name, showSrc(src), after)
			}
		}
	}
}

// prefill gives every field a value that is not its zero value, so that
// a NULL that leaves a field as it is differs from one that zeroes it.
func prefill(v reflect.Value) {
	switch {
	case v.Type() == timeType || v.Type().ConvertibleTo(timeType) && v.Kind() == reflect.Struct && v.NumField() == 3:
		v.Set(reflect.ValueOf(time.Unix(7, 0).UTC()).Convert(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				prefill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		prefill(v.Elem())
	case reflect.String:
		v.SetString("prefilled")
	case reflect.Slice:
		v.Set(reflect.ValueOf([]byte("prefilled")).Convert(v.Type()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7)
	}
}

// show prints a value in full: through pointers, with the bits of floats
// (NaN, -0) and the location of times.
func show(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Invalid:
		return "invalid"
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "nil"
		}
		if v.Kind() == reflect.Interface {
			return "(" + v.Elem().Type().String() + ")" + show(v.Elem())
		}
		return "&" + show(v.Elem())
	case reflect.Float64:
		return fmt.Sprintf("%v[%x]", v.Float(), math.Float64bits(v.Float()))
	case reflect.Float32:
		return fmt.Sprintf("%v[%x]", v.Float(), math.Float32bits(float32(v.Float())))
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Slice:
		if v.IsNil() {
			return "nil-slice"
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("%q", v.Bytes())
		}
	case reflect.Struct:
		if v.Type().ConvertibleTo(timeType) && v.NumField() == 3 {
			return fmt.Sprintf("%#v", v.Convert(timeType).Interface())
		}
		parts := make([]string, v.NumField())
		for i := range parts {
			parts[i] = show(v.Field(i))
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprint(v)
}

func showSrc(src driver.Value) string {
	return fmt.Sprintf("%T %s", src, show(reflect.ValueOf(&src).Elem()))
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
