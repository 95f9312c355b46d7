package core_test

import (
	"database/sql/driver"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/serializer"
)

// BenchmarkHead compares reading the head of a byte-store entry of a
// First-sized query (its check text and three tag versions) in the two
// formats: the plugin's serializer header (the hit path of a byte store),
// and the envelope of the low-level and page caches. It is the measurement
// behind keeping the serializer's header (see doc.go).
func BenchmarkHead(b *testing.B) {
	check := "postgres\x00127.0.0.1:5432/app user=app search_path=public\x00" +
		strings.Repeat("SELECT * FROM \"users\" WHERE \"users\".\"id\" = $1 ", 2) + "\x00i42"
	versions := []uint64{0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321, 0x7777_7777_7777_7777}
	entry, err := serializer.AppendEncode(nil, &serializer.Entry{
		Check: []byte(check), Versions: versions,
		Columns: []serializer.Column{{Name: "id", ScanType: "int64"}}, Values: []driver.Value{int64(42)}, Rows: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	h := core.Head{Kind: core.KindValue, Check: check, Stamp: core.Stamp{Versions: versions}}
	env := core.AppendEnvelope(nil, &h, entry[len(entry)-8:], 0)
	b.Run("serializer.ParseHeader", func(b *testing.B) {
		buf := make([]uint64, 0, 4)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := serializer.ParseHeader(entry, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("serializer.DecodeHeader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := serializer.DecodeHeader(entry); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("core.OpenEnvelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := core.OpenEnvelope(env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
