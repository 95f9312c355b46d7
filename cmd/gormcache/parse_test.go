package main

import (
	"bytes"
	"database/sql"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/keys"
	"github.com/redis/go-redis/v9"
)

func TestParseCheck(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, paris)
	type status string
	for _, tc := range []struct {
		name string
		args []any
		want []canonicalArg
	}{
		{"none", nil, nil},
		{"scalars", []any{nil, true, false, 42, int8(-3), uint64(1) << 63, 1.5, float32(0.25), "x", []byte("b"), []byte(nil), []byte{}},
			[]canonicalArg{
				{Type: "nil"}, {Type: "bool", Value: true}, {Type: "bool", Value: false},
				{Type: "int64", Value: int64(42)}, {Type: "int64", Value: int64(-3)}, {Type: "uint64", Value: uint64(1) << 63},
				{Type: "float64", Value: 1.5}, {Type: "float64", Value: 0.25}, {Type: "string", Value: "x"},
				{Type: "[]byte", Value: []byte("b")}, {Type: "[]byte", Value: []byte(nil)}, {Type: "[]byte", Value: []byte{}},
			}},
		{"named types and pointers", []any{status("open"), ptr(7)},
			[]canonicalArg{{Type: "string", Value: "open"}, {Type: "int64", Value: int64(7)}}},
		{"named argument", []any{sql.Named("id", 9)}, []canonicalArg{{Name: "id", Type: "int64", Value: int64(9)}}},
		{"time", []any{at}, []canonicalArg{{Type: "time", Value: timeArg{T: at, Location: paris.String()}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := keys.AppendQuery(nil, "postgres", "postgres:h/5432/db/u/public", "SELECT * FROM t WHERE a = $1", tc.args)
			if err != nil {
				t.Fatal(err)
			}
			q, err := parseCheck(b)
			if err != nil {
				t.Fatal(err)
			}
			if q.Dialect != "postgres" || q.Identity != "postgres:h/5432/db/u/public" || q.SQL != keys.Normalize("SELECT * FROM t WHERE a = $1") || q.Format != keys.FormatVersion {
				t.Errorf("header: %+v", q)
			}
			if len(q.Args) != len(tc.want) {
				t.Fatalf("args: %+v, want %+v", q.Args, tc.want)
			}
			for i, a := range q.Args {
				w := tc.want[i]
				if ta, ok := a.Value.(timeArg); ok {
					wt := w.Value.(timeArg)
					if !ta.T.Equal(wt.T) || ta.Location != wt.Location || ta.T.Format(time.RFC3339Nano) != wt.T.Format(time.RFC3339Nano) {
						t.Errorf("arg %d = %v, want %v", i, ta, wt)
					}
					continue
				}
				if !reflect.DeepEqual(a, w) {
					t.Errorf("arg %d = %#v, want %#v", i, a, w)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseCheckRejects(t *testing.T) {
	t.Parallel()
	good, _ := keys.AppendQuery(nil, "sqlite", "id", "SELECT 1", []any{1, "x"})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"not Q":          append([]byte{'X'}, good[1:]...),
		"other format":   append([]byte{'Q', 99}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"unknown tag":    append(append([]byte{}, good[:len(good)-3]...), 0x7f, 1, 'x'),
	} {
		if _, err := parseCheck(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseCheck(f *testing.F) {
	for _, args := range [][]any{nil, {1, "x", nil, true, 1.5, []byte("b")}, {time.Unix(0, 0).UTC()}, {sql.Named("a", "b")}} {
		b, err := keys.AppendQuery(nil, "postgres", "id", "SELECT $1", args)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseCheck(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes. Times aside: arbitrary
		// bytes can name a location with an offset it never has, which no
		// time.Time encodes (TestParseCheck covers real times).
		args := make([]any, len(q.Args))
		for i, a := range q.Args {
			v := a.Value
			if _, ok := v.(timeArg); ok {
				return
			}
			if a.Name != "" {
				v = sql.Named(a.Name, v)
			}
			args[i] = v
		}
		again, err := keys.AppendQuery(nil, q.Dialect, q.Identity, q.SQL, args)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", q, err)
		}
		if keys.Normalize(q.SQL) == q.SQL && !bytes.Equal(again, b) {
			t.Fatalf("round trip differs:\n%x\n%x", b, again)
		}
	})
}

func TestParseStoreURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url                 string
		kind, mode, desc    string
		hosts               []string
		prefix, master, dir string
		redisURL            string // what go-redis gets
	}{
		{url: "redis://127.0.0.1:6379", kind: kindRedis, mode: redisSingle, desc: "redis at 127.0.0.1:6379",
			hosts: []string{"127.0.0.1:6379"}, redisURL: "redis://127.0.0.1:6379"},
		{url: "redis://localhost", kind: kindRedis, mode: redisSingle, hosts: []string{"localhost:6379"}},
		{url: "rediss://u:p%40ss@h:6380/2?prefix=app:&dial_timeout=2s", kind: kindRedis, mode: redisSingle, prefix: "app:",
			desc: `redis at h:6380 db 2 (prefix "app:")`, hosts: []string{"h:6380"}, redisURL: "rediss://u:p%40ss@h:6380/2?dial_timeout=2s"},
		{url: "redis+cluster://a:7000,b:7001?prefix=x:", kind: kindRedis, mode: redisCluster, prefix: "x:",
			desc: `redis cluster at a:7000,b:7001 (prefix "x:")`, hosts: []string{"a:7000", "b:7001"}, redisURL: "redis://a:7000?addr=b%3A7001"},
		{url: "redis://a:7000?cluster=true", kind: kindRedis, mode: redisCluster, hosts: []string{"a:7000"}},
		{url: "redis+sentinel://s1,s2:26380/1?master=mymaster", kind: kindRedis, mode: redisSentinel, master: "mymaster",
			desc: `redis master "mymaster" through sentinel at s1:26379,s2:26380`, hosts: []string{"s1:26379", "s2:26380"},
			redisURL: "redis://s1:26379/1?addr=s2%3A26380&master_name=mymaster"},
		{url: "redis://s1:26379?master=m", kind: kindRedis, mode: redisSentinel, master: "m", hosts: []string{"s1:26379"}},
		{url: "memcache://m1,m2:11212?prefix=p:", kind: kindMemcache, prefix: "p:", desc: `memcached at m1:11211,m2:11212 (prefix "p:")`,
			hosts: []string{"m1:11211", "m2:11212"}},
		{url: "file:///var/cache/app", kind: kindFile, dir: "/var/cache/app", desc: "file store /var/cache/app"},
		{url: "file://localhost/var/cache/app", kind: kindFile, dir: "/var/cache/app"},
	} {
		s, err := parseStoreURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if s.kind != tc.kind || s.mode != tc.mode || s.prefix != tc.prefix || s.master != tc.master || s.dir != tc.dir ||
			(tc.hosts != nil && !reflect.DeepEqual(s.hosts, tc.hosts)) {
			t.Errorf("%s: %+v", tc.url, s)
		}
		if strings.Contains(s.String(), "p@ss") || strings.Contains(s.String(), "p%40ss") {
			t.Errorf("%s: the description shows the password: %s", tc.url, s)
		}
		if tc.desc != "" && s.String() != tc.desc {
			t.Errorf("%s: described as %q, want %q", tc.url, s.String(), tc.desc)
		}
		if tc.redisURL != "" && s.redisURL() != tc.redisURL {
			t.Errorf("%s: go-redis URL %q, want %q", tc.url, s.redisURL(), tc.redisURL)
		}
		if s.kind == kindRedis {
			rdb, err := s.redisClient(time.Second)
			if err != nil {
				t.Errorf("%s: client: %v", tc.url, err)
				continue
			}
			switch rdb.(type) {
			case *redis.Client:
				if s.mode == redisCluster {
					t.Errorf("%s: a single-node client for a cluster", tc.url)
				}
			case *redis.ClusterClient:
				if s.mode != redisCluster {
					t.Errorf("%s: a cluster client", tc.url)
				}
			}
			rdb.Close()
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://u:secret@h:1/0": "redis://u:xxxxx@h:1/0",
		"redis://h:1":            "redis://h:1",
		"redis://:secret@h":      "redis://:xxxxx@h",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"redis://a:1/2?prefix=x", "redis+cluster://a,b:2", "memcache://m", "file:///x", "rediss://u:p@[::1]:6379", "redis+sentinel://s?master=m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := parseStoreURL(raw)
		if err != nil {
			return
		}
		_ = s.String()
		if s.kind == kindRedis {
			_ = s.redisURL()
		}
	})
}

func TestParseJSONValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]any{
		`42`:                  int64(42),
		`-7`:                  int64(-7),
		`4.5`:                 4.5,
		`1e3`:                 1000.0,
		`"42"`:                "42",
		`null`:                nil,
		`true`:                true,
		`[1, "a"]`:            []any{int64(1), "a"},
		`{"a": {"b": 2}}`:     map[string]any{"a": map[string]any{"b": int64(2)}},
		`9223372036854775808`: 9223372036854775808.0,
	} {
		got, err := parseJSONValue(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseJSONValue(%s) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `hello`, `1 2`, `{"a":1} x`, `[1,`} {
		if _, err := parseJSONValue(bad); err == nil {
			t.Errorf("parseJSONValue(%q): no error", bad)
		}
	}
}

func newTestFlagSet(g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

func TestParseInterleaved(t *testing.T) {
	t.Parallel()
	g := &globals{prefix: "gc", timeout: time.Second}
	for _, tc := range []struct {
		args []string
		pos  []string
		ttl  string
	}{
		{[]string{"a", "--ttl", "1m", "b"}, []string{"a", "b"}, "1m"},
		{[]string{"--ttl=2m", "a"}, []string{"a"}, "2m"},
		{[]string{"a", "--", "-5", "--ttl"}, []string{"a", "-5", "--ttl"}, ""},
	} {
		cmdFS := newTestFlagSet(g)
		ttl := cmdFS.String("ttl", "", "")
		pos, err := parseInterleaved(cmdFS, tc.args)
		if err != nil || !reflect.DeepEqual(pos, tc.pos) || *ttl != tc.ttl {
			t.Errorf("parseInterleaved(%q) = %q, ttl %q, %v", tc.args, pos, *ttl, err)
		}
	}
}
