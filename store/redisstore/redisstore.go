package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/internal/breaker"
	"github.com/gormcache/gormcache/store"
	"github.com/redis/go-redis/v9"
)

// Defaults for the zero fields of a [Config].
const (
	DefaultPrefix          = "gc:"
	DefaultTimeout         = 100 * time.Millisecond
	DefaultBreakerFailures = breaker.DefaultFailures
	DefaultBreakerCooldown = breaker.DefaultCooldown
	DefaultMaxValueBytes   = 4 << 20
	DefaultTTL             = 30 * 24 * time.Hour
)

// maxValueLimit is Redis's own limit on a string value (proto-max-bulk-len).
const maxValueLimit = 512 << 20

// Config configures a [Store]. A zero Config consists entirely of defaults.
type Config struct {
	// Prefix starts every key the store writes, so that several applications
	// or environments can share one Redis. "" means DefaultPrefix ("gc:").
	// Instances that must see each other's invalidations use the same
	// prefix. It may not contain braces (cluster hash tags).
	Prefix string

	// Timeout bounds every call, whatever the caller's context says; a call
	// that gets no answer in time returns an error wrapping
	// store.ErrUnavailable. 0 means DefaultTimeout (100ms). Negative is an
	// error.
	Timeout time.Duration

	// BreakerFailures is the number of consecutive failed calls after which
	// the store stops calling Redis for BreakerCooldown, returning
	// store.ErrUnavailable at once. 0 means DefaultBreakerFailures (5).
	// Negative is an error.
	BreakerFailures int

	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets one through as a probe; the probe's success closes it. 0 means
	// DefaultBreakerCooldown (1s). Negative is an error.
	BreakerCooldown time.Duration

	// MaxValueBytes is the largest value Set accepts; a larger one returns an
	// error wrapping store.ErrTooLarge without reaching Redis. 0 means
	// DefaultMaxValueBytes (4 MiB). Negative, or more than Redis's 512 MiB,
	// is an error.
	MaxValueBytes int

	// DefaultTTL is the TTL of entries Set with ttl <= 0: entries always
	// have a TTL, so that volatile-* eviction can remove them. 0 means
	// DefaultTTL (30 days). Negative is an error.
	DefaultTTL time.Duration

	// WaitReplicas, on a single node or Sentinel, makes every Bump and
	// Release wait (Redis WAIT, in the same round trip) until that many
	// replicas have the new versions, so that a failover to one of them
	// cannot lose an acknowledged invalidation (replication is otherwise
	// asynchronous). A bump not acknowledged within Timeout fails with
	// store.ErrUnavailable (the plugin then stops serving those tables
	// until a later bump succeeds). 0 means no waiting. Not available on
	// Cluster clients (an error from New).
	WaitReplicas int
}

// withDefaults checks c and returns it with the defaults in its zero fields.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Timeout < 0:
		return c, fmt.Errorf("redisstore: %w: Timeout must not be negative (got %v)", store.ErrInvalidConfig, c.Timeout)
	case c.WaitReplicas < 0:
		return c, fmt.Errorf("redisstore: %w: WaitReplicas must not be negative (got %d)", store.ErrInvalidConfig, c.WaitReplicas)
	case c.MaxValueBytes < 0 || c.MaxValueBytes > maxValueLimit:
		return c, fmt.Errorf("redisstore: %w: MaxValueBytes must be between 0 and %d (got %d)", store.ErrInvalidConfig, maxValueLimit, c.MaxValueBytes)
	case c.DefaultTTL < 0:
		return c, fmt.Errorf("redisstore: %w: DefaultTTL must not be negative (got %v)", store.ErrInvalidConfig, c.DefaultTTL)
	case strings.ContainsAny(c.Prefix, "{}"):
		return c, fmt.Errorf("redisstore: %w: Prefix must not contain braces (got %q): they would change the cluster hash tag that keeps a tag's keys in one slot", store.ErrInvalidConfig, c.Prefix)
	}
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.MaxValueBytes = cmp.Or(c.MaxValueBytes, DefaultMaxValueBytes)
	c.DefaultTTL = cmp.Or(c.DefaultTTL, DefaultTTL)
	var err error
	if c.BreakerFailures, c.BreakerCooldown, err = breaker.WithDefaults(c.BreakerFailures, c.BreakerCooldown); err != nil {
		return c, fmt.Errorf("redisstore: %w", err)
	}
	return c, nil
}

// Store is a [store.Store] on a go-redis client. It is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	keys     keyspace
	oneNode  bool // one node owns every key: MGET, DEL and scripts over many tags
	wait     int  // Config.WaitReplicas
	direct   bool // the client itself honours context deadlines
	timeout  time.Duration
	maxValue int
	ttl      time.Duration
	br       *breaker.Breaker
	closed   atomic.Bool

	tagCache    sync.Map // tag → *cachedTag
	tagCacheLen atomic.Int64
	reload      func(context.Context) // asks a cluster client to reload its topology
	watch       *masterWatch          // nil for a client it cannot watch

	roundTrips atomic.Uint64
	errs       atomic.Uint64
	canceled   atomic.Uint64
	timeouts   atomic.Uint64
	rejected   atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// New returns a store on rdb: a *redis.Client (single node, or Sentinel
// through redis.NewFailoverClient / NewUniversalClient with MasterName), a
// *redis.ClusterClient, or another redis.UniversalClient (a wrapper), which
// is served as a cluster is. New does not contact Redis.
//
// A *redis.Ring is refused: when a shard is down the ring moves its keys to
// the other shards, where a tag's version reads as new and its bumps land
// out of sight of the shard that comes back, whose old versions then
// validate entries again.
//
// The store does not own rdb: Close leaves it open. Give it
// ContextTimeoutEnabled: true, so that Config.Timeout ends socket reads;
// without it, the store calls the client from a goroutine per call, which it
// stops waiting for at the timeout: correct, but a goroutine hand-off costs
// about as much as a round trip on a small machine (see BenchmarkGetHit).
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		rdb:      rdb,
		keys:     newKeyspace(cfg.Prefix),
		timeout:  cfg.Timeout,
		wait:     cfg.WaitReplicas,
		maxValue: cfg.MaxValueBytes,
		ttl:      cfg.DefaultTTL,
		br:       breaker.New(cfg.BreakerFailures, cfg.BreakerCooldown),
	}
	switch c := rdb.(type) {
	case *redis.Client:
		// One node owns every key: a read is one MGET, the bumps of a
		// call are one script over every tag, a Delete one DEL.
		s.oneNode = true
		// Not c.WithTimeout(Timeout) when the client ignores deadlines:
		// its clones lose the client's hooks (tracing, metrics).
		s.direct = c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		// An entry and its tags live in different slots: one pipeline of
		// single-key commands and single-tag scripts (whose keys share a
		// slot), which the client splits per node and sends in parallel.
		// Never a cross-slot script, never MGET.
		o := c.Options()
		if o.ReadOnly || o.RouteByLatency || o.RouteRandomly {
			// A replica may not have a bump yet: a version read there
			// could validate an entry the bump invalidated.
			return nil, errors.New("redisstore: the cluster client reads from replicas (ReadOnly, RouteByLatency or RouteRandomly), which may lag behind a bump; give the store a client that reads from masters")
		}
		s.direct = o.ContextTimeoutEnabled
		// The client reloads its view of the cluster on MOVED replies, which
		// a dead master cannot send: after a failover it would keep calling
		// the dead address until its periodic reload (60s by default). A
		// failed call asks for a reload (lazy, coalesced by the client).
		s.reload = c.ReloadState
	case *redis.Ring:
		return nil, errors.New("redisstore: *redis.Ring is not supported: it moves keys to other shards while a shard is down, so a tag's bumps can land on a shard other than the one its version is read from once the shard is back; use a *redis.ClusterClient (or a single node with Sentinel)")
	}
	if s.wait > 0 && !s.oneNode {
		return nil, fmt.Errorf("redisstore: %w: WaitReplicas needs a single-node or Sentinel client (*redis.Client): a cluster client cannot send WAIT on the connections of its writes", store.ErrInvalidConfig)
	}
	s.watch = newMasterWatch(rdb, masterCheckTimeout(s.timeout), &s.roundTrips)
	return s, nil
}

// Client returns the client the store was made with.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Stats are the store's counters since New.
type Stats struct {
	// RoundTrips counts requests sent to Redis: a command, a script or a
	// pipeline counts once (a pipeline to a cluster reaches each node
	// concerned once, in parallel).
	RoundTrips uint64
	// Errors counts calls that failed with store.ErrUnavailable after
	// reaching for Redis, timeouts included.
	Errors uint64
	// Timeouts counts calls that got no answer within Config.Timeout, or
	// within the deadline the cache in front set (store.WithTimeout).
	Timeouts uint64
	// Canceled counts calls the application gave up on (its context was
	// cancelled or its own deadline passed): not errors of Redis, not
	// counted by the breaker.
	Canceled uint64
	// Rejected counts calls refused at once because the breaker was open.
	Rejected uint64
	// BreakerOpens counts the times the breaker opened.
	BreakerOpens uint64
	// BreakerOpen tells whether the breaker is open now.
	BreakerOpen bool
	// MasterChanges counts the times the store found Redis served by
	// another master than before (a restarted server, a failover): the
	// calls whose results came from it failed with store.ErrUnavailable.
	MasterChanges uint64
	// MasterChecks counts the checks of the masters' identity (INFO), one
	// after a new connection or a connection error, not one per call.
	MasterChecks uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{
		RoundTrips:   s.roundTrips.Load(),
		Errors:       s.errs.Load(),
		Timeouts:     s.timeouts.Load(),
		Canceled:     s.canceled.Load(),
		Rejected:     s.rejected.Load(),
		BreakerOpens: s.br.Opens(),
		BreakerOpen:  s.br.Open(),
	}
	if s.watch != nil {
		st.MasterChanges = s.watch.changes.Load()
		st.MasterChecks = s.watch.checks.Load()
	}
	return st
}

// Get implements [store.Store]: the entry and the versions of its tags are
// read in one round trip (two when a tag is new, lost or held).
func (s *Store) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	if len(tags) != len(versions) {
		return nil, fmt.Errorf("redisstore: %d tags but %d versions", len(tags), len(versions))
	}
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	return s.read(ctx, "get", s.keys.entry(key), tags, versions)
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, tags []string, versions []uint64) error {
	if len(tags) != len(versions) {
		return fmt.Errorf("redisstore: %d tags but %d versions", len(tags), len(versions))
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(tags) == 0 {
		return nil
	}
	_, err := s.read(ctx, "versions", "", tags, versions)
	return err
}

// read reads the entry under ek (none when ek is "") and the versions of
// tags. The fast path is one plain read of the entry and of each tag's
// version and held-until keys: one MGET on a single node, one pipeline of
// GETs elsewhere. Tags found without a version (new, or lost by Redis) or
// with a held-until key take a second round trip, through readScript; a
// held tag is a miss anyway.
func (s *Store) read(ctx context.Context, op, ek string, tags []string, versions []uint64) ([]byte, error) {
	// keys: the entry's, then each tag's version and held-until keys, as
	// the arguments of the MGET (boxed once per tag, in the tag cache)
	keys := make([]any, 1, 2+2*len(tags))
	keys[0] = "mget"
	if ek != "" {
		keys = append(keys, ek)
	}
	for _, t := range tags {
		k := s.tagKeys(t)
		keys = append(keys, k.versionArg, k.heldUntilArg)
	}
	var (
		entry any
		vs    []uint64
	)
	err := s.call(ctx, op, func(ctx context.Context) error {
		vals, err := s.getAll(ctx, keys)
		if err != nil {
			return err
		}
		var e any
		if ek != "" {
			e, vals = vals[0], vals[1:]
		}
		v := make([]uint64, len(tags))
		var slow []tagKeys
		var slowAt []int
		for i := range tags {
			ver, held := vals[2*i], vals[2*i+1]
			if ver == nil || held != nil {
				slow, slowAt = append(slow, s.tagKeys(tags[i]).tagKeys), append(slowAt, i)
				continue
			}
			v[i] = parseVersion(ver)
		}
		if len(slow) > 0 {
			r, err := s.runScript(ctx, readScript, slow, nil, newVersions(len(slow)))
			if err != nil {
				return err
			}
			if len(r) != len(slow) {
				return fmt.Errorf("%w: %d versions for %d tags", errReply, len(r), len(slow))
			}
			for j, i := range slowAt {
				v[i] = parseVersion(r[j])
			}
		}
		entry, vs = e, v
		return nil
	})
	if err != nil {
		return nil, err
	}
	copy(versions, vs)
	if entry == nil {
		return nil, nil
	}
	str, ok := entry.(string)
	if !ok {
		return nil, s.fail(op, fmt.Errorf("%w: entry of type %T", errReply, entry))
	}
	return toBytes(str), nil
}

// getAll reads string keys in one round trip: one MGET on a single node, a
// pipeline of single-key GETs elsewhere. args is the MGET command: "mget"
// and the keys. A missing key reads as nil.
func (s *Store) getAll(ctx context.Context, args []any) ([]any, error) {
	s.roundTrips.Add(1)
	n := len(args) - 1
	if s.oneNode {
		cmd := redis.NewSliceCmd(ctx, args...)
		_ = s.rdb.Process(ctx, cmd)
		vals, err := cmd.Result()
		if err == nil && len(vals) != n {
			err = fmt.Errorf("%w: %d values for %d keys", errReply, len(vals), n)
		}
		return vals, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i, k := range args[1:] {
		cmds[i] = pipe.Get(ctx, k.(string))
	}
	_, _ = pipe.Exec(ctx) // errors are read command by command
	vals := make([]any, n)
	for i, c := range cmds {
		switch err := c.Err(); err {
		case nil:
			vals[i] = c.Val()
		case redis.Nil:
		default:
			return nil, err
		}
	}
	return vals, nil
}

// runScript runs sc over the keys of tags in one round trip: one script
// over every tag on a single node, a pipeline of one script per tag (whose
// keys share a slot) elsewhere. The arguments of a script are args, then
// the versions of its tags (versions[i] is the new version of tags[i]). It
// returns sc's reply for each tag, when sc answers a list with one value
// per tag.
func (s *Store) runScript(ctx context.Context, sc *script, tags []tagKeys, args []any, versions []string) ([]any, error) {
	if s.oneNode {
		keys := make([]string, 0, 3*len(tags))
		for _, t := range tags {
			keys = append(keys, t.version, t.heldUntil, t.leases)
		}
		cmd := s.eval(ctx, sc, keys, scriptArgs(args, versions...)...)
		if err := cmd.Err(); err != nil {
			return nil, err
		}
		r, ok := cmd.Val().([]any)
		if ok && len(r) != len(tags) {
			return nil, fmt.Errorf("%w: %d replies for %d tags", errReply, len(r), len(tags))
		}
		return r, nil
	}
	pipe := s.rdb.Pipeline()
	keys := make([][]string, len(tags))
	argv := make([][]any, len(tags))
	cmds := make([]*redis.Cmd, len(tags))
	for i, t := range tags {
		keys[i] = []string{t.version, t.heldUntil, t.leases}
		argv[i] = scriptArgs(args, versions[i])
		cmds[i] = pipe.EvalSha(ctx, sc.sha, keys[i], argv[i]...)
	}
	s.roundTrips.Add(1)
	_, _ = pipe.Exec(ctx) // errors are read command by command
	var retry redis.Pipeliner
	for i, c := range cmds {
		if isNoScript(c.Err()) {
			if retry == nil {
				retry = s.rdb.Pipeline()
			}
			cmds[i] = retry.Eval(ctx, sc.src, keys[i], argv[i]...)
		}
	}
	if retry != nil {
		s.roundTrips.Add(1)
		_, _ = retry.Exec(ctx)
	}
	out := make([]any, len(cmds))
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			return nil, err
		}
		if r, ok := c.Val().([]any); ok && len(r) == 1 {
			out[i] = r[0]
		}
	}
	return out, nil
}

// cachedTag is a tag's keys, with the two a read sends boxed once as
// command arguments.
type cachedTag struct {
	tagKeys
	versionArg, heldUntilArg any
}

// tagKeys returns the keys of tag t, from a cache of the tags met so far.
func (s *Store) tagKeys(t string) *cachedTag {
	if k, ok := s.tagCache.Load(t); ok {
		return k.(*cachedTag)
	}
	tk := s.keys.tag(t)
	k := &cachedTag{tagKeys: tk, versionArg: tk.version, heldUntilArg: tk.heldUntil}
	if s.tagCacheLen.Load() < maxCachedTags {
		if _, loaded := s.tagCache.LoadOrStore(t, k); !loaded {
			s.tagCacheLen.Add(1)
		}
	}
	return k
}

// maxCachedTags bounds the cache of tag keys (tags are table names: a
// handful, unless a caller makes them up).
const maxCachedTags = 10000

// Set implements [store.Store]. A ttl <= 0 means Config.DefaultTTL.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(value) > s.maxValue {
		return fmt.Errorf("redisstore: %d bytes, more than MaxValueBytes %d: %w", len(value), s.maxValue, store.ErrTooLarge)
	}
	if ttl <= 0 {
		ttl = s.ttl
	}
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	ek := s.keys.entry(key)
	return s.call(ctx, "set", func(ctx context.Context) error {
		s.roundTrips.Add(1)
		return s.rdb.Set(ctx, ek, value, ttl).Err()
	})
}

// Delete implements [store.Store].
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(keys) == 0 {
		return nil
	}
	eks := make([]string, len(keys))
	for i, k := range keys {
		eks[i] = s.keys.entry(k)
	}
	return s.call(ctx, "delete", func(ctx context.Context) error {
		s.roundTrips.Add(1)
		if s.oneNode {
			return s.rdb.Del(ctx, eks...).Err()
		}
		// Keys of a cluster live in different slots: one DEL each.
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(eks))
		for i, k := range eks {
			cmds[i] = pipe.Del(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Bump implements [store.Store]: all bumps of a call are one round trip. If
// it fails with hold > 0, the returned lease may already hold some of the
// tags: releasing it is safe, and the hold expires anyway.
func (s *Store) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var lease uint64
	var holdMS int64
	if hold > 0 {
		lease = newLease()
		holdMS = int64((hold + time.Millisecond - 1) / time.Millisecond)
	}
	if len(tags) == 0 {
		return lease, nil
	}
	return lease, s.write(ctx, "bump", tags, holdMS, lease, false)
}

// Release implements [store.Store].
func (s *Store) Release(ctx context.Context, tags []string, lease uint64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(tags) == 0 {
		return nil
	}
	return s.write(ctx, "release", tags, 0, lease, true)
}

func (s *Store) write(ctx context.Context, op string, tags []string, holdMS int64, lease uint64, release bool) error {
	tks := make([]tagKeys, len(tags))
	for i, t := range tags {
		tks[i] = s.tagKeys(t).tagKeys
	}
	drop := "0"
	if release {
		drop = "1"
	}
	l := strconv.FormatUint(lease, 10)
	args := []any{holdMS, l, drop}
	return s.call(ctx, op, func(ctx context.Context) error {
		// Fresh versions for every attempt: a call that timed out may
		// have written the ones it sent.
		vs := newVersions(len(tks))
		if s.wait > 0 {
			return s.writeAndWait(ctx, tks, scriptArgs(args, vs...))
		}
		_, err := s.runScript(ctx, writeScript, tks, args, vs)
		return err
	})
}

// writeAndWait runs the write script and WAIT in one pipeline, so that
// WAIT counts the replicas that have this very write (it waits for the
// writes of its own connection).
func (s *Store) writeAndWait(ctx context.Context, tags []tagKeys, args []any) error {
	keys := make([]string, 0, 3*len(tags))
	for _, t := range tags {
		keys = append(keys, t.version, t.heldUntil, t.leases)
	}
	waitMS := int64(s.timeout / time.Millisecond)
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) - 10*time.Millisecond; left < s.timeout {
			waitMS = max(int64(left/time.Millisecond), 1)
		}
	}
	run := func(eval bool) (*redis.Cmd, *redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		var cmd *redis.Cmd
		if eval {
			cmd = pipe.Eval(ctx, writeScript.src, keys, args...)
		} else {
			cmd = pipe.EvalSha(ctx, writeScript.sha, keys, args...)
		}
		wait := pipe.Do(ctx, "WAIT", s.wait, waitMS)
		s.roundTrips.Add(1)
		_, err := pipe.Exec(ctx)
		return cmd, wait, err
	}
	cmd, wait, _ := run(false)
	if isNoScript(cmd.Err()) {
		cmd, wait, _ = run(true)
	}
	if err := cmd.Err(); err != nil {
		return err
	}
	n, err := wait.Int()
	if err != nil {
		return err
	}
	if n < s.wait {
		return fmt.Errorf("redisstore: %d of %d replicas acknowledged the bump within %v: %w", n, s.wait, time.Duration(waitMS)*time.Millisecond, store.ErrUnavailable)
	}
	return nil
}

// Close implements [store.Store]. Later calls return store.ErrClosed. It
// does not close the client, which belongs to the caller.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// eval runs sc with one EVALSHA, or EVAL when the server does not know sc.
func (s *Store) eval(ctx context.Context, sc *script, keys []string, args ...any) *redis.Cmd {
	s.roundTrips.Add(1)
	cmd := s.rdb.EvalSha(ctx, sc.sha, keys, args...)
	if isNoScript(cmd.Err()) {
		s.roundTrips.Add(1)
		cmd = s.rdb.Eval(ctx, sc.src, keys, args...)
	}
	return cmd
}

var errReply = errors.New("unexpected reply")

// call runs fn against Redis under the breaker and the per-call timeout.
// fn must keep its results to itself until it returns nil: when the client
// does not honour deadlines, fn runs in its own goroutine and is abandoned
// at the timeout.
func (s *Store) call(ctx context.Context, op string, fn func(context.Context) error) error {
	probe, ok := s.br.Allow()
	if !ok {
		s.rejected.Add(1)
		return fmt.Errorf("redisstore: %s: circuit breaker open: %w", op, store.ErrUnavailable)
	}
	if w := s.watch; w != nil {
		// A result is trusted once the master that gave it is known to be
		// the one before (see masterWatch): a check after new connections.
		// The call waits for it within Timeout; the check itself runs on
		// (detached, up to masterCheckTimeout) when the call gives up, so
		// that on a loaded machine the next call finds it done instead of
		// needing another.
		changes := w.changes.Load()
		inner := fn
		fn = func(ctx context.Context) error {
			if err := inner(ctx); err != nil {
				return err
			}
			return w.verify(ctx, changes)
		}
	}
	cctx, cancel := s.callCtx(ctx)
	var err error
	if s.direct {
		err = fn(cctx)
	} else {
		done := make(chan error, 1)
		go func() { done <- fn(cctx) }()
		select {
		case err = <-done:
		case <-cctx.Done():
			err = cctx.Err()
		}
	}
	timedOut := err != nil && (cctx.Err() != nil || isTimeout(err))
	cancel()
	if err == nil {
		s.br.Success(probe)
		return nil
	}
	if errors.Is(err, errMasterChanged) {
		s.br.Success(probe) // Redis answered: a new master
		return s.fail(op, err)
	}
	if store.CallerGaveUp(ctx) {
		// The application gave up: that tells nothing about Redis. (A
		// deadline a cache in front set with store.WithTimeout is Redis
		// not answering, counted below.)
		s.br.Abandon(probe)
		s.canceled.Add(1)
		return fmt.Errorf("redisstore: %s: %w", op, ctx.Err())
	}
	if timedOut {
		s.timeouts.Add(1)
		err = fmt.Errorf("no answer within %v: %w", s.timeout, err)
	}
	if tripsBreaker(err) {
		s.br.Failure(probe)
		if s.reload != nil {
			s.reload(ctx)
		}
	} else {
		s.br.Success(probe) // Redis answered, with an error
	}
	return s.fail(op, err)
}

// callCtx bounds a call by Config.Timeout. A caller whose own deadline
// comes first (a cache in front bounding its store calls, with
// store.WithTimeout) bounds it already: its context is used as it is,
// which ends the call at the same moment with the same cause, without a
// second timer.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.timeout {
		return ctx, func() {}
	}
	return store.WithTimeout(ctx, s.timeout)
}

func (s *Store) fail(op string, err error) error {
	s.errs.Add(1)
	return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
}

// masterCheckTimeout bounds a master check (INFO on every master, after a
// cluster's slot map reload): a few call timeouts, at least half a second.
func masterCheckTimeout(call time.Duration) time.Duration {
	return max(4*call, 500*time.Millisecond)
}

// isTimeout tells whether err is a socket deadline (go-redis sets one from
// the context's deadline, and it may fire just before the context's).
func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tripsBreaker tells whether err means that Redis is unreachable or
// unusable for now, as opposed to an error reply about one call.
func tripsBreaker(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true // network, timeout, pool, protocol
	}
	msg := rerr.Error()
	for _, p := range []string{"CLUSTERDOWN", "LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY", "BUSY", "NOREPLICAS", "MOVED", "ASK"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// scriptArgs returns args followed by versions, as a script's ARGV.
func scriptArgs(args []any, versions ...string) []any {
	out := make([]any, 0, len(args)+len(versions))
	out = append(out, args...)
	for _, v := range versions {
		out = append(out, v)
	}
	return out
}

// newVersions returns n fresh random versions (decimal), one for each tag
// of a script: see newVersion.
func newVersions(n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = strconv.FormatUint(newVersion(), 10)
	}
	return vs
}

// newVersion returns a fresh random version in [1, 2^63): never 0 (a held
// or unknown tag), within Redis's signed 64-bit integers, and drawn anew for
// every bump, so that a version handed out once is never handed out again,
// whatever Redis forgets (see scripts.go).
func newVersion() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint64(b[:]) >> 1; v != 0 {
			return v
		}
	}
}

// newLease returns a random, non-zero lease id.
func newLease() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// parseVersion reads a version from a script's reply; anything that is not
// a positive number reads as 0 (unknown).
func parseVersion(r any) uint64 {
	switch v := r.(type) {
	case string:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0
		}
		return n
	case int64:
		if v > 0 {
			return uint64(v)
		}
	}
	return 0
}

// toBytes copies a reply into a non-nil slice (an empty entry is not a miss).
func toBytes(str string) []byte {
	if str == "" {
		return []byte{}
	}
	return []byte(str)
}

// EntryKey returns the Redis key under which the entry of the plugin's key
// is stored (for tools and benchmarks that read it directly).
func (s *Store) EntryKey(key string) string { return s.keys.entry(key) }

// VersionKey returns the Redis key that holds tag's version (for tools that
// check whether a tag has one without creating it, as Versions would).
func (s *Store) VersionKey(tag string) string { return s.keys.tag(tag).version }
