package plugin_test

// The plugin beside gorm.io/plugin/opentelemetry/tracing: every statement keeps
// its span, hit or miss.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/tracing/gcotel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"
)

const hitMarker = "/* gormcache hit */ "

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// spanSQL is the statement's SQL as the tracing plugin recorded it.
func spanSQL(s sdktrace.ReadOnlySpan) string {
	for _, k := range []attribute.Key{"db.query.text", "db.statement"} {
		if v, ok := spanAttr(s, k); ok {
			return v.AsString()
		}
	}
	return ""
}

func spanHit(s sdktrace.ReadOnlySpan) bool {
	v, ok := spanAttr(s, gcotel.HitKey)
	return ok && v.AsBool()
}

// spanWatch returns the spans ended by each call of run.
type spanWatch struct{ rec *tracetest.SpanRecorder }

func (w spanWatch) during(run func()) []sdktrace.ReadOnlySpan {
	before := len(w.rec.Ended())
	run()
	return w.rec.Ended()[before:]
}

func newTracing(t *testing.T) (gorm.Plugin, spanWatch) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tracing.NewPlugin(tracing.WithTracerProvider(tp), tracing.WithoutMetrics()), spanWatch{rec}
}

// With gorm.io/plugin/opentelemetry/tracing installed, every statement keeps
// its one span, hit or miss; a hit's span says gormcache.hit=true and shows
// the marker in its SQL (unless NoHitMarker); writes keep their spans.
func TestTracingSpansOnHitsAndMisses(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, noMarker := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/NoHitMarker=%v", dialect, noMarker), func(t *testing.T) {
				t.Parallel()
				db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
				seedAccounts(t, db)
				otel, spans := newTracing(t)
				if err := db.Use(otel); err != nil {
					t.Fatal(err)
				}
				p := plugin.New(plugin.Config{OnHit: gcotel.OnHit, NoHitMarker: noMarker, Logger: quiet})
				if err := db.Use(p); err != nil {
					t.Fatal(err)
				}
				defer p.Close()

				one := func(what string, run func()) sdktrace.ReadOnlySpan {
					t.Helper()
					got := spans.during(run)
					if len(got) != 1 {
						names := make([]string, len(got))
						for i, s := range got {
							names[i] = s.Name()
						}
						t.Fatalf("%s: %d spans %v, want 1", what, len(got), names)
					}
					return got[0]
				}
				wantHit := func(what string, s sdktrace.ReadOnlySpan, hit bool) {
					t.Helper()
					if spanHit(s) != hit {
						t.Errorf("%s: span %q gormcache.hit=%v, want %v (%v)", what, s.Name(), spanHit(s), hit, s.Attributes())
					}
				}

				// The query chain: a miss, then a hit of the same statement.
				miss := one("First (miss)", func() { account(t, db, 1) })
				hit := one("First (hit)", func() { account(t, db, 1) })
				if st := p.Stats(); st.Hits != 1 || st.Misses != 1 {
					t.Fatalf("stats %+v, want 1 hit and 1 miss", st)
				}
				wantHit("miss", miss, false)
				wantHit("hit", hit, true)
				if miss.Name() != hit.Name() || miss.Name() != "select accounts" {
					t.Errorf("span names %q and %q, want both %q", miss.Name(), hit.Name(), "select accounts")
				}
				missSQL, hitSQL := spanSQL(miss), spanSQL(hit)
				if missSQL == "" || strings.Contains(missSQL, hitMarker) {
					t.Errorf("miss span SQL %q: want the statement, unmarked", missSQL)
				}
				wantSQL := hitMarker + missSQL
				if noMarker {
					wantSQL = missSQL
				}
				if hitSQL != wantSQL {
					t.Errorf("hit span SQL %q, want %q", hitSQL, wantSQL)
				}

				// The row chain (Raw(…).Row()): a miss, then a hit.
				row := func() {
					var owner string
					if err := db.Raw("SELECT owner FROM accounts WHERE id = ?", 2).Row().Scan(&owner); err != nil || owner != "owner2" {
						t.Fatalf("Row: %q, %v", owner, err)
					}
				}
				wantHit("Row (miss)", one("Row (miss)", row), false)
				rowHit := one("Row (hit)", row)
				wantHit("Row (hit)", rowHit, true)
				if got := strings.HasPrefix(spanSQL(rowHit), hitMarker); got == noMarker {
					t.Errorf("Row hit span SQL %q: marker shown %v, NoHitMarker %v", spanSQL(rowHit), got, noMarker)
				}

				// Writes keep their spans, unmarked, and still invalidate.
				for _, w := range []struct {
					name, op string
					run      func() error
				}{
					{"Create", "insert", func() error { return db.Create(&Account{Owner: "owner6", Balance: 60}).Error }},
					{"Update", "update", func() error { return db.Model(&Account{ID: 1}).Update("balance", 111).Error }},
					{"Delete", "delete", func() error { return db.Delete(&Account{}, 6).Error }},
					{"Exec", "update", func() error { return db.Exec("UPDATE accounts SET balance = balance + 1 WHERE id = ?", 2).Error }},
				} {
					var err error
					s := one(w.name, func() { err = w.run() })
					if err != nil {
						t.Fatalf("%s: %v", w.name, err)
					}
					wantHit(w.name, s, false)
					if sql := spanSQL(s); !strings.HasPrefix(strings.ToLower(sql), w.op) {
						t.Errorf("%s span SQL %q, want a %s", w.name, sql, w.op)
					}
				}
				after := one("First after the update", func() {
					if b := balanceOf(t, db, 1); b != 111 {
						t.Errorf("balance after the update %d, want 111 (a stale entry served)", b)
					}
				})
				wantHit("First after the update", after, false)
				wantHit("First after the update, again", one("First again", func() { account(t, db, 1) }), true)
			})
		}
	}
}
