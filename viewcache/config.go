package viewcache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gormcache/gormcache/plugin"
)

// Defaults used for the zero values of [Config].
const (
	DefaultTTL          = plugin.DefaultTTL          // 5 minutes, as the plugin
	DefaultMaxBytes     = 1 << 20                    // 1 MiB: memcached's item limit
	DefaultPrefix       = "vc"                       // store keys start with "vc:"
	DefaultStoreTimeout = plugin.DefaultStoreTimeout // per store call (not in-process stores)
)

// DefaultStatuses are the status codes stored when [Config.Statuses] is nil.
var DefaultStatuses = []int{http.StatusOK}

// DefaultIdentityHeaders are the request headers that carry an identity
// when [Config.IdentityHeaders] is nil.
var DefaultIdentityHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key"}

// Errors returned by the package; check them with errors.Is.
var (
	// ErrInvalidConfig is wrapped by the errors New returns for a bad
	// Config; the message names the field.
	ErrInvalidConfig = errors.New("viewcache: invalid config")
	// ErrInvalidOption is wrapped by the value Page panics with when given a
	// bad route option, and by Fragment's error for a bad TTL or a nil
	// render function.
	ErrInvalidOption = errors.New("viewcache: invalid option")
)

// Config configures a [Cache]. The zero Config is ready to use.
type Config struct {
	// TTL is how long a response is kept when it says nothing itself (no
	// Cache-Control s-maxage or max-age, no Expires) and its route gives no
	// [TTL] option. 0 means DefaultTTL (5 minutes); plugin.Forever keeps
	// responses until a write invalidates them or the store evicts them.
	// Other negative values are errors.
	TTL time.Duration

	// Statuses are the response status codes that may be stored. nil means
	// DefaultStatuses (200 only). 1xx, 206 and 304 cannot be stored.
	Statuses []int

	// MaxBytes bounds a stored response body. A larger response streams
	// through to the client as the handler writes it, without being
	// buffered whole, and is not stored. 0 means DefaultMaxBytes (1 MiB).
	// Negative is an error.
	MaxBytes int

	// IdentityHeaders are the request headers that carry an identity: a
	// request with any of them (or with a TLS client certificate) is neither
	// served from nor stored in the cache, unless its route declares what
	// its response varies on ([VaryOn]). nil means DefaultIdentityHeaders
	// (Authorization, Proxy-Authorization, Cookie, X-Api-Key); an empty,
	// non-nil slice means none but the client certificate.
	IdentityHeaders []string

	// Key, when set, returns an extra part of every key (a tenant, a
	// locale taken from the path or host): requests for which it returns
	// different values never share a response.
	Key func(*http.Request) string

	// Coalesce makes identical concurrent misses wait for the first one
	// and, when its response was stored and is still fresh, serve that
	// instead of running the handler again. Off by default.
	Coalesce bool

	// BrowserMaxAge adds Cache-Control max-age (and Expires) to the
	// responses the cache stores or serves, when they have none, so that
	// browsers keep them for the rest of the entry's TTL. Off by default,
	// and use it with care: a browser cannot see our invalidations, so a
	// page it keeps may be stale for up to its max-age after a write. Left
	// off, browsers revalidate with If-None-Match and get a 304 from the
	// cache, which does see invalidations.
	BrowserMaxAge bool

	// Prefix starts every key this cache writes in the store: pages are
	// stored under Prefix+":p1:"+hash, fragments under Prefix+":f:"+key.
	// "" means DefaultPrefix ("vc"). Caches with the same prefix on one
	// store share their entries; change it (say "vc2") to drop every stored
	// page at once, or call Cache.Flush.
	Prefix string

	// StoreTimeout bounds each call to a store that is not in-process; a
	// slower call is a store error, and the request is served by its
	// handler. 0 means DefaultStoreTimeout (100 ms). Negative is an error.
	StoreTimeout time.Duration

	// Logger receives store failures and corrupt entries (at most one log
	// a second). nil means slog.Default().
	Logger *slog.Logger

	// Development reports the usual mistake of a cached handler: a GORM
	// statement made without the request's context (db.Find instead of
	// db.WithContext(r.Context()).Find) is not recorded, so the stored
	// page does not depend on its tables and stays stale after writes to
	// them for its TTL. With Development, every statement run through the
	// plugin without a recorded context while a cacheable request's
	// handler runs is logged as a warning (at most one a second, with the
	// request's path and the statement's SQL, never its arguments) and
	// counted in Stats.Unrecorded. A statement of another goroutine (a
	// background job) counts too: use it in development and tests.
	Development bool
}

// withDefaults returns c, checked, with the defaults for its zero fields
// (the module's one convention for a Config).
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Statuses == nil {
		c.Statuses = DefaultStatuses
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.IdentityHeaders == nil {
		c.IdentityHeaders = DefaultIdentityHeaders
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// validate reports the first bad field of c, naming it.
func (c *Config) validate() error {
	switch {
	case c.TTL < 0 && c.TTL != plugin.Forever:
		return fmt.Errorf("%w: TTL must be positive, 0 (default) or plugin.Forever, got %v", ErrInvalidConfig, c.TTL)
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: MaxBytes must not be negative, got %d", ErrInvalidConfig, c.MaxBytes)
	case c.StoreTimeout < 0:
		return fmt.Errorf("%w: StoreTimeout must not be negative, got %v", ErrInvalidConfig, c.StoreTimeout)
	case strings.ContainsFunc(c.Prefix, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '{' || r == '}' }):
		return fmt.Errorf("%w: Prefix %q: spaces, control characters and braces are not allowed", ErrInvalidConfig, c.Prefix)
	}
	if c.Statuses != nil && len(c.Statuses) == 0 {
		return fmt.Errorf("%w: Statuses is empty (nil means the default, 200)", ErrInvalidConfig)
	}
	for _, s := range c.Statuses {
		if s < 200 || s > 599 || s == http.StatusPartialContent || s == http.StatusNotModified {
			return fmt.Errorf("%w: Statuses: %d cannot be stored (use 2xx but 206, 3xx but 304, 4xx, 5xx)", ErrInvalidConfig, s)
		}
	}
	for _, h := range c.IdentityHeaders {
		if !validHeaderName(h) {
			return fmt.Errorf("%w: IdentityHeaders: %q is not a header name", ErrInvalidConfig, h)
		}
	}
	return nil
}

// validHeaderName reports whether s is an HTTP field name (an RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// settings is a validated Config with its defaults applied.
type settings struct {
	ttl      time.Duration // plugin.Forever or positive
	statuses map[int]bool
	maxBytes int
	identity []string // canonical header names
	key      func(*http.Request) string
	coalesce bool
	browser  bool
	prefix   string
	timeout  time.Duration
	log      *slog.Logger
	dev      bool
}

// settings is what a Cache keeps of c (defaulted by withDefaults).
func (c *Config) settings() settings {
	s := settings{
		ttl:      c.TTL,
		statuses: map[int]bool{},
		maxBytes: c.MaxBytes,
		key:      c.Key,
		coalesce: c.Coalesce,
		browser:  c.BrowserMaxAge,
		prefix:   c.Prefix,
		timeout:  c.StoreTimeout,
		log:      c.Logger,
		dev:      c.Development,
	}
	for _, code := range c.Statuses {
		s.statuses[code] = true
	}
	for _, h := range c.IdentityHeaders {
		s.identity = append(s.identity, textproto.CanonicalMIMEHeaderKey(h))
	}
	return s
}
