package main

import (
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

// TestParseCheck checks what inspect makes of keys.ParseQuery's arguments
// (keys tests the decoding itself).
func TestParseCheck(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	b, err := keys.AppendQuery(nil, "postgres", "id", "SELECT $1", []any{nil, true, 42, uint64(1) << 63, 1.5, "x", []byte("b"), []byte(nil), at, sql.Named("n", 9)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseCheck(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Format != keys.FormatVersion || q.Dialect != "postgres" || q.Identity != "id" || q.SQL != "SELECT $1" {
		t.Errorf("header: %+v", q)
	}
	var got []string
	for _, a := range q.Args {
		got = append(got, a.display())
	}
	want := []string{"NULL", "bool true", "int64 42", "uint64 9223372036854775808", "float64 1.5", `string "x"`, `[]byte "b"`, "[]byte(nil)",
		"time 2024-05-06T07:08:09Z", "@n = int64 9"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("displayed as\n%q\nwant\n%q", got, want)
	}
	if _, err := parseCheck(b[:len(b)-1]); err == nil {
		t.Error("truncated: no error")
	}
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
