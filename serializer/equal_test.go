package serializer

import (
	"bytes"
	"database/sql/driver"
	"fmt"
	"math"
	"slices"
	"time"
)

// equalEntries reports how two entries differ, or nil. Values compare by
// type and value: NaN equals NaN (by bits), []byte(nil), []byte{} and nil
// differ, and times compare by instant, zone name, offset and whether the
// location is UTC or Local.
func equalEntries(a, b *Entry) error {
	if !bytes.Equal(a.Check, b.Check) {
		return fmt.Errorf("Check %q != %q", a.Check, b.Check)
	}
	if !slices.Equal(a.Versions, b.Versions) {
		return fmt.Errorf("Versions %v != %v", a.Versions, b.Versions)
	}
	if a.Rows != b.Rows || a.Created != b.Created {
		return fmt.Errorf("Rows/Created %d/%d != %d/%d", a.Rows, a.Created, b.Rows, b.Created)
	}
	if len(a.Columns) != len(b.Columns) {
		return fmt.Errorf("%d columns != %d", len(a.Columns), len(b.Columns))
	}
	for i := range a.Columns {
		if a.Columns[i] != b.Columns[i] {
			return fmt.Errorf("column %d: %+v != %+v", i, a.Columns[i], b.Columns[i])
		}
	}
	if len(a.ColumnSets) != len(b.ColumnSets) || !slices.Equal(a.RowSets, b.RowSets) {
		return fmt.Errorf("%d column sets, row sets %v != %d, %v", len(a.ColumnSets), a.RowSets, len(b.ColumnSets), b.RowSets)
	}
	for i := range a.ColumnSets {
		if !slices.Equal(a.ColumnSets[i], b.ColumnSets[i]) {
			return fmt.Errorf("column set %d: %+v != %+v", i, a.ColumnSets[i], b.ColumnSets[i])
		}
	}
	if len(a.Values) != len(b.Values) {
		return fmt.Errorf("%d values != %d", len(a.Values), len(b.Values))
	}
	for i := range a.Values {
		if err := equalValues(a.Values[i], b.Values[i]); err != nil {
			return fmt.Errorf("value %d: %w", i, err)
		}
	}
	return nil
}

func equalValues(a, b driver.Value) error {
	if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
		return fmt.Errorf("type %T != %T", a, b)
	}
	switch x := a.(type) {
	case []byte:
		y := b.([]byte)
		if (x == nil) != (y == nil) || !bytes.Equal(x, y) {
			return fmt.Errorf("%#v != %#v", x, y)
		}
	case float64:
		if math.Float64bits(x) != math.Float64bits(b.(float64)) {
			return fmt.Errorf("%v != %v", x, b)
		}
	case float32:
		if math.Float32bits(x) != math.Float32bits(b.(float32)) {
			return fmt.Errorf("%v != %v", x, b)
		}
	case time.Time:
		y := b.(time.Time)
		xn, xo := x.Zone()
		yn, yo := y.Zone()
		if !x.Equal(y) || xn != yn || xo != yo ||
			(x.Location() == time.UTC) != (y.Location() == time.UTC) ||
			(x.Location() == time.Local) != (y.Location() == time.Local) {
			return fmt.Errorf("%v (%v) != %v (%v)", x, x.Location(), y, y.Location())
		}
		if y.Round(0) != y {
			return fmt.Errorf("decoded %v has a monotonic reading", y)
		}
	default:
		if a != b {
			return fmt.Errorf("%#v != %#v", a, b)
		}
	}
	return nil
}
