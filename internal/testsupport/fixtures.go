package testsupport

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// HexLines returns the byte strings of a fixture file that holds one in
// hexadecimal per line (blank lines and lines beginning with # are
// skipped), such as entries in the format an earlier version wrote. It
// fails t when the file cannot be read, a line is not hexadecimal, or the
// file holds none.
func HexLines(t testing.TB, path string) [][]byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for line := range strings.Lines(string(text)) {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no fixtures", path)
	}
	return out
}
