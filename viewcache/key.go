package viewcache

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Keys. A response is found in two steps, as Django's cache middleware does:
//
//   - the base key names the URL as the request asks for it: the method
//     class (GET and HEAD share one), the scheme, the host, the escaped
//     path, the query parameters in canonical order, the forwarding headers
//     a proxy sets (X-Forwarded-Host, X-Forwarded-Proto, Forwarded: a
//     response built from them is then never served for a request without
//     them), Config.Key's value and the route's VaryOn value;
//   - the full key adds the request's values of the headers named by the
//     response's Vary. A response without Vary is stored at its base key;
//     one with Vary at its full key, and the base key then holds a small
//     vary record: the header names (and the tags last stored, as a hint).
//
// The key text is hashed (SHA-256, 192 bits kept) into the store key, and
// kept whole in the record: a hit must match it exactly.

// forwardingHeaders are the request headers that change what URL a
// response is built for behind a proxy: they are part of every key, so that
// a response built from a forged value is only ever served to requests
// forging the same.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"}

// baseKey is a request's base key.
type baseKey struct {
	text  string // the canonical key text
	store string // the store key
}

// newBaseKey returns the base key of r for a route of kind ('p': Page,
// 'm': Middleware), with Config.Key's value ck and the VaryOn value vo
// (hasVO: the route has VaryOn).
func (c *Cache) newBaseKey(kind byte, r *http.Request, ck, vo string, hasVO bool) baseKey {
	b := make([]byte, 0, 128+len(r.URL.RawQuery))
	b = append(b, kind, 'G') // method class: GET and HEAD
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b = appendPart(b, scheme)
	b = appendPart(b, canonicalHost(r.Host, scheme))
	b = appendPart(b, r.URL.EscapedPath())
	b = appendPart(b, canonicalQuery(r.URL.RawQuery))
	for _, h := range forwardingHeaders {
		b = appendPart(b, strings.Join(r.Header.Values(h), ","))
	}
	b = appendPart(b, ck)
	if hasVO {
		b = append(b, 'v')
		b = appendPart(b, vo)
	}
	text := string(b)
	return baseKey{text: text, store: c.hashKey(text)}
}

// fullKey returns the text and store key for base plus r's values of the
// headers vary (sorted canonical names). With no vary it is base itself.
func (c *Cache) fullKey(base baseKey, vary []string, r *http.Request) (text, key string) {
	if len(vary) == 0 {
		return base.text, base.store
	}
	b := []byte(base.text)
	b = append(b, 'V')
	for _, h := range vary {
		b = appendPart(b, h)
		b = appendPart(b, strings.Join(r.Header.Values(h), ","))
	}
	text = string(b)
	return text, c.hashKey(text)
}

func (c *Cache) hashKey(text string) string {
	sum := sha256.Sum256([]byte(text))
	return c.prefix + ":p1:" + base64.RawURLEncoding.EncodeToString(sum[:24])
}

func appendPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// canonicalHost lower-cases host and drops the scheme's default port.
func canonicalHost(host, scheme string) string {
	host = strings.ToLower(host)
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return host
}

// canonicalQuery returns the query with its parameters sorted by name
// (stably: repeated parameters keep their order, since ?tag=a&tag=b and
// ?tag=b&tag=a may mean different things) and each name and value
// re-escaped from its decoded form, so that ?a=1&b=2 and ?b=2&a=1, or
// ?q=a%20b and ?q=a+b, share one key. A part that does not decode is kept
// as it is. Empty parts (a&&b) are dropped, as url.ParseQuery drops them.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type pair struct{ k, v string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = url.QueryEscape(dk)
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = url.QueryEscape(dv)
		}
		pairs = append(pairs, pair{k, v})
	}
	if len(pairs) > 1 && !sort.SliceIsSorted(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k }) {
		slices.SortStableFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for i, p := range pairs {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(p.k)
		sb.WriteByte('=')
		sb.WriteString(p.v)
	}
	return sb.String()
}
