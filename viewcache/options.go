package viewcache

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/plugin"
)

// Option is a route option, given to [Cache.Page]. Options are fixed when
// the route is made: Page panics with an error wrapping ErrInvalidOption on
// a bad one, as http.ServeMux.Handle does on a bad pattern.
type Option struct {
	apply func(*route)
	err   error
}

// route is a route's options.
type route struct {
	ttl            time.Duration // 0: Config.TTL
	tables         []string      // Tags, normalised
	varyOn         func(*http.Request) string
	withoutQueries bool
	never          bool
}

// TTL keeps the route's responses for d when they say nothing themselves
// (no Cache-Control s-maxage or max-age, no Expires): cache_page's timeout.
// plugin.Forever keeps them until a write invalidates them or the store
// evicts them. d must be positive or plugin.Forever.
func TTL(d time.Duration) Option {
	if d <= 0 && d != plugin.Forever {
		return Option{err: fmt.Errorf("%w: TTL(%v): must be positive or plugin.Forever", ErrInvalidOption, d)}
	}
	return Option{apply: func(r *route) { r.ttl = d }}
}

// Tags makes the route's responses depend on these tables too (as GORM or
// SQL names them), besides the tables its queries read: a write to any of
// them, or plugin.Plugin.Invalidate naming one, makes a stored response
// stale. Their versions are read before the handler runs.
func Tags(tables ...string) Option {
	norm := make([]string, 0, len(tables))
	for _, t := range tables {
		n := invalidation.TableName(t)
		if n == "" {
			return Option{err: fmt.Errorf("%w: Tags(%q): empty table name", ErrInvalidOption, t)}
		}
		norm = append(norm, n)
	}
	return Option{apply: func(r *route) { r.tables = append(r.tables, norm...) }}
}

// VaryOn declares what the route's responses depend on besides the URL and
// the headers named by their Vary: f's value is part of the key. It also
// lets requests that carry an identity (see Config.IdentityHeaders) be
// cached: give f the user id, and each user gets pages of their own
// (Django's vary_on_cookie, for one user rather than one cookie string). A
// request with an identity for which f returns "" is not cached. f must be
// cheap and must not read the request body.
func VaryOn(f func(*http.Request) string) Option {
	if f == nil {
		return Option{err: fmt.Errorf("%w: VaryOn(nil)", ErrInvalidOption)}
	}
	return Option{apply: func(r *route) { r.varyOn = f }}
}

// WithoutQueries stores responses whose handler made no query with the
// request's context (it read nothing, or read without r.Context(), or from
// elsewhere than the database). Such a response depends on no table: only
// its TTL, Tags, and flushes end it. Without this option, such responses
// are not stored, since nothing would invalidate them.
func WithoutQueries() Option {
	return Option{apply: func(r *route) { r.withoutQueries = true }}
}

// Never makes the route's responses uncacheable, here and downstream:
// Django's never_cache. The route is not looked up, and its responses get
// "Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private"
// (set before the handler runs, so the handler may change it) and are
// never stored by an enclosing Middleware.
func Never() Option {
	return Option{apply: func(r *route) { r.never = true }}
}

// newRoute applies opts, or panics on a bad one.
func newRoute(opts []Option) *route {
	r := &route{}
	for _, o := range opts {
		if o.err != nil {
			panic(o.err)
		}
		if o.apply != nil {
			o.apply(r)
		}
	}
	return r
}
