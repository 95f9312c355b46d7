package gcotel_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/tracing/gcotel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/semconv/v1.30.0"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"
)

type Product struct {
	ID   uint
	Name string
}

// The same query twice: the database answers the first, the cache the
// second, and each has its span; the hit's span says so.
func ExampleOnHit() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	dir, err := os.MkdirTemp("", "gcotel")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "shop.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	if err := db.Use(tracing.NewPlugin(tracing.WithTracerProvider(tp), tracing.WithoutMetrics())); err != nil {
		panic(err)
	}
	cache := plugin.New(plugin.Config{OnHit: gcotel.OnHit})
	if err := db.Use(cache); err != nil {
		panic(err)
	}
	defer cache.Close()
	db.AutoMigrate(&Product{})
	db.Create(&Product{Name: "lamp"})

	var first, second Product
	db.First(&first, 1)  // a miss: the database answers
	db.First(&second, 1) // a hit: the cache answers

	for _, s := range spans.Ended() {
		if s.Name() != "select products" {
			continue
		}
		hit, text := false, ""
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case gcotel.HitKey:
				hit = kv.Value.AsBool()
			case semconv.DBQueryTextKey:
				text = kv.Value.AsString()
			}
		}
		fmt.Printf("%s: hit=%v marked=%v\n", s.Name(), hit, strings.HasPrefix(text, "/* gormcache hit */"))
	}
	// Output:
	// select products: hit=false marked=false
	// select products: hit=true marked=true
}
