package plugin

import (
	"bytes"
	"database/sql/driver"
	"math"
	"reflect"
	"strconv"
	"time"
)

// The conversions a hit does itself. The database's answer is database/sql's
// convertAssign of each driver value into its destination, and, for a
// struct field, GORM's field.Set of that result (gorm.Scan scans a field
// through a **T and sets the field from it: for the unnamed types below,
// the field gets exactly what convertAssign gave the *T). This file is the
// one table of those rules, shared by entrySource.Scan (assign, for any
// destination pointer) and the direct scan (setRow, for struct fields).
//
// Each conv function gives the value convertAssign stores into a
// destination of its kind, or false where convertAssign would fail or
// convert by a rule not copied here; false sends the value database/sql's
// way (assignSlow), or GORM's for a field, so that the result and its error
// are theirs. Only unnamed types and time.Time are classified: database/sql
// converts named types by other rules (a type B bool takes no 0 or 1, a
// type S string no number). FuzzConvert holds the table to database/sql and
// GORM.

// setKind says how a value reaches a destination.
type setKind uint8

const (
	setIgnore setKind = iota // no field: the value is dropped, as GORM does
	setPool                  // database/sql's (or GORM's) own way
	setString
	setInt
	setUint
	setFloat
	setBool
	setTime
)

var timeType = reflect.TypeFor[time.Time]()

// destKind classifies a destination type: its setKind and, for numbers,
// its size in bits.
func destKind(t reflect.Type) (setKind, uint8) {
	if t == timeType {
		return setTime, 0
	}
	if t.PkgPath() != "" {
		return setPool, 0 // a named type
	}
	switch t.Kind() {
	case reflect.String:
		return setString, 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return setInt, uint8(t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return setUint, uint8(t.Bits())
	case reflect.Float32, reflect.Float64:
		return setFloat, uint8(t.Bits())
	case reflect.Bool:
		return setBool, 0
	}
	return setPool, 0
}

// setValue sets v, of a type destKind classified as k and bits, from src,
// or reports false (v untouched) where the table has no rule.
func setValue(k setKind, bits uint8, v reflect.Value, src driver.Value) bool {
	switch k {
	case setString:
		if x, ok := convString(src); ok {
			v.SetString(x)
			return true
		}
	case setInt:
		if x, ok := convInt(src, bits); ok {
			v.SetInt(x)
			return true
		}
	case setUint:
		if x, ok := convUint(src, bits); ok {
			v.SetUint(x)
			return true
		}
	case setFloat:
		if x, ok := convFloat(src, bits); ok {
			v.SetFloat(x)
			return true
		}
	case setBool:
		if x, ok := convBool(src); ok {
			v.SetBool(x)
			return true
		}
	case setTime:
		if x, ok := src.(time.Time); ok {
			*v.Addr().Interface().(*time.Time) = x
			return true
		}
	}
	return false
}

// convString: a string destination takes text as it is and formats numbers,
// booleans and times (convertAssign's asString, RFC 3339 for times).
func convString(src driver.Value) (string, bool) {
	if s, ok := src.(string); ok {
		return s, true // (the common case, before the switch)
	}
	return convStringOther(src)
}

func convStringOther(src driver.Value) (string, bool) {
	switch s := src.(type) {
	case []byte:
		return string(s), true
	case int64:
		return strconv.FormatInt(s, 10), true
	case uint64:
		return strconv.FormatUint(s, 10), true
	case float64, float32:
		return floatText(s), true
	case bool:
		return strconv.FormatBool(s), true
	case time.Time:
		return s.Format(time.RFC3339Nano), true
	}
	return "", false
}

// convBytes: a []byte destination gets its own copy of bytes, NULL as nil,
// and other values as convString formats them.
func convBytes(src driver.Value) ([]byte, bool) {
	switch s := src.(type) {
	case nil:
		return nil, true
	case []byte:
		return bytes.Clone(s), true // (the entry is shared)
	case string:
		return []byte(s), true
	case time.Time:
		return s.AppendFormat(make([]byte, 0, len(time.RFC3339Nano)), time.RFC3339Nano), true
	}
	if s, ok := convString(src); ok {
		return []byte(s), true
	}
	return nil, false
}

// convInt: an integer of bits takes an integer it can hold and decimal text
// (strconv.ParseInt, base 10); a float, as convertAssign does, through its
// shortest text (1 converts; 1.5 and 1e+06 fail).
func convInt(src driver.Value, bits uint8) (int64, bool) {
	if s, ok := src.(int64); ok {
		shift := 64 - bits
		return s, s<<shift>>shift == s
	}
	return convIntOther(src, bits)
}

func convIntOther(src driver.Value, bits uint8) (int64, bool) {
	if s, ok := src.(uint64); ok {
		return int64(s), s <= math.MaxInt64>>(64-bits)
	}
	text, ok := numText(src)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(text, 10, int(bits))
	return i, err == nil
}

// convUint: an unsigned integer of bits takes a non-negative integer it can
// hold, decimal text (strconv.ParseUint, base 10) and a float's text.
func convUint(src driver.Value, bits uint8) (uint64, bool) {
	limit := uint64(math.MaxUint64) >> (64 - bits)
	switch s := src.(type) {
	case int64:
		return uint64(s), s >= 0 && uint64(s) <= limit
	case uint64:
		return s, s <= limit
	}
	text, ok := numText(src)
	if !ok {
		return 0, false
	}
	u, err := strconv.ParseUint(text, 10, int(bits))
	return u, err == nil
}

// convFloat: a float of bits takes a float it holds exactly (NaN and ±Inf
// included), an integer it holds exactly, and text strconv.ParseFloat reads
// ("Inf", "NaN" and hexadecimal included; out of range fails). A float of
// the other size goes through its shortest text, as convertAssign does
// (float32 0.1 becomes float64 0.1; 1e300 into a float32 fails).
func convFloat(src driver.Value, bits uint8) (float64, bool) {
	if s, ok := src.(float64); ok && bits == 64 {
		return s, true
	}
	return convFloatOther(src, bits)
}

func convFloatOther(src driver.Value, bits uint8) (float64, bool) {
	switch s := src.(type) {
	case float64:
		if bits == 64 || float64(float32(s)) == s {
			return s, true // (held exactly: its text parses back to it)
		}
	case float32:
		if bits == 32 {
			return float64(s), true
		}
	case int64:
		return float64(s), -exactInt(bits) <= s && s <= exactInt(bits)
	case uint64:
		return float64(s), s <= uint64(exactInt(bits))
	}
	text, ok := numText(src)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(text, int(bits))
	return f, err == nil
}

// numText is the text convertAssign parses for a number: text as it is, a
// float's shortest form.
func numText(src driver.Value) (string, bool) {
	switch s := src.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	case float64, float32:
		return floatText(s), true
	}
	return "", false
}

// floatText is convertAssign's text of a float: the shortest that reads
// back as it.
func floatText(f driver.Value) string {
	if f, ok := f.(float32); ok {
		return strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return strconv.FormatFloat(f.(float64), 'g', -1, 64)
}

// exactInt is the largest integer below which a float of bits holds every
// integer.
func exactInt(bits uint8) int64 {
	if bits == 32 {
		return 1 << 24
	}
	return 1 << 53
}

// convBool: a bool takes a bool, the integers 0 and 1 and the text
// strconv.ParseBool reads (driver.Bool's rules).
func convBool(src driver.Value) (bool, bool) {
	if s, ok := src.(bool); ok {
		return s, true
	}
	return convBoolOther(src)
}

func convBoolOther(src driver.Value) (bool, bool) {
	switch s := src.(type) {
	case int64:
		return s == 1, s == 0 || s == 1
	case uint64:
		return s == 1, s == 0 || s == 1
	case string:
		b, err := strconv.ParseBool(s)
		return b, err == nil
	case []byte:
		b, err := strconv.ParseBool(string(s))
		return b, err == nil
	}
	return false, false
}
