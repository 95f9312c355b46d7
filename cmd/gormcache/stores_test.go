package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/lowlevel"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/redisstore"
)

// stores are the store URLs the store-wide tests run on.
var stores = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"redis", func(t testing.TB) string { u, _, _ := redisStore(t); return u }},
	{"redis-cluster", clusterStore},
	{"redis-sentinel", sentinelStore},
	{"memcache", memcacheStore},
	{"file", fileStore},
}

func TestInvalidateAndFlush(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			url := s.url(t)
			before := versionsOf(t, url, "users", "orders")
			if len(before) != 3 || before["users"] == 0 || before["orders"] == 0 || before[store.GlobalTag] == 0 {
				t.Fatalf("versions: %v", before)
			}
			if again := versionsOf(t, url, "users", "orders"); !reflect.DeepEqual(again, before) {
				t.Fatalf("versions changed without a write: %v, then %v", before, again)
			}

			// Names are normalised as the plugin does.
			r := ok(t, "invalidate", "--store", url, `public."Users"`)
			if !strings.Contains(r.stdout, "users") {
				t.Errorf("invalidate output:\n%s", r.stdout)
			}
			after := versionsOf(t, url, "users", "orders")
			if after["users"] == before["users"] {
				t.Errorf("invalidate users left its version at %d", after["users"])
			}
			if after["orders"] != before["orders"] || after[store.GlobalTag] != before[store.GlobalTag] {
				t.Errorf("invalidate users changed other versions: %v → %v", before, after)
			}

			r = ok(t, "flush", "--store", url)
			if !strings.Contains(r.stdout, "flushed") {
				t.Errorf("flush output:\n%s", r.stdout)
			}
			flushed := versionsOf(t, url, "users", "orders")
			if flushed[store.GlobalTag] == after[store.GlobalTag] {
				t.Errorf("flush left %q at %d", store.GlobalTag, flushed[store.GlobalTag])
			}
			if flushed["users"] != after["users"] || flushed["orders"] != after["orders"] {
				t.Errorf("flush changed table versions: %v → %v", after, flushed)
			}

			// Text output: one line per tag.
			r = ok(t, "versions", "--store", url, "users")
			if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "users ") || !strings.HasPrefix(lines[1], "* ") {
				t.Errorf("versions output:\n%s", r.stdout)
			}
		})
	}
}

// TestInvalidateWrongPrefix: a bump under a prefix the application never
// used changes nothing for it. invalidate and flush say so on stderr and exit
// 4 when "*" had no version; a table without one is a warning (exit 0), an
// error with --strict.
func TestInvalidateWrongPrefix(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		if s.name == "file" {
			continue // a file store cannot tell whether a tag has a version
		}
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			url := s.url(t)
			// As the application would: "*" and users get versions.
			versionsOf(t, url, "users")
			// prefix= is the URL's last parameter: these prefixes extend the
			// test's own, whose keys its cleanup deletes.
			wrong, other := url+"elsewhere:", url+"other:"

			for _, args := range [][]string{{"invalidate", "users"}, {"invalidate", "--json", "users", "orders"}, {"flush"}} {
				r := gc(t, nil, append(args, "--store", wrong)...)
				if r.code != exitNoTarget || !strings.Contains(r.stderr, `no version of "*" under prefix "`) || !strings.Contains(r.stderr, "check ?prefix=") {
					t.Errorf("%q under a prefix the application never used: want exit %d and a warning: %s", args, exitNoTarget, r)
				}
			}

			// The application's prefix, a table it has not cached: a warning.
			r := gc(t, nil, "invalidate", "--store", url, "users", "orders")
			if r.code != 0 || !strings.Contains(r.stderr, "warning: no version of orders under prefix") || strings.Contains(r.stderr, "users") {
				t.Errorf("invalidate of a table not cached yet: want exit 0 and a warning about orders alone: %s", r)
			}
			if r := gc(t, nil, "invalidate", "--strict", "--store", url, "users", "articles"); r.code != exitNoTarget || !strings.Contains(r.stderr, "no version of articles") {
				t.Errorf("invalidate --strict of a table not cached yet: want exit %d: %s", exitNoTarget, r)
			}
			if r := gc(t, nil, "invalidate", "--strict", "--store", url, "users", "orders", "articles"); r.code != 0 || r.stderr != "" {
				t.Errorf("invalidate --strict of tables with versions: want exit 0, no warning: %s", r)
			}

			// versions creates what it reads: it warns, once.
			if r := gc(t, nil, "versions", "--store", other, "users"); r.code != 0 || !strings.Contains(r.stderr, `warning: no version of "*"`) {
				t.Errorf("versions under a prefix the application never used: want exit 0 and a warning: %s", r)
			}
			if r := gc(t, nil, "versions", "--store", other, "users"); r.code != 0 || r.stderr != "" {
				t.Errorf("versions again: want no warning: %s", r)
			}
		})
	}
}

func TestGetSet(t *testing.T) {
	t.Parallel()
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			url := s.url(t)
			value := `{"total": 42, "currency": "EUR", "items": [1, 2.5, "x", null, true]}`
			r := ok(t, "set", "--store", url, "report:daily", value, "--ttl", "5m", "--tables", "orders,public.Items")
			if !strings.Contains(r.stdout, `stored "report:daily"`) || !strings.Contains(r.stdout, "items, orders") {
				t.Errorf("set output:\n%s", r.stdout)
			}
			r = ok(t, "get", "--store", url, "report:daily", "--tables", "items,orders")
			var got, want any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("get output is not JSON: %v\n%s", err, r.stdout)
			}
			_ = json.Unmarshal([]byte(value), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("get = %v, want %v", got, want)
			}

			// Other tables: a miss (exit 3) that says why.
			r = gc(t, nil, "get", "--store", url, "report:daily", "--tables", "orders")
			if r.code != exitNotFound || !strings.Contains(r.stderr, "other tables") {
				t.Errorf("get with other tables: %s", r)
			}
			// A write to one of its tables makes it stale.
			ok(t, "invalidate", "--store", url, "items")
			r = gc(t, nil, "get", "--store", url, "report:daily", "--tables", "items,orders")
			if r.code != exitNotFound || !strings.Contains(r.stderr, "no live value") {
				t.Errorf("get after invalidate: %s", r)
			}

			// Scalars, --string, negative numbers after --, delete.
			ok(t, "set", "--store", url, "--", "balance", "-17")
			if r := ok(t, "get", "--store", url, "balance"); strings.TrimSpace(r.stdout) != "-17" {
				t.Errorf("get balance = %q", r.stdout)
			}
			ok(t, "set", "--store", url, "--string", "greeting", "hello, world", "--ttl", "forever")
			if r := ok(t, "get", "--store", url, "greeting"); strings.TrimSpace(r.stdout) != `"hello, world"` {
				t.Errorf("get greeting = %q", r.stdout)
			}
			ok(t, "delete", "--store", url, "greeting", "balance")
			if r := gc(t, nil, "get", "--store", url, "greeting"); r.code != exitNotFound {
				t.Errorf("get after delete: %s", r)
			}
		})
	}
}

// appReport is a value the application stores with package lowlevel.
type appReport struct {
	Total    int64
	Currency string
	Lines    []string
}

// TestLowLevelInterop: what the CLI sets, the application reads with its
// own type; what the application sets, the CLI prints.
func TestLowLevelInterop(t *testing.T) {
	t.Parallel()
	url, prefix, rdb := redisStore(t)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := lowlevel.NewWithStore(st, lowlevel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	ok(t, "set", "--store", url, "--tables", "orders", "r1", `{"Total": 42, "Currency": "EUR", "Lines": ["a", "b"]}`)
	got, found, err := lowlevel.Get[appReport](ctx, c, "r1", "orders")
	if err != nil || !found {
		t.Fatalf("lowlevel.Get of what the CLI set: found %v, %v", found, err)
	}
	if want := (appReport{42, "EUR", []string{"a", "b"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("lowlevel.Get = %+v, want %+v", got, want)
	}
	ok(t, "set", "--store", url, "n", "41")
	if n, err := c.Incr(ctx, "n", 1); err != nil || n != 42 {
		t.Errorf("Incr of the CLI's integer = %d, %v", n, err)
	}

	if err := lowlevel.Set(ctx, c, "r2", appReport{7, "USD", nil}, time.Minute, "orders", "items"); err != nil {
		t.Fatal(err)
	}
	r := ok(t, "get", "--store", url, "r2", "--tables", "orders,items")
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if m["Total"] != 7.0 || m["Currency"] != "USD" {
		t.Errorf("get of the application's value: %v", m)
	}
	// inspect shows a low-level entry too, with the command to read it.
	r = ok(t, "inspect", "--store", url, "ll:r2")
	for _, want := range []string{"low-level entry", "items", "orders", "fresh", "gormcache get r2 --tables items,orders", `"Currency": "USD"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect ll:r2 lacks %q:\n%s", want, r.stdout)
		}
	}
}
