package console

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// chart is the inline SVG chart's geometry and its two lines.
type chart struct {
	W, H, Left, Right, Top, Bottom int
	Ratio, DB                      string // polyline points
	MaxDB                          float64
	Span                           string
	Points                         int
}

func (c *Console) chart(rep Report) chart {
	ch := chart{W: 760, H: 220, Left: 44, Right: 56, Top: 12, Bottom: 28}
	pw, ph := float64(ch.W-ch.Left-ch.Right), float64(ch.H-ch.Top-ch.Bottom)
	end := rep.Time
	start := end.Add(-c.opts.Window)
	if len(rep.Series) > 0 && rep.Series[0].Time.Add(-c.opts.Interval).After(start) {
		start = rep.Series[0].Time.Add(-c.opts.Interval) // since the console started
	}
	ch.Span = end.Sub(start).Round(time.Second).String()
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(end.Sub(start))
		return float64(ch.Left) + math.Max(0, math.Min(1, f))*pw
	}
	for _, p := range rep.Series {
		ch.MaxDB = math.Max(ch.MaxDB, p.DBQueriesPerS)
	}
	if ch.MaxDB < 1 {
		ch.MaxDB = 1
	} else {
		ch.MaxDB = niceCeil(ch.MaxDB)
	}
	var ratio, db []string
	for _, p := range rep.Series {
		if p.HitRatio != nil {
			ratio = append(ratio, fmt.Sprintf("%.1f,%.1f", x(p.Time), float64(ch.Top)+(1-*p.HitRatio)*ph))
		}
		db = append(db, fmt.Sprintf("%.1f,%.1f", x(p.Time), float64(ch.Top)+(1-p.DBQueriesPerS/ch.MaxDB)*ph))
	}
	ch.Ratio, ch.DB, ch.Points = strings.Join(ratio, " "), strings.Join(db, " "), len(rep.Series)
	return ch
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return v
}

var funcs = template.FuncMap{
	"pct": func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	"bytes": func(n uint64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		d := now.Sub(t).Round(time.Second)
		if d < time.Second {
			return "now"
		}
		return d.String() + " ago"
	},
	"counts": func(m map[string]uint64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		if len(parts) == 0 {
			return "—"
		}
		return strings.Join(parts, ", ")
	},
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"low":   func(v, threshold float64) bool { return v < threshold },
	"rate":  func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"float": func(v float64) string { return fmt.Sprintf("%g", v) },
	"add":   func(a, b int) int { return a + b },
	"sub":   func(a, b int) int { return a - b },
	"mid":   func(a, b int) int { return (a + b) / 2 },
}

var page = template.Must(template.New("page").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>gormcache console</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#1d232b;background:#fbfbfc}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px}
.sub{color:#5b6573;margin-bottom:10px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600;font-size:12px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px/1.3 ui-monospace,monospace;word-break:break-all}
.low{color:#b42318;font-weight:600}.ok{color:#067647;font-weight:600}
.kpi{display:inline-block;margin:0 18px 8px 0}.kpi b{display:block;font-size:20px}
.adv{background:#fff7e6;border-left:3px solid #f79009;padding:6px 10px;margin:6px 0}
.opt{display:inline-block;background:#1d232b;color:#fff;border-radius:3px;padding:0 6px;font-size:12px}
svg text{font-size:11px;fill:#5b6573}
</style></head><body>
{{$r := .R}}{{$now := $r.Time}}
<h1>gormcache console</h1>
<div class="sub">collecting since {{$r.Since.Format "2006-01-02 15:04:05 MST"}} · {{$r.ShapesTracked}} shapes tracked{{if $r.ShapesDropped}} ({{$r.ShapesDropped}} dropped to bound memory){{end}} · <a href="?format=json">JSON</a>{{if $r.SQLHidden}} · SQL hidden{{end}}</div>
<div id="totals">
<span class="kpi">hit ratio<b id="total-ratio">{{pct $r.Totals.HitRatio}}</b></span>
<span class="kpi">hits<b>{{$r.Totals.Hits}}</b></span>
<span class="kpi">misses<b>{{$r.Totals.Misses}}</b></span>
<span class="kpi">stores<b>{{$r.Totals.Stores}}</b></span>
<span class="kpi">database queries<b>{{$r.Totals.DBQueries}}</b></span>
<span class="kpi">invalidations<b>{{$r.Totals.Invalidations}}</b></span>
</div>

<h2>Hit ratio and database queries per second, last {{.C.Span}} <small>(every {{.Interval}}; up to {{.Window}})</small></h2>
{{with .C}}<svg id="chart" data-points="{{.Points}}" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="hit ratio and database queries per second">
<rect x="{{.Left}}" y="{{.Top}}" width="{{sub (sub .W .Left) .Right}}" height="{{sub (sub .H .Top) .Bottom}}" fill="#fff" stroke="#d0d5dd"/>
<line x1="{{.Left}}" x2="{{sub .W .Right}}" y1="{{mid .Top (sub .H .Bottom)}}" y2="{{mid .Top (sub .H .Bottom)}}" stroke="#eaecf0"/>
<text x="{{sub .Left 4}}" y="{{add .Top 4}}" text-anchor="end">100%</text>
<text x="{{sub .Left 4}}" y="{{add (mid .Top (sub .H .Bottom)) 4}}" text-anchor="end">50%</text>
<text x="{{sub .Left 4}}" y="{{sub .H .Bottom}}" text-anchor="end">0%</text>
<text x="{{add (sub .W .Right) 4}}" y="{{add .Top 4}}">{{float .MaxDB}}/s</text>
<text x="{{add (sub .W .Right) 4}}" y="{{sub .H .Bottom}}">0/s</text>
<text x="{{.Left}}" y="{{sub .H 8}}">−{{.Span}}</text>
<text x="{{sub .W .Right}}" y="{{sub .H 8}}" text-anchor="end">now</text>
<polyline id="line-ratio" fill="none" stroke="#067647" stroke-width="2" points="{{.Ratio}}"/>
<polyline id="line-db" fill="none" stroke="#b54708" stroke-width="1.5" stroke-dasharray="4 2" points="{{.DB}}"/>
<text x="{{add .Left 8}}" y="{{add .Top 14}}" style="fill:#067647">— hit ratio</text>
<text x="{{add .Left 100}}" y="{{add .Top 14}}" style="fill:#b54708">- - database queries/s</text>
</svg>{{end}}

<h2>Advisor <small>(shapes read {{.MinReads}}+ times with a hit ratio under {{pct $r.Threshold}})</small></h2>
<div id="advice">{{range $r.Advice}}<div class="adv" data-shape="{{.ShapeID}}"><span class="opt">{{.Option}}</span> {{if .SQL}}<code>{{.SQL}}</code>{{else}}shape {{.ShapeID}}{{end}}<br>{{.Problem}}.<br>{{.Suggestion}}.</div>{{else}}<p>Nothing to advise.</p>{{end}}</div>

<h2>Query shapes <small>(top {{len $r.Shapes}} by traffic; arguments never shown)</small></h2>
<table id="shapes"><tr><th>shape</th><th>tables</th><th class="n">reads</th><th class="n">hits</th><th class="n">misses</th><th class="n">hit ratio</th><th class="n">stores</th><th class="n">bytes stored</th><th>bypasses</th><th>invalidated by</th><th class="n">last seen</th></tr>
{{range $r.Shapes}}<tr data-shape="{{.ID}}"><td>{{if .SQL}}<code>{{.SQL}}</code>{{else}}{{.ID}}{{end}}{{if .Write}} <small>(write: {{.Writes}})</small>{{else if not .Cacheable}} <small>(never cached: {{.Reason}})</small>{{end}}</td><td>{{join .Tables}}</td>
<td class="n">{{.Reads}}</td><td class="n">{{.Hits}}</td><td class="n">{{.Misses}}</td>
<td class="n ratio {{if .Write}}{{else if low .HitRatio $r.Threshold}}low{{else}}ok{{end}}">{{if .Write}}—{{else}}{{pct .HitRatio}}{{end}}</td>
<td class="n">{{.Stores}}</td><td class="n">{{bytes .BytesStored}}</td><td>{{counts .Bypasses}}</td><td>{{if .Invalidated}}{{.Invalidated}}: {{counts .InvalidatedBy}}{{else}}—{{end}}</td><td class="n">{{ago $now .LastSeen}}</td></tr>
{{end}}</table>

<h2>Never cached</h2>
<table id="never"><tr><th>shape</th><th>reason</th><th>why</th><th class="n">database queries</th></tr>
{{range $r.Never}}<tr data-shape="{{.ID}}"><td>{{if .SQL}}<code>{{.SQL}}</code>{{else}}{{.ID}}{{end}}</td><td><code>{{.Reason}}</code></td><td>{{.Why}}</td><td class="n">{{.DBQueries}}</td></tr>
{{else}}<tr><td colspan="4">None seen.</td></tr>{{end}}</table>

<h2>Tables</h2>
<table id="tables"><tr><th>table</th><th class="n">reads</th><th class="n">hits</th><th class="n">hit ratio</th><th class="n">writes</th><th class="n">invalidations/s (last minute)</th><th>writes that cost it most hits</th></tr>
{{range $r.Tables}}<tr data-table="{{.Name}}"><td>{{.Name}}</td><td class="n">{{.Reads}}</td><td class="n">{{.Hits}}</td><td class="n">{{pct .HitRatio}}</td><td class="n">{{.Writes}}</td><td class="n">{{rate .InvalidationsPerSec}}</td><td>{{range $i, $c := .CostliestWriters}}{{if $i}}, {{end}}{{$c.By}} ({{$c.HitsLost}} hits){{else}}—{{end}}</td></tr>
{{end}}</table>

<h2>Store</h2>
{{with $r.Store}}<table id="store"><tr><th>store</th><th class="n">errors</th><th class="n">canceled</th><th class="n">outages (epoch bumps)</th><th class="n">writes refused</th><th class="n">corrupt</th><th>breaker</th><th class="n">calls timed</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th></tr>
<tr><td><code>{{.Kind}}</code>{{if .InProcess}} (in-process: calls not timed){{end}}</td><td class="n">{{.Errors}}</td><td class="n">{{.Canceled}}</td><td class="n">{{.Outages}}</td><td class="n">{{.WritesRefused}}</td><td class="n">{{.Corrupt}}</td><td>{{if .Breaker}}{{.Breaker}} (opened {{.BreakerOpens}}×){{else}}—{{end}}</td><td class="n">{{.Calls}}</td><td class="n">{{if .Calls}}≤{{.P50us}} µs{{else}}—{{end}}</td><td class="n">{{if .Calls}}≤{{.P90us}} µs{{else}}—{{end}}</td><td class="n">{{if .Calls}}≤{{.P99us}} µs{{else}}—{{end}}</td></tr></table>{{end}}
</body></html>
`))

func (c *Console) render(w io.Writer, rep Report, refresh int) error {
	return page.Execute(w, map[string]any{"R": rep, "C": c.chart(rep), "Refresh": refresh, "MinReads": c.opts.MinReads,
		"Interval": c.opts.Interval.String(), "Window": c.opts.Window.String()})
}
