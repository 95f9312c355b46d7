package keys

import "testing"

const gormSelect = `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`

func BenchmarkNormalize(b *testing.B) {
	b.Run("gorm-select", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Normalize(gormSelect)
		}
	})
	b.Run("multiline", func(b *testing.B) {
		s := "SELECT *\n  FROM users\n  WHERE id = ?\n    AND name = 'a  b'\n"
		b.ReportAllocs()
		for b.Loop() {
			_ = Normalize(s)
		}
	})
}

func BenchmarkAppendQuery(b *testing.B) {
	buf := make([]byte, 0, 512)
	args := []any{int64(42), 1}
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendQuery(buf[:0], "postgres", "localhost:5432/app?user=app", gormSelect, args)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	canonical, err := AppendQuery(nil, "postgres", "localhost:5432/app?user=app", gormSelect, []any{int64(42), 1})
	if err != nil {
		b.Fatal(err)
	}
	var kb Builder
	b.ReportAllocs()
	for b.Loop() {
		sink = kb.Key(canonical)
	}
}

// BenchmarkHitKey is the whole key work of one cache hit: canonical bytes
// into a reused buffer, then the key string.
func BenchmarkHitKey(b *testing.B) {
	buf := make([]byte, 0, 512)
	args := []any{int64(42), 1}
	var kb Builder
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendQuery(buf[:0], "postgres", "localhost:5432/app?user=app", gormSelect, args)
		sink = kb.Key(buf)
	}
}

var sink string
