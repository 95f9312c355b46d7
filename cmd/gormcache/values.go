package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/plugin"
)

const lowLevelHelp = `
Values are encoded as package lowlevel encodes them (msgpack, in an envelope
that records their tables and versions), so the application reads what set
stores with lowlevel.Get[T], and get prints what the application stored, as
JSON: structs as objects of their (msgpack) field names, []byte as base64.
set decodes VALUE as JSON: an integer is stored as an int64 (so that
Cache.Incr and Get[int] work on it), any other number as a float64, an object
as a map with string keys, an array as a slice, a string as a string; --string
stores VALUE as a string without decoding it.

A low-level entry depends on the tables named with --tables (as the
application names them: names are normalised, order does not matter), on its
cache's prefix (--ll-prefix, lowlevel.Config.Prefix, "ll" by default) and on
"*": a write to one of the tables, gormcache invalidate or gormcache flush
makes it stale. A read that names other tables than the entry was stored with
is a miss.`

var getCommand = &command{
	name:     "get",
	args:     "KEY",
	summary:  "print a low-level entry (package lowlevel) as JSON",
	notFound: true,
	help: `
Reads the low-level entry KEY, as lowlevel.Get does, and prints its value as
JSON. Exits 3 when there is no live value: absent, expired, stale, or stored
with other tables than --tables (gormcache inspect ll:KEY shows them).
` + lowLevelHelp,
	examples: `  gormcache get report:daily --tables orders
  gormcache get --ll-prefix myapp counter:visits`,
	setup: func(fs *flag.FlagSet) runFunc {
		tables := fs.String("tables", "", "the `TABLES` the value was stored with, comma-separated")
		llPrefix := fs.String("ll-prefix", lowlevel.DefaultPrefix, "the low-level cache's `PREFIX` (lowlevel.Config.Prefix)")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("get takes one KEY (got %d arguments)", len(args))
			}
			c, t, err := openLowLevel(ctx, e, *llPrefix)
			if err != nil {
				return err
			}
			defer t.Close()
			tabs := splitList(*tables)
			v, ok, err := lowlevel.Get[any](ctx, c, args[0], tabs...)
			if err != nil {
				return lowLevelErr(t, err)
			}
			if !ok {
				why := "absent, expired or stale"
				if s := c.Stats(); s.Mismatches > 0 {
					why = "the entry was stored with other tables than --tables"
				} else if s.CorruptEntries > 0 {
					why = "the entry does not decode (it was deleted)"
				}
				return &notFoundError{msg: fmt.Sprintf("no live value under %q in %s: %s — gormcache inspect %s:%s shows what is stored", args[0], t.describe(), why, *llPrefix, args[0])}
			}
			return writeJSON(e.stdout, jsonable(v))
		}
	},
}

var setCommand = &command{
	name:    "set",
	args:    "KEY VALUE",
	summary: "store a JSON value as a low-level entry",
	help: `
Stores VALUE under KEY as lowlevel.Set does, stamped with the current
versions of --tables. If a write to one of the tables is in flight, nothing
is stored (and the key's old value is deleted): set exits 1 and says so.
A VALUE that starts with "-" (a negative number) must follow "--".
` + lowLevelHelp,
	examples: `  gormcache set report:daily '{"total": 42, "currency": "EUR"}' --ttl 1h --tables orders,order_items
  gormcache set greeting --string 'hello, world' --ttl forever
  gormcache set --tables orders -- balance -17`,
	setup: func(fs *flag.FlagSet) runFunc {
		tables := fs.String("tables", "", "the `TABLES` the value depends on, comma-separated")
		ttl := fs.String("ttl", "0", "how long to keep it (`TTL`): a duration (90s, 5m, 1h), 0 for the cache's default (5m), or \"forever\"")
		llPrefix := fs.String("ll-prefix", lowlevel.DefaultPrefix, "the low-level cache's `PREFIX` (lowlevel.Config.Prefix)")
		asString := fs.Bool("string", false, "store VALUE as a string, without decoding it as JSON")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 {
				return usagef("set takes KEY and VALUE (got %d arguments); quote a JSON VALUE: '{\"a\": 1}'", len(args))
			}
			d, err := parseTTL(*ttl)
			if err != nil {
				return err
			}
			var v any = args[1]
			if !*asString {
				if v, err = parseJSONValue(args[1]); err != nil {
					return usagef("VALUE is not JSON (%v): quote strings ('\"text\"') or use --string", err)
				}
			}
			c, t, err := openLowLevel(ctx, e, *llPrefix)
			if err != nil {
				return err
			}
			defer t.Close()
			tabs := splitList(*tables)
			if err := lowlevel.Set[any](ctx, c, args[0], v, d, tabs...); err != nil {
				return lowLevelErr(t, err)
			}
			if c.Stats().NotStored > 0 {
				return fmt.Errorf("not stored: a write to one of %q is in flight (the table is held); try again when it has committed", tabs)
			}
			ttlText := "the cache's default (5m0s)"
			switch {
			case d == plugin.Forever:
				ttlText = "none (until invalidated or evicted)"
			case d > 0:
				ttlText = d.String()
			}
			norm, _ := tableTags(tabs)
			slices.Sort(norm)
			fmt.Fprintf(e.stdout, "stored %q in %s; tables: %s; TTL: %s\n", args[0], t.describe(), listOrNone(norm), ttlText)
			return nil
		}
	},
}

var deleteCommand = &command{
	name:    "delete",
	args:    "KEY…",
	summary: "delete low-level entries",
	help: `
Deletes the low-level entries KEY… (lowlevel.Cache.Delete). Absent keys are
not an error. To make query results stale, use invalidate or flush.`,
	examples: `  gormcache delete report:daily report:weekly
  gormcache delete --ll-prefix myapp counter:visits`,
	setup: func(fs *flag.FlagSet) runFunc {
		llPrefix := fs.String("ll-prefix", lowlevel.DefaultPrefix, "the low-level cache's `PREFIX` (lowlevel.Config.Prefix)")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("name at least one KEY")
			}
			c, t, err := openLowLevel(ctx, e, *llPrefix)
			if err != nil {
				return err
			}
			defer t.Close()
			if err := c.Delete(ctx, args...); err != nil {
				return lowLevelErr(t, err)
			}
			fmt.Fprintf(e.stdout, "deleted %d key(s) from %s\n", len(args), t.describe())
			return nil
		}
	},
}

func openLowLevel(ctx context.Context, e *env, prefix string) (*lowlevel.Cache, *target, error) {
	if prefix == "" {
		return nil, nil, usagef("--ll-prefix must not be empty")
	}
	if prefix == e.g.prefix {
		return nil, nil, usagef("--ll-prefix %q is the plugin's prefix: the low-level cache's must differ (lowlevel.Config.Prefix)", prefix)
	}
	t, err := e.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := lowlevel.NewWithStore(t.Store, lowlevel.Config{
		Prefix:       prefix,
		StoreTimeout: e.g.timeout,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Close()
		return nil, nil, usagef("%v", err)
	}
	return c, t, nil
}

func lowLevelErr(t *target, err error) error {
	if errors.Is(err, lowlevel.ErrInvalidArgument) {
		return usagef("%v", err)
	}
	return t.fail("lowlevel", err)
}

// parseTTL reads --ttl: a duration, 0, or "forever".
func parseTTL(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "forever", "none", "never":
		return plugin.Forever, nil
	case "0", "":
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usagef(`--ttl %q: give a positive duration (90s, 5m, 1h), 0 for the default, or "forever"`, s)
	}
	return d, nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

// parseJSONValue decodes one JSON value: integers as int64, other numbers
// as float64, objects as map[string]any, arrays as []any.
func parseJSONValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing characters after the value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// jsonable converts what msgpack decodes into what encoding/json encodes:
// maps with non-string keys get string keys; NaN and infinities become
// strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Sprint(x)
		}
	}
	return v
}

func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("the value cannot be printed as JSON: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
