package keys

import (
	"bytes"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGoldenCanonical pins the canonical encoding and the keys: a change to
// either makes every stored entry unreachable, so it must come with a new
// FormatVersion. Run with -update to rewrite testdata/keys/canonical.golden.
func TestGoldenCanonical(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))
	queries := []struct {
		sql  string
		args []any
	}{
		{`SELECT * FROM "users" WHERE "users"."id" = $1 LIMIT $2`, []any{42, 1}},
		{"SELECT  *\n FROM t WHERE a = ? AND b = ?", []any{"x", []byte("x")}},
		{"SELECT ?, ?, ?, ?, ?, ?", []any{nil, true, false, 1.5, []byte(nil), []byte{}}},
		{"SELECT ?, ?", []any{ts, uint64(1 << 63)}},
		{"SELECT @a", []any{sql.Named("a", int64(-7))}},
	}
	var kb Builder
	var out bytes.Buffer
	for _, q := range queries {
		c, err := AppendQuery(nil, "postgres", "localhost:5432/app", q.sql, q.args)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%q\n%s\n%s\n\n", q.sql, hex.EncodeToString(c), kb.Key(c))
	}
	path := filepath.Join("..", "testdata", "keys", "canonical.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("canonical encoding changed; if intended, bump FormatVersion and run go test -update\ngot:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}
