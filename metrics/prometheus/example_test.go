package gcprometheus_test

import (
	"bufio"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/glebarez/sqlite"
	gcprometheus "github.com/gormcache/gormcache/metrics/prometheus"
	"github.com/gormcache/gormcache/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func ExampleNewCollector() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	db.AutoMigrate(&Widget{})
	db.Create(&Widget{Name: "sprocket"})

	cache := plugin.New(plugin.Config{Logger: quiet})
	if err := db.Use(cache); err != nil {
		panic(err)
	}
	defer cache.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(gcprometheus.NewCollector(cache, gcprometheus.ConstLabels(prometheus.Labels{"db": "app"})))
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) // serve on /metrics

	var ws []Widget
	db.Find(&ws) // miss
	db.Find(&ws) // hit
	db.Find(&ws) // hit

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "hits_total") || strings.Contains(line, "misses_total") {
			if !strings.HasPrefix(line, "#") {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// gormcache_hits_total{db="app"} 2
	// gormcache_misses_total{db="app"} 1
	// gormcache_table_hits_total{db="app",table="widgets"} 2
	// gormcache_table_misses_total{db="app",table="widgets"} 1
}
