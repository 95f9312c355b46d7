package pgnotify

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"

	"github.com/gormcache/gormcache/invalidation"
)

func TestSplitName(t *testing.T) {
	t.Parallel()
	type part = namePart
	tests := []struct {
		name string
		in   string
		want []namePart
		bad  bool
	}{
		{"plain", "articles", []part{{"articles", false}}, false},
		{"qualified", "shop.Articles", []part{{"shop", false}, {"Articles", false}}, false},
		{"quoted", `"Other Schema"."Mixed""Case"`, []part{{"Other Schema", true}, {`Mixed"Case`, true}}, false},
		{"dot inside quotes", `"a.b"`, []part{{"a.b", true}}, false},
		{"spaces", ` public . "T" `, []part{{"public", false}, {"T", true}}, false},
		{"empty", "", nil, true},
		{"empty part", "a..b", nil, true},
		{"three parts", "db.s.t", nil, true},
		{"unterminated", `"abc`, nil, true},
		{"junk after quote", `"a"b`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitName(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("splitName(%q) = %v, %v; want ErrInvalidConfig", tt.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("splitName(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestPayloadTags checks that a trigger's payload (a lower-cased table name,
// whatever characters it holds) reaches Invalidate as an argument that
// invalidation.TableName turns back into the same tag.
func TestPayloadTags(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{"articles", "a.b", `a"b`, "e'x'", "[x]", " padded ", "mixedcase", "ÉTÉ"} {
		tag := payloadTag(payload)
		if got := invalidation.TableName(tableArg(tag)); got != tag {
			t.Errorf("payload %q: tag %q, argument %q normalises to %q", payload, tag, tableArg(tag), got)
		}
		if want := invalidation.TableName(quoteIdent(payload)); tag != want {
			t.Errorf("payload %q: tag %q, want %q", payload, tag, want)
		}
	}
	if got := tableArg("articles"); got != "articles" {
		t.Errorf("tableArg(articles) = %q: plain names stay plain", got)
	}
}

// triggersOf returns the oids of the gormcache_notify triggers of table.
func triggersOf(t testing.TB, db *sql.DB, table string) []uint32 {
	t.Helper()
	rows, err := db.Query(`SELECT oid FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'gormcache_notify'`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var oids []uint32
	for rows.Next() {
		var oid uint32
		if err := rows.Scan(&oid); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, oid)
	}
	return oids
}

func functionsIn(t testing.TB, db *sql.DB, schema string) int {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname = 'gormcache_notify'`, schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInstallRemoveTriggers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db := fresh(t,
		`CREATE SCHEMA "Other Schema"`,
		`CREATE TABLE "Other Schema"."MixedCase" (id int)`,
		`CREATE TABLE plain (id int)`,
		`CREATE TABLE untouched (id int)`,
		`CREATE TABLE "Gorm" (id int)`,
		`CREATE VIEW a_view AS SELECT * FROM plain`,
	)
	const mixed = `"Other Schema"."MixedCase"`

	if err := InstallTriggers(ctx, db, mixed, "public.plain", "Gorm", "PLAIN"); err != nil {
		t.Fatalf("InstallTriggers: %v", err)
	}
	first := map[string][]uint32{}
	for _, table := range []string{mixed, "plain", `"Gorm"`} {
		first[table] = triggersOf(t, db, table)
		if len(first[table]) != 1 {
			t.Fatalf("%s has %d gormcache_notify triggers, want 1", table, len(first[table]))
		}
	}
	if n := len(triggersOf(t, db, "untouched")); n != 0 {
		t.Fatalf("a table not named got %d triggers", n)
	}
	if functionsIn(t, db, "Other Schema") != 1 || functionsIn(t, db, "public") != 1 {
		t.Fatal("want one trigger function in each schema")
	}

	// Idempotent: a second install changes nothing (same trigger oids).
	if err := InstallTriggers(ctx, db, mixed, "plain", "Gorm"); err != nil {
		t.Fatalf("second InstallTriggers: %v", err)
	}
	for table, oids := range first {
		if got := triggersOf(t, db, table); !slices.Equal(got, oids) {
			t.Fatalf("%s: triggers %v after a second install, want %v unchanged", table, got, oids)
		}
	}

	// Another channel replaces the trigger.
	if err := InstallTriggersOn(ctx, db, "elsewhere", "plain"); err != nil {
		t.Fatal(err)
	}
	if got := triggersOf(t, db, "plain"); len(got) != 1 || got[0] == first["plain"][0] {
		t.Fatalf("plain: triggers %v after installing another channel, want one new trigger", got)
	}

	// Errors: not a table, missing, bad names, bad channels; nothing half done.
	for _, name := range []string{"a_view", "missing", `missing."x"`} {
		if err := InstallTriggers(ctx, db, "untouched", name); !errors.Is(err, ErrNotTable) {
			t.Errorf("InstallTriggers(%q) = %v, want ErrNotTable", name, err)
		}
	}
	if err := InstallTriggers(ctx, db, "a..b"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad name: %v, want ErrInvalidConfig", err)
	}
	if err := InstallTriggersOn(ctx, db, "", "plain"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty channel: %v, want ErrInvalidConfig", err)
	}
	if n := len(triggersOf(t, db, "untouched")); n != 0 {
		t.Fatalf("a failed install left %d triggers on untouched", n)
	}

	// Remove one table: the shared function stays while another table uses it.
	if err := RemoveTriggers(ctx, db, mixed); err != nil {
		t.Fatalf("RemoveTriggers: %v", err)
	}
	if len(triggersOf(t, db, mixed)) != 0 || functionsIn(t, db, "Other Schema") != 0 {
		t.Fatal("trigger or function left in Other Schema")
	}
	if len(triggersOf(t, db, "plain")) != 1 {
		t.Fatal("removing one table's trigger removed another's")
	}
	// Remove the rest, twice, with a missing table: idempotent.
	for range 2 {
		if err := RemoveTriggers(ctx, db, "plain", "Gorm", "missing", mixed); err != nil {
			t.Fatalf("RemoveTriggers: %v", err)
		}
	}
	if len(triggersOf(t, db, "plain"))+len(triggersOf(t, db, `"Gorm"`)) != 0 || functionsIn(t, db, "public") != 0 {
		t.Fatal("triggers or function left in public")
	}
}
