package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/filestore"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// Kinds of store a URL names.
const (
	kindRedis    = "redis"
	kindMemcache = "memcache"
	kindFile     = "file"
)

// Modes of a Redis URL.
const (
	redisSingle   = "single"
	redisCluster  = "cluster"
	redisSentinel = "sentinel"
)

// storeSpec is a parsed store URL.
type storeSpec struct {
	kind   string
	mode   string // redis: redisSingle, redisCluster or redisSentinel
	tls    bool   // rediss
	user   *url.Userinfo
	hosts  []string // host:port, default ports filled in
	path   string   // redis: /db
	query  url.Values
	prefix string // the store's Config.Prefix; "" = its default
	master string // sentinel: the master's name
	dir    string // file: the directory
}

// parseStoreURL parses a --store URL. Its errors are usage errors.
func parseStoreURL(raw string) (*storeSpec, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, usagef("no store: give --store URL or set GORMCACHE_STORE (for example redis://127.0.0.1:6379, memcache://127.0.0.1:11211 or file:///var/cache/app)")
	}
	i := strings.Index(raw, "://")
	if i <= 0 {
		return nil, usagef("store URL %q has no scheme: write redis://host:port, memcache://host:port or file:///abs/dir", redactURL(raw))
	}
	scheme := strings.ToLower(raw[:i])
	s := &storeSpec{}
	switch scheme {
	case "file":
		return parseFileURL(raw)
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel":
		s.kind = kindRedis
		s.tls = strings.HasPrefix(scheme, "rediss")
		s.mode = redisSingle
		switch {
		case strings.HasSuffix(scheme, "+cluster"):
			s.mode = redisCluster
		case strings.HasSuffix(scheme, "+sentinel"):
			s.mode = redisSentinel
		}
	case "memcache", "memcached":
		s.kind = kindMemcache
	default:
		return nil, usagef("unknown store URL scheme %q: use redis://, rediss://, redis+cluster://, redis+sentinel://, memcache:// or file://", scheme)
	}

	rest := raw[i+3:]
	if j := strings.IndexByte(rest, '#'); j >= 0 {
		rest = rest[:j]
	}
	var rawQuery string
	if j := strings.IndexByte(rest, '?'); j >= 0 {
		rest, rawQuery = rest[:j], rest[j+1:]
	}
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest, s.path = rest[:j], rest[j:]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		u, err := url.Parse("x://" + rest[:at+1] + "h")
		if err != nil {
			return nil, usagef("store URL: cannot read the user and password (percent-encode special characters): %v", errors.Unwrap(err))
		}
		s.user, rest = u.User, rest[at+1:]
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, usagef("store URL: bad query %q: %v", rawQuery, err)
	}
	s.query = q
	if v, ok := q["prefix"]; ok {
		s.prefix = v[len(v)-1]
		q.Del("prefix")
	}

	defPort := "6379"
	switch {
	case s.kind == kindMemcache:
		defPort = "11211"
	case s.mode == redisSentinel:
		defPort = "26379"
	}
	for _, h := range strings.Split(rest, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, usagef("store URL %q: empty host (write host:port, several separated by commas)", redactURL(raw))
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defPort)
		}
		s.hosts = append(s.hosts, h)
	}

	if s.kind == kindMemcache {
		if s.user != nil {
			return nil, usagef("memcache URLs take no user or password")
		}
		if s.path != "" && s.path != "/" {
			return nil, usagef("memcache URL: unexpected path %q (write memcache://host:port[,host2:port][?prefix=…])", s.path)
		}
		for k := range q {
			return nil, usagef("memcache URL: unknown parameter %q (the only one is prefix)", k)
		}
		return s, nil
	}

	if v, ok := q["cluster"]; ok {
		b, err := strconv.ParseBool(v[len(v)-1])
		if err != nil {
			return nil, usagef("store URL: cluster=%q is not a boolean", v[len(v)-1])
		}
		q.Del("cluster")
		if b {
			if s.mode == redisSentinel {
				return nil, usagef("store URL: cluster=true with a Sentinel URL: Sentinel serves one master, not a cluster")
			}
			s.mode = redisCluster
		}
	}
	for _, name := range []string{"master", "master_name"} {
		if v, ok := q[name]; ok {
			s.master = v[len(v)-1]
			q.Del(name)
		}
	}
	if s.master != "" && s.mode == redisSingle {
		s.mode = redisSentinel // redis://sentinel:26379?master=name
	}
	switch s.mode {
	case redisSingle:
		if len(s.hosts) > 1 {
			return nil, usagef("store URL names %d hosts: use redis+cluster://%s for a cluster, or redis+sentinel://…?master=NAME for Sentinel", len(s.hosts), strings.Join(s.hosts, ","))
		}
	case redisCluster:
		if s.path != "" && s.path != "/" && s.path != "/0" {
			return nil, usagef("store URL: Redis Cluster has no numbered databases: drop %q", s.path)
		}
		s.path = ""
	case redisSentinel:
		if s.master == "" {
			return nil, usagef("a Sentinel URL needs ?master=NAME, the name of the master Sentinel monitors")
		}
	}
	return s, nil
}

// parseFileURL parses file:///abs/dir.
func parseFileURL(raw string) (*storeSpec, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, usagef("store URL: %v", err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, usagef("file URL %q names host %q: a file store is local; write file:///abs/dir (three slashes)", raw, u.Host)
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return nil, usagef("file URL %q needs an absolute path: file:///var/cache/app", raw)
	}
	if u.RawQuery != "" {
		return nil, usagef("file URL: unexpected query %q (a file store takes no parameters)", u.RawQuery)
	}
	return &storeSpec{kind: kindFile, dir: u.Path}, nil
}

// String describes the store for messages, without its password.
func (s *storeSpec) String() string {
	var d string
	switch {
	case s.kind == kindFile:
		return "file store " + s.dir
	case s.kind == kindMemcache:
		d = "memcached at " + strings.Join(s.hosts, ",")
	case s.mode == redisCluster:
		d = "redis cluster at " + strings.Join(s.hosts, ",")
	case s.mode == redisSentinel:
		d = fmt.Sprintf("redis master %q through sentinel at %s", s.master, strings.Join(s.hosts, ","))
	default:
		d = "redis at " + s.hosts[0]
		if db := strings.Trim(s.path, "/"); db != "" && db != "0" {
			d += " db " + db
		}
	}
	if s.prefix != "" {
		d += fmt.Sprintf(" (prefix %q)", s.prefix)
	}
	return d
}

// redisURL is the URL handed to go-redis's parsers: the first host, the
// others as addr= parameters, our own parameters removed.
func (s *storeSpec) redisURL() string {
	q := url.Values{}
	for k, v := range s.query {
		q[k] = v
	}
	for _, h := range s.hosts[1:] {
		q.Add("addr", h)
	}
	if s.mode == redisSentinel {
		q.Set("master_name", s.master)
	}
	u := url.URL{Scheme: "redis", User: s.user, Host: s.hosts[0], Path: s.path, RawQuery: q.Encode()}
	if s.tls {
		u.Scheme = "rediss"
	}
	return u.String()
}

// quietRedis drops go-redis's own log lines (dial failures): the CLI
// reports what failed itself.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// redisClient makes the go-redis client of a redis spec. It does not connect.
// A CLI call should fail fast: unless the URL says otherwise, one retry and
// one dial attempt, each bounded by timeout.
func (s *storeSpec) redisClient(timeout time.Duration) (redis.UniversalClient, error) {
	redis.SetLogger(quietRedis{})
	// tune sets what the URL did not: deadlines from contexts, one retry,
	// one dial attempt bounded by timeout.
	tune := func(ctxTimeout *bool, maxRetries *int, dialTimeout *time.Duration, dialerRetries *int) {
		*ctxTimeout = true
		if !s.query.Has("max_retries") {
			*maxRetries = 1
		}
		if !s.query.Has("dial_timeout") {
			*dialTimeout = timeout
		}
		if !s.query.Has("dialer_retries") {
			*dialerRetries = 1
		}
	}
	switch s.mode {
	case redisCluster:
		o, err := redis.ParseClusterURL(s.redisURL())
		if err != nil {
			return nil, usagef("store URL: %v", err)
		}
		tune(&o.ContextTimeoutEnabled, &o.MaxRetries, &o.DialTimeout, &o.DialerRetries)
		return redis.NewClusterClient(o), nil
	case redisSentinel:
		o, err := redis.ParseFailoverURL(s.redisURL())
		if err != nil {
			return nil, usagef("store URL: %v", err)
		}
		tune(&o.ContextTimeoutEnabled, &o.MaxRetries, &o.DialTimeout, &o.DialerRetries)
		return redis.NewFailoverClient(o), nil
	}
	o, err := redis.ParseURL(s.redisURL())
	if err != nil {
		return nil, usagef("store URL: %v", err)
	}
	tune(&o.ContextTimeoutEnabled, &o.MaxRetries, &o.DialTimeout, &o.DialerRetries)
	return redis.NewClient(o), nil
}

// target is an open store, with what the CLI may learn beyond store.Store.
type target struct {
	store.Store
	spec *storeSpec
	// entryKey is the store's own key of a plugin key, when known.
	entryKey func(key string) string
	// ttl returns the remaining TTL of an entry: ok false when the store
	// cannot say (why says why), forever true when it has none.
	ttl func(ctx context.Context, key string) (d time.Duration, forever, ok bool, why string, err error)
	// hasVersions reports which tags have a version in the store, without
	// creating any (Versions creates them); nil when the store cannot say.
	hasVersions func(ctx context.Context, tags []string) ([]bool, error)
	closers     []func() error
}

func (t *target) Close() error {
	err := t.Store.Close()
	for _, c := range t.closers {
		_ = c()
	}
	return err
}

// describe is the store's description for messages.
func (t *target) describe() string { return t.spec.String() }

// fail turns a store error into one that says what to do.
func (t *target) fail(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %s did not answer: %v — is the server running? check --store, or raise --timeout", op, t.describe(), err)
	case errors.Is(err, store.ErrTooLarge):
		return fmt.Errorf("%s: %v — the store refuses values this large", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// openStore opens --store and checks that it answers.
func (e *env) openStore(ctx context.Context) (*target, error) {
	spec, err := parseStoreURL(e.g.store)
	if err != nil {
		return nil, err
	}
	t := &target{spec: spec}
	timeout := e.g.timeout
	unreachable := func(err error) error {
		return fmt.Errorf("cannot reach %s: %s — is the server running? check --store", spec, netReason(err, timeout))
	}
	switch spec.kind {
	case kindRedis:
		rdb, err := spec.redisClient(timeout)
		if err != nil {
			return nil, err
		}
		st, err := redisstore.New(rdb, redisstore.Config{Prefix: spec.prefix, Timeout: timeout})
		if err != nil {
			rdb.Close()
			return nil, usagef("%v", err)
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			rdb.Close()
			if msg := err.Error(); strings.Contains(msg, "NOAUTH") || strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "invalid password") {
				return nil, fmt.Errorf("%s refused the credentials: %v — check the user and password in --store", spec, err)
			}
			return nil, unreachable(err)
		}
		t.Store, t.entryKey = st, st.EntryKey
		t.closers = append(t.closers, rdb.Close)
		t.ttl = func(ctx context.Context, key string) (time.Duration, bool, bool, string, error) {
			d, err := rdb.PTTL(ctx, st.EntryKey(key)).Result()
			switch {
			case err != nil:
				return 0, false, false, "", err
			case d == -1 || d == -1*time.Millisecond:
				return 0, true, true, "", nil
			case d < 0:
				return 0, false, false, "the key is gone", nil
			}
			return d, false, true, "", nil
		}
		t.hasVersions = func(ctx context.Context, tags []string) ([]bool, error) {
			cmds := make([]*redis.IntCmd, len(tags))
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, tag := range tags {
					cmds[i] = p.Exists(ctx, st.VersionKey(tag))
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			has := make([]bool, len(tags))
			for i, c := range cmds {
				has[i] = c.Val() > 0
			}
			return has, nil
		}
	case kindMemcache:
		mc := memcache.New(spec.hosts...)
		st, err := memcachestore.New(mc, memcachestore.Config{Prefix: spec.prefix, Timeout: timeout})
		if err != nil {
			return nil, usagef("%v", err)
		}
		if err := mc.Ping(); err != nil {
			mc.Close()
			return nil, unreachable(err)
		}
		t.Store = st
		t.closers = append(t.closers, mc.Close)
		t.ttl = func(context.Context, string) (time.Duration, bool, bool, string, error) {
			return 0, false, false, "memcached does not tell an item's TTL", nil
		}
		t.hasVersions = func(_ context.Context, tags []string) ([]bool, error) {
			keys := make([]string, len(tags))
			for i, tag := range tags {
				keys[i] = st.VersionKey(tag)
			}
			items, err := mc.GetMulti(keys)
			if err != nil {
				return nil, err
			}
			has := make([]bool, len(tags))
			for i, k := range keys {
				_, has[i] = items[k]
			}
			return has, nil
		}
	case kindFile:
		fi, err := os.Stat(spec.dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("no directory %s — check --store, or create it (mkdir -p %s) if the application has not yet", spec.dir, spec.dir)
		case err != nil:
			return nil, fmt.Errorf("cannot use %s: %v — check --store and the directory's permissions", spec.dir, err)
		case !fi.IsDir():
			return nil, fmt.Errorf("%s is not a directory — check --store", spec.dir)
		}
		st, err := filestore.New(spec.dir, filestore.Config{SweepInterval: -1, LockTimeout: timeout})
		if err != nil {
			return nil, fmt.Errorf("cannot open the file store in %s: %w — check --store and the directory's permissions", spec.dir, err)
		}
		t.Store = st
		t.ttl = func(context.Context, string) (time.Duration, bool, bool, string, error) {
			return 0, false, false, "the file store does not tell an entry's TTL", nil
		}
	}
	return t, nil
}

// netReason says briefly why a connection failed: "connection refused",
// "no answer within 5s", or the error itself.
func netReason(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("cannot resolve %q", dnsErr.Name)
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// redactURL hides the password of a URL-like string.
func redactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := len(rest)
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		end = j
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return raw
	}
	user := rest[:at]
	if c := strings.IndexByte(user, ':'); c >= 0 {
		user = user[:c] + ":xxxxx"
	}
	return raw[:i+3] + user + rest[at:]
}
