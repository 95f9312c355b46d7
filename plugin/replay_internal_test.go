package plugin

import "testing"

// TestCommonScanTypesAreBuiltin holds commonScanType (the map-free check a
// hit makes of every column) to the types registered at start-up: a name
// it accepts must map back to a type.
func TestCommonScanTypesAreBuiltin(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"int64", "int32", "int16", "string", "float64", "float32", "bool", "time.Time", "[]uint8", "interface {}",
		"sql.NullString", "sql.NullInt64", "sql.NullInt32", "sql.NullInt16", "sql.NullFloat64", "sql.NullBool", "sql.NullTime",
	} {
		if !commonScanType(name) {
			t.Errorf("commonScanType(%q) = false", name)
		}
		if _, ok := scanTypeOf(name); !ok {
			t.Errorf("%q is common but not registered", name)
		}
	}
	for _, name := range []string{"main.Money", "pgtype.Numeric", "uint64"} {
		if commonScanType(name) {
			t.Errorf("commonScanType(%q) = true", name)
		}
	}
}
