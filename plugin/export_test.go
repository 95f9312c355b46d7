package plugin

import "github.com/gormcache/gormcache/internal/core"

// Serving reports whether results depending on tables may be served from
// the store now (no broken tag, no outage pending its epoch bump).
func Serving(p *Plugin, tables ...string) bool {
	if err := p.setup(); err != nil {
		panic(err)
	}
	return p.inv.Serving(core.Tables(tables))
}
