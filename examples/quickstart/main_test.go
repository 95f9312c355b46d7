package main

import (
	"strings"
	"testing"
)

// TestQuickstart runs the example as README shows it; run checks its own
// expectations and fails on any difference.
func TestQuickstart(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"hit", "miss", "renamed", "faster"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
