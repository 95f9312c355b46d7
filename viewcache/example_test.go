package viewcache_test

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/viewcache"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// exampleDB opens a SQLite database in a temporary directory with three
// articles and the plugin installed.
func exampleDB() (db *gorm.DB, p *plugin.Plugin, cleanup func()) {
	dir, _ := os.MkdirTemp("", "viewcache")
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	db.AutoMigrate(&Article{})
	for _, title := range []string{"Hello", "Caching", "GORM"} {
		db.Create(&Article{Title: title})
	}
	p = plugin.New(plugin.Config{})
	if err := db.Use(p); err != nil {
		panic(err)
	}
	return db, p, func() { p.Close(); os.RemoveAll(dir) }
}

// fetch GETs url and prints whether the response came from the cache, and
// its body.
func fetch(url string) {
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	from := "handler"
	if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
		from = "cache"
	}
	fmt.Printf("%-7s %s\n", from, strings.TrimSpace(string(body)))
}

// A view cached for 15 minutes, or until a write to the table it read:
// the handler has no cache code, and nothing invalidates the page by hand.
func ExampleCache_Page() {
	db, p, cleanup := exampleDB()
	defer cleanup()

	views, err := viewcache.New(p, viewcache.Config{TTL: 15 * time.Minute})
	if err != nil {
		panic(err)
	}
	listArticles := func(w http.ResponseWriter, r *http.Request) {
		var articles []Article
		db.WithContext(r.Context()).Order("id").Find(&articles) // r.Context(): the page records what it read
		json.NewEncoder(w).Encode(articles)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /articles", views.Page(http.HandlerFunc(listArticles)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	fetch(srv.URL + "/articles")
	fetch(srv.URL + "/articles")
	db.Model(&Article{}).Where("id = ?", 1).Update("title", "Hello, world") // any GORM write to articles
	fetch(srv.URL + "/articles")
	// Output:
	// handler [{"ID":1,"Title":"Hello"},{"ID":2,"Title":"Caching"},{"ID":3,"Title":"GORM"}]
	// cache   [{"ID":1,"Title":"Hello"},{"ID":2,"Title":"Caching"},{"ID":3,"Title":"GORM"}]
	// handler [{"ID":1,"Title":"Hello, world"},{"ID":2,"Title":"Caching"},{"ID":3,"Title":"GORM"}]
}

// The whole site cached: every GET and HEAD, keyed by URL (query
// parameters in any order) and by the headers its responses Vary on.
func ExampleCache_Middleware() {
	db, p, cleanup := exampleDB()
	defer cleanup()

	views, err := viewcache.New(p, viewcache.Config{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /articles/{id}", func(w http.ResponseWriter, r *http.Request) {
		var a Article
		if err := db.WithContext(r.Context()).First(&a, r.PathValue("id")).Error; err != nil {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s (format %s)\n", a.Title, r.URL.Query().Get("format"))
	})
	srv := httptest.NewServer(views.Middleware(mux))
	defer srv.Close()

	fetch(srv.URL + "/articles/2?format=short&lang=en")
	fetch(srv.URL + "/articles/2?lang=en&format=short") // the same URL to the cache
	fetch(srv.URL + "/articles/3?format=short&lang=en")
	db.Delete(&Article{}, 2)
	fetch(srv.URL + "/articles/2?format=short&lang=en") // 404: not stored, by default
	fmt.Println(views.Stats().Hits, "hit")
	// Output:
	// handler Caching (format short)
	// cache   Caching (format short)
	// handler GORM (format short)
	// handler 404 page not found
	// 1 hit
}

// A page whose sidebar is a cached fragment, as Django's {% cache %} tag:
// rendered once, then copied from the store until articles is written.
func ExampleCache_Fragment() {
	db, p, cleanup := exampleDB()
	defer cleanup()

	views, err := viewcache.New(p, viewcache.Config{})
	if err != nil {
		panic(err)
	}
	sidebar := template.Must(template.New("sidebar").Parse(
		`<ul>{{range .}}<li>{{.Title}}</li>{{end}}</ul>`))
	page := template.Must(template.New("page").Parse(
		`<main>{{.Main}}</main><aside>{{.Sidebar}}</aside>`))

	render := func(w io.Writer, r *http.Request) {
		var aside strings.Builder
		err := views.Fragment(r.Context(), &aside, "sidebar:latest", 10*time.Minute, []string{"articles"},
			func(w io.Writer) error {
				fmt.Println("(rendering the sidebar)")
				var latest []Article
				db.WithContext(r.Context()).Order("id desc").Limit(2).Find(&latest)
				return sidebar.Execute(w, latest)
			})
		if err != nil {
			panic(err)
		}
		page.Execute(w, map[string]any{"Main": "Welcome", "Sidebar": template.HTML(aside.String())})
	}

	req := httptest.NewRequest("GET", "/", nil)
	for range 2 {
		var out strings.Builder
		render(&out, req)
		fmt.Println(out.String())
	}
	db.Create(&Article{Title: "Fragments"})
	var out strings.Builder
	render(&out, req)
	fmt.Println(out.String())
	// Output:
	// (rendering the sidebar)
	// <main>Welcome</main><aside><ul><li>GORM</li><li>Caching</li></ul></aside>
	// <main>Welcome</main><aside><ul><li>GORM</li><li>Caching</li></ul></aside>
	// (rendering the sidebar)
	// <main>Welcome</main><aside><ul><li>Fragments</li><li>GORM</li></ul></aside>
}
