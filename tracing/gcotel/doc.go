// Package gcotel marks the OpenTelemetry spans of statements that the
// gormcache plugin answered from its cache. It lives in its own package so
// that the core of gormcache does not import OpenTelemetry.
//
// With a tracing plugin such as gorm.io/plugin/opentelemetry/tracing
// installed, every statement keeps its span, hit or miss: the plugin's
// callbacks run around gormcache's. Give [OnHit] to the plugin's
// Config.OnHit and the span of each hit carries the attribute
// gormcache.hit=true ([HitKey]):
//
//	db.Use(tracing.NewPlugin())
//	db.Use(plugin.New(plugin.Config{OnHit: gcotel.OnHit}))
//
// A miss carries no such attribute. The span's SQL (db.query.text, or
// db.statement in older conventions) also starts with "/* gormcache hit */ "
// on a hit, unless Config.NoHitMarker is set.
package gcotel
