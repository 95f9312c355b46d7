package serializer

import "testing"

func benchEncode(b *testing.B, e *Entry) {
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendEncode(buf[:0], e)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func benchDecode(b *testing.B, e *Entry) {
	data, err := AppendEncode(nil, e)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
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
