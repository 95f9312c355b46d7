package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/pgadmin"
)

// TestQuick runs the program in its quickest mode (SQLite and the null
// database, a few iterations per case): it builds, measures, and prints the
// table.
func TestQuick(t *testing.T) {
	var out, log bytes.Buffer
	if err := run([]string{"-pg", "off", "-benchtime", "20x", "-count", "1"}, &out, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	s := out.String()
	for _, want := range []string{"| sqlite | First by key, hit |", "| sqlite | Update by key", "| First by key |", "| Find 100 rows |"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "FAILED") || strings.Contains(log.String(), "FAILED") {
		t.Errorf("a case failed:\n%s\n%s", log.String(), s)
	}
}

func TestReplaceDBName(t *testing.T) {
	for in, want := range map[string]string{
		"host=h dbname=postgres sslmode=disable": "host=h dbname=x sslmode=disable",
		"host=h":                                 "host=h dbname=x",
	} {
		if got := pgadmin.ReplaceDBName(in, "x"); got != want {
			t.Errorf("pgadmin.ReplaceDBName(%q) = %q, want %q", in, got, want)
		}
	}
}
