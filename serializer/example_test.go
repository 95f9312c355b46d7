package serializer_test

import (
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/gormcache/gormcache/serializer"
)

func ExampleAppendEncode() {
	e := &serializer.Entry{
		Check:    []byte("canonical query"),
		Versions: []uint64{7},
		Columns: []serializer.Column{
			{Name: "id", DatabaseTypeName: "INT8", ScanType: "int64"},
			{Name: "name", DatabaseTypeName: "TEXT", ScanType: "sql.NullString", Nullable: true, HasNullable: true},
			{Name: "at", DatabaseTypeName: "TIMESTAMPTZ", ScanType: "time.Time"},
		},
		Values: []driver.Value{
			int64(1), "Ada", time.Date(2024, 7, 4, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)),
			int64(2), nil, time.Date(2024, 7, 4, 12, 0, 0, 0, time.UTC),
		},
		Rows: 2,
	}
	data, err := serializer.AppendEncode(nil, e)
	if err != nil {
		panic(err)
	}
	got, err := serializer.Decode(data)
	if err != nil {
		panic(err)
	}
	for r := range got.Rows {
		row := got.Values[r*len(got.Columns) : (r+1)*len(got.Columns)]
		fmt.Printf("%#v %#v %v\n", row[0], row[1], row[2])
	}
	// Output:
	// 1 "Ada" 2024-07-04 12:00:00 +0200 CEST
	// 2 <nil> 2024-07-04 12:00:00 +0000 UTC
}

func ExampleDecodeHeader() {
	data, _ := serializer.AppendEncode(nil, &serializer.Entry{Check: []byte("q"), Versions: []uint64{3, 9}})
	check, versions, err := serializer.DecodeHeader(data)
	fmt.Printf("%s %v %v\n", check, versions, err)
	// Output:
	// q [3 9] <nil>
}

func ExampleAppendEncodeOptions() {
	e := &serializer.Entry{
		Check:    []byte("SELECT * FROM users"),
		Versions: []uint64{7},
		Columns:  []serializer.Column{{Name: "id", ScanType: "int64"}, {Name: "name", ScanType: "string"}},
	}
	for i := range 100 {
		e.Values = append(e.Values, int64(i), "Ada Lovelace")
		e.Rows++
	}
	plain, _ := serializer.AppendEncode(nil, e)
	small, err := serializer.AppendEncodeOptions(nil, e, serializer.Options{CompressAbove: serializer.DefaultCompressAbove})
	if err != nil {
		panic(err)
	}
	got, err := serializer.Decode(small) // compressed or not
	if err != nil {
		panic(err)
	}
	fmt.Println(small[0]&serializer.FlagCompressed != 0, len(small) < len(plain)/2, got.Rows, got.Values[199])
	// Output:
	// true true 100 Ada Lovelace
}
