package viewcache

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// capture is the ResponseWriter a cacheable request's handler writes to.
// It buffers the response until the handler returns, unless the response
// turns out unstorable (its status or headers say so, it grows past
// MaxBytes, or the handler flushes or hijacks): then it writes what it
// holds to the real writer and streams the rest straight through.
type capture struct {
	w       http.ResponseWriter
	max     int
	refusal func(status int, h http.Header) Reason
	// onStream runs once when the response starts streaming (a
	// coalescing leader releases its followers then); its result is the
	// Cache-Status given to the streamed response.
	onStream func(reason Reason) string

	wroteHeader bool
	status      int
	snap        http.Header // the header at WriteHeader
	buf         bytes.Buffer
	streaming   bool
	reason      Reason // why the response streams (not stored)
}

var (
	_ http.ResponseWriter = (*capture)(nil)
	_ http.Flusher        = (*capture)(nil)
	_ http.Hijacker       = (*capture)(nil)
)

func (c *capture) Header() http.Header { return c.w.Header() }

func (c *capture) WriteHeader(code int) {
	if c.streaming && !c.wroteHeader {
		c.w.WriteHeader(code)
		c.wroteHeader = true
		return
	}
	if c.wroteHeader {
		if c.streaming {
			c.w.WriteHeader(code) // let net/http log the superfluous call
		}
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		c.w.WriteHeader(code) // informational (103 Early Hints): sent as it comes
		return
	}
	c.wroteHeader = true
	c.status = code
	c.snap = c.w.Header().Clone()
	if c.snap == nil {
		c.snap = http.Header{}
	}
	if reason := c.refusal(code, c.snap); reason != "" {
		c.stream(reason)
		return
	}
	if cl := c.snap.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > int64(c.max) {
			c.stream(ReasonTooLarge)
		}
	}
}

func (c *capture) Write(p []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if c.streaming {
		return c.w.Write(p)
	}
	if !bodyAllowed(c.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if c.buf.Len()+len(p) > c.max {
		c.stream(ReasonTooLarge)
		return c.w.Write(p)
	}
	return c.buf.Write(p)
}

// WriteString lets io.WriteString skip a conversion.
func (c *capture) WriteString(s string) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if c.streaming {
		return io.WriteString(c.w, s)
	}
	if !bodyAllowed(c.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if c.buf.Len()+len(s) > c.max {
		c.stream(ReasonTooLarge)
		return io.WriteString(c.w, s)
	}
	return c.buf.WriteString(s)
}

// Flush streams the response: a handler that flushes wants its client to
// see what it wrote so far (server-sent events, progress).
func (c *capture) Flush() { _ = c.FlushError() }

// FlushError is Flush for http.ResponseController.
func (c *capture) FlushError() error {
	if !c.streaming {
		if !c.wroteHeader {
			c.WriteHeader(http.StatusOK)
		}
		c.stream(ReasonFlushed)
	}
	return http.NewResponseController(c.w).Flush()
}

// Hijack hands the connection over, after writing what the handler wrote
// so far, if anything.
func (c *capture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !c.streaming {
		if c.wroteHeader {
			c.stream(ReasonHijacked)
		} else {
			c.streaming, c.reason = true, ReasonHijacked
			if c.onStream != nil {
				c.onStream(ReasonHijacked)
			}
		}
	}
	return http.NewResponseController(c.w).Hijack()
}

// Unwrap lets http.ResponseController reach the real writer (deadlines,
// full duplex).
func (c *capture) Unwrap() http.ResponseWriter { return c.w }

// stream stops buffering: it writes the header as it was at WriteHeader,
// and what was buffered, to the real writer. c.wroteHeader is true.
func (c *capture) stream(reason Reason) {
	c.streaming, c.reason = true, reason
	cs := ""
	if c.onStream != nil {
		cs = c.onStream(reason)
	}
	h := c.w.Header()
	restore(h, c.snap)
	if cs != "" {
		h.Add("Cache-Status", cs)
	}
	c.w.WriteHeader(c.status)
	if c.buf.Len() > 0 {
		_, _ = c.w.Write(c.buf.Bytes())
	}
	c.buf = bytes.Buffer{}
}

// restore makes h what it was at WriteHeader (snap): net/http ignores
// changes made afterwards, and so does the cache; trailers (keys with
// http.TrailerPrefix) are kept.
func restore(h, snap http.Header) {
	for k := range h {
		if _, ok := snap[k]; !ok && !strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
		}
	}
	for k, v := range snap {
		h[k] = v
	}
}
