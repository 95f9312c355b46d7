package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gormcache/gormcache/console"
	"github.com/gormcache/gormcache/internal/testdb"
)

// TestConsolePage starts the example as its main function does (run, on a
// free port), sends it mixed traffic — hits, misses, a write and a query
// the cache never serves — and loads /debug/gormcache in headless
// Chromium: the shapes, their hit ratios and the chart must be on the
// rendered page, and the JSON must count that traffic. The screenshot is
// saved as console.png in the test's artifact directory (go test
// -artifacts keeps it; GORMCACHE_SCREENSHOT=path copies it there too).
//
// Chromium is Debian's chromium package (scripts/test installs it); without
// it the test skips, and fails under CI=true.
func TestConsolePage(t *testing.T) {
	browser := chromiumPath(t)
	base := startExample(t)
	c := client{t: t, base: base}

	// The traffic. Pages are cached by viewcache per URI, so each request
	// below uses a URI of its own: every one reaches the query cache.
	//
	//   list  SELECT * FROM `articles` ORDER BY id
	//   one   SELECT * FROM `articles` WHERE `articles`.`id` = ? ORDER BY `articles`.`id` LIMIT ?
	for i := 1; i <= 4; i++ { // list: 1 miss, 3 hits
		c.do("GET", fmt.Sprintf("/articles?v=%d", i), "").want(200)
	}
	c.do("GET", "/articles/1", "").want(200)     // one: miss
	c.do("GET", "/articles/2", "").want(200)     // one: miss
	c.do("GET", "/articles/1?v=2", "").want(200) // one: hit
	// PUT: one (id 7): a miss, then the UPDATE (a write to row 7 of
	// articles), then a read of the article as stored (another shape).
	c.do("PUT", "/articles/7", `{"title": "Seen in the console"}`).want(200)
	c.do("GET", "/articles/7?v=2", "").want(200)    // one: a miss, its entry invalidated by the write to row 7
	c.do("GET", "/articles?v=after", "").want(200)  // list: a miss, its entry invalidated by the write to articles
	c.do("GET", "/articles?v=again", "").want(200)  // list: a hit
	c.do("GET", "/articles/random", "").want(200)   // never cached: volatile_function
	c.do("GET", "/articles/random?2", "").want(200) // again
	// Writes that keep invalidating: each PUT of article 8 makes one miss
	// (its entry, from the previous PUT, invalidated by the write to row 8
	// but the first time) and the next list a miss (invalidated by the
	// write to articles). Both shapes end under the advisor's threshold.
	const loops = 20
	for i := 1; i <= loops; i++ {
		c.do("PUT", "/articles/8", fmt.Sprintf(`{"title": "Edit %d"}`, i)).want(200)
		c.do("GET", fmt.Sprintf("/articles?v=loop%d", i), "").want(200)
	}
	const (
		listHits, listMisses, listInvalidated = 4, 2 + loops, 1 + loops
		oneHits, oneMisses, oneInvalidated    = 1, 4 + loops, 1 + loops - 1
		randomQueries                         = 2
		updates                               = 1 + loops
	)

	// A few more list hits, one per sampling interval, for the chart.
	extra := 0
	var rep console.Report
	deadline := time.Now().Add(time.Minute)
	for {
		c.do("GET", "/console-json-wait", "") // (a 404: no query)
		body := c.do("GET", "/debug/gormcache?format=json", "").want(200).body
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Series) >= 4+extra || time.Now().After(deadline) {
			if len(rep.Series) >= 6 || time.Now().After(deadline) {
				break
			}
			extra++
			c.do("GET", fmt.Sprintf("/articles?v=chart%d", extra), "").want(200)
		}
		time.Sleep(50 * time.Millisecond) // polling the console's sampler (1 s), not waiting for a result
	}
	if len(rep.Series) < 6 {
		t.Fatalf("the console sampled %d intervals in a minute", len(rep.Series))
	}
	// The JSON after the last request: the chart's requests included.
	body := c.do("GET", "/debug/gormcache?format=json", "").want(200).body
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	list := findShape(t, rep, "SELECT * FROM `articles` ORDER BY id")
	one := findShape(t, rep, "SELECT * FROM `articles` WHERE `articles`.`id` = ? ORDER BY `articles`.`id` LIMIT ?")
	random := findShape(t, rep, "SELECT * FROM `articles` ORDER BY random() LIMIT ?")
	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, want %d", what, got, want)
		}
	}
	check("list hits", list.Hits, listHits+uint64(extra))
	check("list misses", list.Misses, listMisses)
	check("list reads", list.Reads, listHits+listMisses+uint64(extra))
	check("list stores", list.Stores, listMisses)
	check("list invalidated", list.Invalidated, listInvalidated)
	check("list invalidated by articles", list.InvalidatedBy["articles"], listInvalidated)
	check("one hits", one.Hits, oneHits)
	check("one misses", one.Misses, oneMisses)
	check("one invalidated", one.Invalidated, oneInvalidated)
	check("one invalidated by articles rows by id", one.InvalidatedBy["articles rows by id"], oneInvalidated)
	check("random database queries", random.DBQueries, randomQueries)
	check("random volatile bypasses", random.Bypasses["volatile_function"], randomQueries)
	if random.Cacheable || random.Reason != "volatile_function" {
		t.Errorf("random: %+v", random)
	}
	if len(rep.Never) == 0 || rep.Never[0].ID != random.ID {
		t.Errorf("never cached: %+v", rep.Never)
	}
	var update console.Shape
	for _, s := range rep.Shapes {
		if s.Write && strings.HasPrefix(s.SQL, "UPDATE `articles` SET") {
			update = s
		}
	}
	check("update writes", update.Writes, updates)
	var advised bool
	for _, a := range rep.Advice {
		if a.ShapeID == list.ID {
			advised = a.Option == "Skip" || a.Option == "Deny"
		}
	}
	if !advised {
		t.Errorf("no Skip or Deny advice for the list (hit ratio %.2f): %+v", list.HitRatio, rep.Advice)
	}
	wantRatio := func(s console.Shape) string { return fmt.Sprintf("%.1f%%", 100*float64(s.Hits)/float64(s.Reads)) }

	// The page, in a browser.
	shot := filepath.Join(t.ArtifactDir(), "console.png")
	page := loadPage(t, browser, base+"/debug/gormcache", shot)
	for _, s := range []console.Shape{list, one, random} {
		if !strings.Contains(page.shapes, s.SQL) {
			t.Errorf("the rendered shapes table lacks %q:\n%s", s.SQL, page.shapes)
		}
	}
	for _, s := range []console.Shape{list, one} {
		row := page.rows[s.ID]
		if !strings.Contains(row, wantRatio(s)) || !strings.Contains(row, fmt.Sprint(s.Reads)) {
			t.Errorf("the row of %q shows %q, want hit ratio %s and %d reads", s.SQL, row, wantRatio(s), s.Reads)
		}
	}
	if !strings.Contains(page.advice, list.SQL) || !strings.Contains(page.advice, "invalidated") {
		t.Errorf("the advisor, as rendered, does not flag the list:\n%s", page.advice)
	}
	if !strings.Contains(page.never, "volatile_function") {
		t.Errorf("never cached, as rendered: %q", page.never)
	}
	if page.chartWidth < 100 || page.ratioPoints < 2 || page.dbPoints < 2 {
		t.Errorf("the chart: %v px wide, %d hit-ratio points, %d database points", page.chartWidth, page.ratioPoints, page.dbPoints)
	}
	t.Logf("screenshot: %s", shot)
	if dst := os.Getenv("GORMCACHE_SCREENSHOT"); dst != "" {
		b, err := os.ReadFile(shot)
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			t.Errorf("copy the screenshot to %s: %v", dst, err)
		}
	}
}

func findShape(t *testing.T, rep console.Report, sql string) console.Shape {
	t.Helper()
	for _, s := range rep.Shapes {
		if s.SQL == sql {
			return s
		}
	}
	var all []string
	for _, s := range rep.Shapes {
		all = append(all, s.SQL)
	}
	t.Fatalf("no shape %q among:\n%s", sql, strings.Join(all, "\n"))
	return console.Shape{}
}

// chromiumPath finds Chromium: $GORMCACHE_CHROMIUM, or chromium on PATH.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("GORMCACHE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testdb.Unavailable(t, "chromium", exec.ErrNotFound)
	return ""
}

// startExample runs the example's main function on a free port until the
// test ends, and returns its base URL.
func startExample(t *testing.T) string {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	lines := bufio.NewScanner(pr)
	listening := regexp.MustCompile(`^listening on (http://\S+)$`)
	for lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, pr)
			return m[1]
		}
	}
	t.Fatalf("the example did not start listening: %v", lines.Err())
	return ""
}

// rendered is what the browser shows.
type rendered struct {
	shapes, never, advice string
	rows                  map[string]string // shape ID → its row's text
	chartWidth            float64
	ratioPoints, dbPoints int
}

// loadPage loads url in headless Chromium, reads the rendered page and
// saves a screenshot of it (PNG) at shot.
func loadPage(t *testing.T, browser, url, shot string) rendered {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if _, err := chromedp.Run(bctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		testdb.Unavailable(t, "chromium ("+browser+")", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	var r rendered
	var rows []map[string]string
	var png []byte
	err := func() (err error) {
		if err = chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("chart"))); err != nil {
			return err
		}
		if r.shapes, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("shapes"))); err != nil {
			return err
		}
		if r.never, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("never"))); err != nil {
			return err
		}
		if r.advice, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("advice"))); err != nil {
			return err
		}
		if rows, err = chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('#shapes tr[data-shape]')].map(tr => ({id: tr.dataset.shape, text: tr.innerText}))`)); err != nil {
			return err
		}
		if r.chartWidth, err = chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById('chart').getBoundingClientRect().width`)); err != nil {
			return err
		}
		if r.ratioPoints, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.getElementById('line-ratio').points.numberOfItems`)); err != nil {
			return err
		}
		if r.dbPoints, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.getElementById('line-db').points.numberOfItems`)); err != nil {
			return err
		}
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		return err
	}()
	if err != nil {
		t.Fatalf("load %s in chromium: %v", url, err)
	}
	r.rows = map[string]string{}
	for _, row := range rows {
		r.rows[row["id"]] = row["text"]
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}
