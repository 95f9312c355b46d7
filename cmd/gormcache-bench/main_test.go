package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/pgadmin"
	"github.com/gormcache/gormcache/internal/testdb"
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

// TestWorkload runs the workload benchmark briefly on a fresh PostgreSQL
// database: once with one client and a fixed number of requests, where every
// configuration must read exactly the same rows (the program compares
// checksums of every read's results, and fails if they differ), and once
// with concurrent clients for a short duration. Both print the tables.
func TestWorkload(t *testing.T) {
	dsn := testdb.FreshPostgres(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"sequential", []string{"-clients", "1", "-requests", "300", "-writes", "10"},
			[]string{"Read results: identical across configurations", "| 10% | req/s ≥ 1× plain |"}},
		{"concurrent", []string{"-clients", "4", "-duration", "500ms", "-writes", "1"},
			[]string{"4 clients, 500ms per configuration", "| 1% | req/s ≥ 1.5× plain |"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, log bytes.Buffer
			args := append([]string{"-workload", "-pg", dsn}, tc.args...)
			if err := run(args, &out, &log); err != nil {
				t.Fatalf("run %q: %v\n%s", args, err, log.String())
			}
			s := out.String()
			pct := tc.args[len(tc.args)-1]
			want := append([]string{
				"| " + pct + "% | plain GORM |", "| " + pct + "% | gormcache table-level |", "| " + pct + "% | gormcache row-level |",
				"| " + pct + "% | ideal cache † |", "| " + pct + "% | DB queries/read ≤ 1.15× ideal |", "| " + pct + "% | 10 most visited users |",
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(s, w) {
					t.Errorf("output lacks %q:\n%s", w, s)
				}
			}
		})
	}
}
