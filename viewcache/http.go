package viewcache

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cacheName names this cache in Cache-Status (RFC 9211).
const cacheName = "gormcache"

// directives parses the Cache-Control fields of h: directive names lower
// case, values unquoted ("" for none).
func directives(h http.Header) map[string]string {
	vs := h.Values("Cache-Control")
	if len(vs) == 0 {
		return nil
	}
	d := map[string]string{}
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if _, dup := d[name]; !dup {
				d[name] = strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return d
}

// seconds parses a delta-seconds value; ok is false when it does not parse.
func seconds(v string) (time.Duration, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n > int64(100*365*24*time.Hour/time.Second) {
		n = int64(100 * 365 * 24 * time.Hour / time.Second)
	}
	return time.Duration(n) * time.Second, true
}

// refusal says why a response with header h and status may not be stored
// (a Reason… constant), or "": its status, Cache-Control private, no-store
// or no-cache, Set-Cookie, Vary: *, or declared trailers.
func (c *Cache) refusal(status int, h http.Header) Reason {
	if !c.statuses[status] {
		return ReasonStatus
	}
	d := directives(h)
	if _, ok := d["private"]; ok {
		return ReasonPrivate
	}
	if _, ok := d["no-store"]; ok {
		return ReasonNoStore
	}
	if _, ok := d["no-cache"]; ok {
		return ReasonNoCache
	}
	if len(h.Values("Set-Cookie")) > 0 {
		return ReasonSetCookie
	}
	if _, star := varyNames(h); star {
		return ReasonVaryStar
	}
	if len(h.Values("Trailer")) > 0 {
		return ReasonTrailers
	}
	return ""
}

// responseTTL is how long a response with header h says it may be kept
// by a shared cache: its s-maxage, else its max-age, else Expires minus
// Date; ok is false when it says nothing. A result <= 0 means "do not
// store".
func responseTTL(h http.Header, now time.Time) (ttl time.Duration, ok bool) {
	d := directives(h)
	for _, name := range []string{"s-maxage", "max-age"} {
		if v, found := d[name]; found {
			s, _ := seconds(v) // unparsable: stale at once (RFC 9111 §4.2.1)
			return s, true
		}
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0, true // an invalid Expires means "already expired"
		}
		base := now
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			base = date
		}
		return t.Sub(base), true
	}
	return 0, false
}

// varyNames returns the canonical, sorted, distinct field names of h's
// Vary, and whether it lists "*".
func varyNames(h http.Header) (names []string, star bool) {
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			name := strings.TrimSpace(part)
			switch {
			case name == "":
			case name == "*":
				star = true
			default:
				name = textproto.CanonicalMIMEHeaderKey(name)
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
	}
	slices.Sort(names)
	return names, star
}

// hopByHop are the fields that concern one connection, never replayed
// (RFC 9110 §7.6.1, and the older ones net/http/httputil drops too).
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// notReplayed are fields the cache computes on every reply.
var notReplayed = map[string]bool{"Content-Length": true, "Cache-Status": true, "Age": true}

// storedHeader returns what of snap (the header at WriteHeader) is stored:
// no hop-by-hop field (nor one named by Connection), no field computed on
// replay, and no field that was already in pre, with the same values,
// before the handler ran (an enclosing middleware's, which it sets again
// on every request). Every value slice is clipped, so that appending to
// one never writes into a shared record.
func storedHeader(snap, pre http.Header) http.Header {
	conn := map[string]bool{}
	for _, v := range snap.Values("Connection") {
		for part := range strings.SplitSeq(v, ",") {
			if name := strings.TrimSpace(part); name != "" {
				conn[textproto.CanonicalMIMEHeaderKey(name)] = true
			}
		}
	}
	out := make(http.Header, len(snap))
	for k, vs := range snap {
		if hopByHop[k] || notReplayed[k] || conn[k] || len(vs) == 0 || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if pv, ok := pre[k]; ok && slices.Equal(pv, vs) {
			continue
		}
		out[k] = slices.Clip(slices.Clone(vs))
	}
	return out
}

// computeETag returns a strong ETag for body.
func computeETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// notModified evaluates r's If-None-Match, else its If-Modified-Since,
// against a 200 response's ETag and Last-Modified (RFC 9110 §13.2.2).
func notModified(r *http.Request, etag, lastModified string) bool {
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 {
		return etag != "" && etagListMatches(inm, etag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || lastModified == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(lastModified)
	return err == nil && !lm.After(t)
}

// etagListMatches reports whether an If-None-Match list matches etag by
// the weak comparison.
func etagListMatches(list []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, v := range list {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "*" || strings.TrimPrefix(part, "W/") == want {
				return true
			}
		}
	}
	return false
}

// writeNotModified answers 304 with h, less the representation's content
// fields, as net/http's ServeContent does.
func writeNotModified(w http.ResponseWriter) {
	h := w.Header()
	delete(h, "Content-Type")
	delete(h, "Content-Length")
	delete(h, "Content-Encoding")
	if h.Get("Etag") != "" {
		delete(h, "Last-Modified")
	}
	w.WriteHeader(http.StatusNotModified)
}

// bodyAllowed reports whether a response of status has a body.
func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// neverCache marks h as Django's never_cache does.
func neverCache(h http.Header) {
	h.Set("Cache-Control", "max-age=0, no-cache, no-store, must-revalidate, private")
	if h.Get("Expires") == "" {
		h.Set("Expires", time.Now().UTC().Format(http.TimeFormat))
	}
}

// addBrowserMaxAge lets browsers keep a response for remaining, unless it
// says how long itself.
func addBrowserMaxAge(h http.Header, remaining time.Duration, now time.Time) {
	d := directives(h)
	if _, ok := d["max-age"]; ok {
		return
	}
	for _, k := range []string{"no-cache", "no-store", "private"} {
		if _, ok := d[k]; ok {
			return
		}
	}
	secs := strconv.FormatInt(int64(remaining/time.Second), 10)
	if cc := h.Get("Cache-Control"); cc != "" {
		h.Set("Cache-Control", cc+", max-age="+secs)
	} else {
		h.Set("Cache-Control", "max-age="+secs)
	}
	if h.Get("Expires") == "" {
		h.Set("Expires", now.Add(remaining).UTC().Format(http.TimeFormat))
	}
}

// status builds a Cache-Status member (RFC 9211).
type status struct {
	hit       bool
	fwd       string // miss, stale, vary-miss, uri-miss, bypass
	fwdStatus int
	stored    bool
	collapsed bool
	ttl       time.Duration // remaining freshness; < 0: not given
	detail    Reason
}

func (s status) String() string {
	var b strings.Builder
	b.WriteString(cacheName)
	if s.hit {
		b.WriteString("; hit")
	}
	if s.fwd != "" {
		b.WriteString("; fwd=")
		b.WriteString(s.fwd)
	}
	if s.fwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(s.fwdStatus))
	}
	if s.stored {
		b.WriteString("; stored")
	}
	if s.collapsed {
		b.WriteString("; collapsed")
	}
	if s.ttl >= 0 && (s.hit || s.stored) {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(int64(s.ttl/time.Second), 10))
	}
	if s.detail != "" {
		b.WriteString("; detail=")
		b.WriteString(string(s.detail))
	}
	return b.String()
}

// hasIdentity reports whether r carries an identity: one of names, or a
// TLS client certificate.
func hasIdentity(r *http.Request, names []string) bool {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return true
	}
	for _, n := range names {
		if len(r.Header[n]) > 0 {
			return true
		}
	}
	return false
}
