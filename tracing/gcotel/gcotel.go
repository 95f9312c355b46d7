package gcotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// HitKey is the attribute [OnHit] sets, to true, on the span of a statement
// served from the cache.
const HitKey = attribute.Key("gormcache.hit")

var hit = HitKey.Bool(true)

// OnHit sets gormcache.hit=true on the span in ctx (the statement's span,
// when a tracing plugin started one). Without a recording span in ctx it does
// nothing. It has the signature of plugin.Config.OnHit:
//
//	plugin.New(plugin.Config{OnHit: gcotel.OnHit})
func OnHit(ctx context.Context) {
	trace.SpanFromContext(ctx).SetAttributes(hit)
}
