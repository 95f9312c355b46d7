package gcotel_test

import (
	"context"
	"testing"

	"github.com/gormcache/gormcache/tracing/gcotel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestOnHit(t *testing.T) {
	t.Parallel()
	t.Run("recording span", func(t *testing.T) {
		t.Parallel()
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		ctx, span := tp.Tracer("test").Start(context.Background(), "query")
		gcotel.OnHit(ctx)
		span.End()
		ended := spans.Ended()
		if len(ended) != 1 {
			t.Fatalf("%d spans ended, want 1", len(ended))
		}
		var found bool
		for _, kv := range ended[0].Attributes() {
			if kv.Key == gcotel.HitKey {
				found = kv.Value.AsBool()
			}
		}
		if !found {
			t.Fatalf("attributes %v: no %s=true", ended[0].Attributes(), gcotel.HitKey)
		}
	})
	t.Run("no span", func(t *testing.T) {
		t.Parallel()
		gcotel.OnHit(context.Background()) // must not panic
	})
}
