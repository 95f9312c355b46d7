package core_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
)

func newInv(t *testing.T, shared, failWrite bool) (*core.Invalidator, *storetest.CutBumps, *memstore.Store) {
	t.Helper()
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cut := &storetest.CutBumps{Store: ms}
	inv := core.NewInvalidator(core.Config{
		Store: cut, Calls: core.Calls{InProcess: true}, Lease: time.Minute,
		Shared: shared, FailWrite: failWrite, Log: core.NewLog(slog.New(slog.DiscardHandler)),
	})
	t.Cleanup(inv.Close)
	return inv, cut, ms
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}

func TestTags(t *testing.T) {
	row := core.Row("public.users", "id", "7")
	for tag, table := range map[string]string{
		core.Global:                        "",
		core.Namespace("Lowlevel", "ll"):   "",
		core.Table("Shop.Users"):           core.Table("shop.users"),
		row:                                "public.users",
		core.Tables([]string{"Orders"})[0]: "orders",
		core.Tables([]string{"*Kept"})[0]:  "",
	} {
		if got := core.TableOf(tag); got != table {
			t.Errorf("TableOf(%q) = %q, want %q", tag, got, table)
		}
	}
	if row == core.Row("public.users", "id", "8") || row == core.Table("public.users") {
		t.Fatal("row tags collide")
	}
}

func TestFlights(t *testing.T) {
	var fs core.Flights[int]
	f, leader := fs.Join("k")
	if !leader {
		t.Fatal("first join does not lead")
	}
	g, leader2 := fs.Join("k")
	if leader2 || g != f {
		t.Fatal("second join leads")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := g.Wait(ctx); ok {
		t.Fatal("Wait with a cancelled context reported the leader finished")
	}
	var wg sync.WaitGroup
	got := make([]int, 4)
	for i := range got {
		wg.Go(func() {
			got[i], _ = g.Wait(context.Background())
		})
	}
	f.Finish(42)
	f.Finish(7) // ignored
	wg.Wait()
	for _, v := range got {
		if v != 42 {
			t.Fatalf("followers got %v", got)
		}
	}
	if _, leader := fs.Join("k"); !leader {
		t.Fatal("a finished flight is still joined")
	}
}

func TestLogLimited(t *testing.T) {
	var buf bytes.Buffer
	l := core.NewLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 100 {
		l.Limited(slog.LevelWarn, "outage")
	}
	if n := strings.Count(buf.String(), "outage"); n != 1 {
		t.Fatalf("%d lines for 100 failures within a second, want 1", n)
	}
	l.Always(slog.LevelError, "refused")
	if !strings.Contains(buf.String(), "refused") {
		t.Fatal("Always did not log")
	}
}

// A failed bump breaks its tags until the background retry lands.
func TestBumpFailureBreaksUntilRetry(t *testing.T) {
	inv, cut, _ := newInv(t, false, false)
	cut.Cut.Store(true)
	err := inv.Bump(context.Background(), []string{"a"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Bump with bumps cut: %v", err)
	}
	if inv.Serving([]string{"a"}) || !inv.Serving([]string{"b"}) {
		t.Fatal("a not broken, or b broken")
	}
	v := []uint64{5, 6}
	if !inv.Judge([]string{"a", "b"}, v) || v[0] != 0 || v[1] != 6 {
		t.Fatalf("Judge: %v", v)
	}
	cut.Cut.Store(false)
	waitUntil(t, "the retry clears a", func() bool { return inv.Serving([]string{"a"}) })
	if inv.C.StoreErrors.Load() != 1 {
		t.Fatalf("StoreErrors = %d", inv.C.StoreErrors.Load())
	}
}

// An outage of a shared store stops everything until the epoch bump; an
// in-process store has none; a caller's cancellation is no outage.
func TestStoreFailed(t *testing.T) {
	unavailable := fmt.Errorf("x: %w", store.ErrUnavailable)
	own, _, _ := newInv(t, false, false)
	if own.StoreFailed("t", "get", unavailable) != core.Failed || !own.Serving([]string{"a"}) {
		t.Fatal("an in-process store's failure stopped serving")
	}
	shared, cut, ms := newInv(t, true, false)
	if shared.StoreFailed("t", "get", context.Canceled) != core.Canceled || !shared.Serving([]string{"a"}) {
		t.Fatal("a cancellation counted as an outage")
	}
	before := storetest.Versions(t, ms, core.Global)[0]
	cut.Cut.Store(true)
	if shared.StoreFailed("t", "get", unavailable) != core.Failed || shared.Serving([]string{"a"}) {
		t.Fatal("an outage did not stop serving")
	}
	if shared.C.Outages.Load() != 1 {
		t.Fatalf("Outages = %d", shared.C.Outages.Load())
	}
	cut.Cut.Store(false)
	waitUntil(t, "the epoch bump", func() bool { return shared.Serving([]string{"a"}) })
	if storetest.Versions(t, ms, core.Global)[0] == before {
		t.Fatal("serving again without the global tag bumped")
	}
}

// A hold reads as version 0 while the write runs; End releases it.
// FailWrite on a shared store refuses a write whose first bump fails.
func TestHoldWrite(t *testing.T) {
	inv, cut, ms := newInv(t, true, true)
	ctx := context.Background()
	h, err := inv.HoldWrite(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, ms, "a")[0]; v != 0 {
		t.Fatalf("held tag reads %d, want 0", v)
	}
	h.End(ctx, false)
	if v := storetest.Versions(t, ms, "a")[0]; v == 0 {
		t.Fatal("still held after End")
	}
	cut.Cut.Store(true)
	if _, err := inv.HoldWrite(ctx, []string{"a"}); !errors.Is(err, core.ErrWriteRefused) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("HoldWrite with bumps cut: %v", err)
	}
	if inv.C.Refused.Load() != 1 {
		t.Fatalf("Refused = %d", inv.C.Refused.Load())
	}
}

// A bump whose reply is lost may have placed its hold: the invalidator
// releases it, and the tag is not held for the lease after the write.
func TestLostRepliesAreReleased(t *testing.T) {
	for _, lose := range []int64{1, 3} {
		t.Run(fmt.Sprint(lose), func(t *testing.T) {
			inv, cut, ms := newInv(t, true, lose == 1)
			ctx := context.Background()
			cut.LoseReplies.Store(lose)
			h, err := inv.HoldWrite(ctx, []string{"a"})
			if err != nil {
				t.Fatal(err)
			}
			h.End(ctx, false)
			waitUntil(t, "no hold left", func() bool {
				return storetest.Versions(t, ms, "a")[0] != 0 && inv.Serving([]string{"a"})
			})
		})
	}
}

// Close stops the retry, tries once more, and waits for what is in flight.
func TestCloseStopsRetry(t *testing.T) {
	inv, cut, _ := newInv(t, false, false)
	cut.Cut.Store(true)
	_ = inv.Bump(context.Background(), []string{"a"})
	done := make(chan struct{})
	go func() { inv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a retry pending")
	}
	if !inv.Closed() || inv.Background().Ctx().Err() == nil {
		t.Fatal("not closed")
	}
}

// Row tags: canonical integers from arguments and literals, NULL, one tag
// per distinct value, and no tags at all when a value is not a certain
// integer nor NULL.
func TestRowTags(t *testing.T) {
	type id int32
	arg := func(i int) invalidation.Operand { return invalidation.Operand{Kind: invalidation.OperandArg, Arg: i} }
	num := invalidation.Operand{Kind: invalidation.OperandNumber, Text: "042"}
	tags, n, ok := core.RowTags("users", "id", []invalidation.Operand{arg(0), arg(1), num, arg(2)}, []any{int64(42), uint8(7), id(42)})
	want := []string{core.Row("users", "id", "i42"), core.Row("users", "id", "i7"), core.Column("users", "id"), core.Rows("users")}
	if !ok || n != 2 || !slices.Equal(tags, want) {
		t.Fatalf("RowTags = %q, %d, %v; want %q, 2", tags, n, ok, want)
	}
	null := invalidation.Operand{Kind: invalidation.OperandNull}
	tags, n, ok = core.RowTags("posts", "parent_id", []invalidation.Operand{null, arg(0)}, []any{nil})
	if want := []string{core.Row("posts", "parent_id", "n"), core.Column("posts", "parent_id"), core.Rows("posts")}; !ok || n != 1 || !slices.Equal(tags, want) {
		t.Fatalf("RowTags of NULL = %q, %d, %v; want %q, 1", tags, n, ok, want)
	}
	for _, a := range []any{"42", 42.0, sql.NullInt64{Int64: 42, Valid: true}, (*int)(nil)} {
		if _, _, ok := core.RowTags("users", "id", []invalidation.Operand{arg(0)}, []any{a}); ok {
			t.Errorf("RowTags with %T %v: ok, want table-level", a, a)
		}
	}
	if core.LooseVersion("users") == core.LooseVersion("posts") || core.LooseVersion("users")>>63 != 1 {
		t.Fatal("LooseVersion")
	}
}
