package serializer

import "testing"

func benchEncode(b *testing.B, e *Entry) { benchEncodeOptions(b, e, Options{}) }

func benchDecode(b *testing.B, e *Entry) { benchDecodeOptions(b, e, Options{}) }

// benchEncodeOptions reports the encoded size as "bytes" and, through
// SetBytes, MB/s of uncompressed encoding.
func benchEncodeOptions(b *testing.B, e *Entry, o Options) {
	plain, err := AppendEncode(nil, e)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf, err = AppendEncodeOptions(buf[:0], e, o)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(plain)))
	b.ReportMetric(float64(len(buf)), "bytes")
}

func benchDecodeOptions(b *testing.B, e *Entry, o Options) {
	plain, err := AppendEncode(nil, e)
	if err != nil {
		b.Fatal(err)
	}
	data, err := AppendEncodeOptions(nil, e, o)
	if err != nil {
		b.Fatal(err)
	}
	if o.CompressAbove > 0 && data[0]&FlagCompressed == 0 {
		b.Fatal("not compressed")
	}
	b.SetBytes(int64(len(plain)))
	b.ReportMetric(float64(len(data)), "bytes")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompression compares encoding and decoding 100-row entries with
// and without S2.
func BenchmarkCompression(b *testing.B) {
	s2 := Options{CompressAbove: DefaultCompressAbove}
	for _, c := range []struct {
		name string
		e    *Entry
	}{{"typical100x8", typical(100)}, {"realistic100x12", realistic(100)}} {
		b.Run("Encode/"+c.name+"/plain", func(b *testing.B) { benchEncodeOptions(b, c.e, Options{}) })
		b.Run("Encode/"+c.name+"/s2", func(b *testing.B) { benchEncodeOptions(b, c.e, s2) })
		b.Run("Decode/"+c.name+"/plain", func(b *testing.B) { benchDecodeOptions(b, c.e, Options{}) })
		b.Run("Decode/"+c.name+"/s2", func(b *testing.B) { benchDecodeOptions(b, c.e, s2) })
	}
}

func BenchmarkEncode(b *testing.B) {
	b.Run("1x8", func(b *testing.B) { benchEncode(b, typical(1)) })
	b.Run("100x8", func(b *testing.B) { benchEncode(b, typical(100)) })
}

func BenchmarkDecode(b *testing.B) {
	b.Run("1x8", func(b *testing.B) { benchDecode(b, typical(1)) })
	b.Run("100x8", func(b *testing.B) { benchDecode(b, typical(100)) })
}

func BenchmarkDecodeHeader(b *testing.B) {
	data, err := AppendEncode(nil, typical(100))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DecodeHeader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := DecodeHeader(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseHeader", func(b *testing.B) {
		versions := make([]uint64, 0, 8)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ParseHeader(data, versions[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
