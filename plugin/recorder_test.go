package plugin_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
)

// TestRecorder: a Recorder sees the tables every statement of its context
// read — hit, miss, or bypass (Skip, transaction) — with the versions from
// before the first read, and flags writes and unknown tables.
func TestRecorder(t *testing.T) {
	t.Parallel()
	db, p := cachedDB(t, "sqlite", plugin.Config{})
	if err := db.AutoMigrate(&Company{}); err != nil {
		t.Fatal(err)
	}
	current := func(tags []string) []uint64 {
		v := make([]uint64, len(tags))
		if err := p.Store().Versions(context.Background(), tags, v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	ctx, rec := plugin.WithRecorder(context.Background())
	var as []Account
	db.WithContext(ctx).Find(&as) // miss
	db.WithContext(ctx).Find(&as) // hit
	var cs []Company
	db.WithContext(ctx).Clauses(plugin.Skip()).Find(&cs) // bypass
	db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		return tx.Table("accounts").Count(&n).Error // in a transaction
	})
	tags, versions := rec.Tables()
	if want := []string{"*", "accounts", "companies"}; !slices.Equal(tags, want) {
		t.Fatalf("tables %v, want %v", tags, want)
	}
	if !slices.Equal(versions, current(tags)) || slices.Contains(versions, 0) {
		t.Fatalf("versions %v, current %v", versions, current(tags))
	}
	if rec.Wrote() || rec.Unknown() != "" || rec.Queries() != 4 {
		t.Fatalf("wrote %v unknown %q queries %d", rec.Wrote(), rec.Unknown(), rec.Queries())
	}

	// A write in the request: flagged; the versions stay those seen first.
	db.WithContext(ctx).Model(&Account{ID: 1}).Update("balance", 5)
	db.WithContext(ctx).Find(&as)
	_, after := rec.Tables()
	if !rec.Wrote() || !slices.Equal(after, versions) || slices.Equal(after, current(tags)) {
		t.Fatalf("after a write: wrote %v, versions %v (first %v, current %v)", rec.Wrote(), after, versions, current(tags))
	}

	// Unknown: a volatile function, or tables the classifier cannot name.
	ctx2, rec2 := plugin.WithRecorder(context.Background())
	var f float64
	db.WithContext(ctx2).Raw("SELECT random()").Scan(&f)
	if rec2.Unknown() != "volatile_function" {
		t.Fatalf("unknown %q", rec2.Unknown())
	}

	// Nested recorders both see a statement.
	outer, recOuter := plugin.WithRecorder(context.Background())
	inner, recInner := plugin.WithRecorder(outer)
	db.WithContext(inner).Find(&cs)
	if recOuter.Queries() != 1 || recInner.Queries() != 1 {
		t.Fatalf("nested: outer %d, inner %d", recOuter.Queries(), recInner.Queries())
	}
}

// A query the cache cannot key (an argument type it does not encode) is
// still recorded with its Tags option's tables.
func TestRecorderUnkeyableQueryKeepsTags(t *testing.T) {
	t.Parallel()
	db, _ := cachedDB(t, "postgres", plugin.Config{})
	ctx, rec := plugin.WithRecorder(context.Background())
	var as []Account
	if err := db.WithContext(ctx).Clauses(plugin.Tags("rates")).Where("?::inet IS NOT NULL", netip.MustParseAddr("10.1.2.3")).Find(&as).Error; err != nil {
		t.Fatal(err)
	}
	tags, versions := rec.Tables()
	if !slices.Contains(tags, "rates") || !slices.Contains(tags, "accounts") || slices.Contains(versions, 0) {
		t.Fatalf("recorded %v %v, want accounts and rates with their versions", tags, versions)
	}
}
