package memcachestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/internal/breaker"
	"github.com/gormcache/gormcache/store"
)

// Defaults of a zero [Config].
const (
	DefaultPrefix = "gc:"
	// DefaultMaxValueBytes fits memcached's default item size limit (1 MiB,
	// -I 1m) with room for the key and the item header.
	DefaultMaxValueBytes = 1<<20 - 1024
	// DefaultTimeout is the socket timeout set on a client that has none.
	DefaultTimeout = 200 * time.Millisecond
	// DefaultBreakerFailures is the number of consecutive failures that
	// opens the breaker.
	DefaultBreakerFailures = breaker.DefaultFailures
	// DefaultBreakerCooldown is how long an open breaker refuses calls.
	DefaultBreakerCooldown = breaker.DefaultCooldown
)

// maxPrefix bounds Config.Prefix so that hashed keys always fit in 250 bytes.
const maxPrefix = 128

// Config configures a Store. The zero Config is ready to use.
type Config struct {
	// Prefix starts every key. Blank means DefaultPrefix. It must be a legal
	// memcached key part (printable ASCII, no spaces) of at most 128 bytes.
	Prefix string
	// MaxValueBytes bounds the values Set accepts; larger ones return an
	// error wrapping store.ErrTooLarge. 0 means DefaultMaxValueBytes, right
	// for memcached's default -I 1m; raise it for a server run with a larger
	// -I. Negative is an error.
	MaxValueBytes int
	// Timeout is the socket timeout of every call, set on the client as its
	// Timeout. 0 keeps the client's own Timeout, or sets DefaultTimeout when
	// the client has none. Negative is an error.
	Timeout time.Duration
	// BreakerFailures is the number of consecutive failed calls after which
	// the store stops calling memcached for BreakerCooldown, returning
	// store.ErrUnavailable at once. 0 means DefaultBreakerFailures (5).
	// Negative is an error.
	BreakerFailures int
	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets one through as a probe; the probe's success closes it. 0 means
	// DefaultBreakerCooldown (1s). Negative is an error.
	BreakerCooldown time.Duration
}

// Stats are counters of a Store since New.
type Stats struct {
	// Errors counts memcached calls that failed for a reason other than a
	// protocol answer: connection refused, timeout, server error.
	Errors uint64
	// Rejected counts calls refused at once because the breaker was open.
	Rejected uint64
	// BreakerOpens counts the times the breaker opened.
	BreakerOpens uint64
	// BreakerOpen tells whether the breaker is open now.
	BreakerOpen bool
	// TooLarge counts values refused for their size.
	TooLarge uint64
	// Conflicts counts cas conflicts and lost add races that were retried.
	Conflicts uint64
	// VersionsCreated counts tag records created with a fresh random
	// version: first uses of a tag, and tags whose record memcached lost
	// (eviction, flush_all, restart).
	VersionsCreated uint64
}

// Store is a [store.Store] on memcached. It is safe for concurrent use.
type Store struct {
	mc       *memcache.Client
	prefix   string
	maxValue int
	now      func() time.Time

	br *breaker.Breaker

	errors, rejected, tooLarge, conflicts, created atomic.Uint64

	mu     sync.RWMutex // held for reading by every call; Close takes it to wait for them
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns a store on client. The store does not own client: Close leaves
// it open. New sets client.Timeout (see [Config.Timeout]), so call it before
// the client is in use.
func New(client *memcache.Client, cfg Config) (*Store, error) {
	if client == nil {
		return nil, errors.New("memcachestore: nil client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		mc:       client,
		prefix:   cfg.Prefix,
		maxValue: cfg.MaxValueBytes,
		now:      time.Now,
		br:       breaker.New(cfg.BreakerFailures, cfg.BreakerCooldown),
	}
	switch {
	case cfg.Timeout > 0:
		client.Timeout = cfg.Timeout
	case client.Timeout == 0:
		client.Timeout = DefaultTimeout
	}
	return s, nil
}

// withDefaults checks c and returns it with the defaults in its zero fields
// (but Timeout, whose default depends on the client: see New).
func (c Config) withDefaults() (Config, error) {
	switch {
	case len(c.Prefix) > maxPrefix || !legal(c.Prefix):
		return c, fmt.Errorf("memcachestore: %w: Prefix %q: want at most %d bytes of printable ASCII without spaces", store.ErrInvalidConfig, c.Prefix, maxPrefix)
	case c.MaxValueBytes < 0:
		return c, fmt.Errorf("memcachestore: %w: MaxValueBytes must not be negative (got %d)", store.ErrInvalidConfig, c.MaxValueBytes)
	case c.Timeout < 0:
		return c, fmt.Errorf("memcachestore: %w: Timeout must not be negative (got %v)", store.ErrInvalidConfig, c.Timeout)
	}
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.MaxValueBytes = cmp.Or(c.MaxValueBytes, DefaultMaxValueBytes)
	var err error
	if c.BreakerFailures, c.BreakerCooldown, err = breaker.WithDefaults(c.BreakerFailures, c.BreakerCooldown); err != nil {
		return c, fmt.Errorf("memcachestore: %w", err)
	}
	return c, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Errors:          s.errors.Load(),
		Rejected:        s.rejected.Load(),
		BreakerOpens:    s.br.Opens(),
		BreakerOpen:     s.br.Open(),
		TooLarge:        s.tooLarge.Load(),
		Conflicts:       s.conflicts.Load(),
		VersionsCreated: s.created.Load(),
	}
}

// begin starts a call: it fails when the store is closed, the context is
// done or the breaker is open. On success the caller must call s.end with
// probe. The call's memcached requests report to the breaker through
// s.check.
func (s *Store) begin(ctx context.Context) (probe bool, err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return false, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.mu.RUnlock()
		return false, fmt.Errorf("memcachestore: %w", err)
	}
	probe, ok := s.br.Allow()
	if !ok {
		s.mu.RUnlock()
		s.rejected.Add(1)
		return false, fmt.Errorf("memcachestore: circuit breaker open: %w", store.ErrUnavailable)
	}
	return probe, nil
}

// end ends a call begun with s.begin: its requests have told the breaker
// how they went, and a probe lets the next call probe.
func (s *Store) end(probe bool) {
	s.br.Abandon(probe)
	s.mu.RUnlock()
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	if len(tags) != len(versions) {
		return nil, fmt.Errorf("memcachestore: %d tags but %d versions", len(tags), len(versions))
	}
	probe, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.end(probe)
	return s.read(s.key(kindEntry, key), tags, versions)
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, tags []string, versions []uint64) error {
	if len(tags) != len(versions) {
		return fmt.Errorf("memcachestore: %d tags but %d versions", len(tags), len(versions))
	}
	probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.end(probe)
	if len(tags) == 0 {
		return nil
	}
	_, err = s.read("", tags, versions)
	return err
}

// Set implements [store.Store].
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if len(value) > s.maxValue {
		s.tooLarge.Add(1)
		return fmt.Errorf("memcachestore: %d bytes (limit %d): %w", len(value), s.maxValue, store.ErrTooLarge)
	}
	probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.end(probe)
	it := &memcache.Item{Key: s.key(kindEntry, key), Value: value, Expiration: expiration(ttl, s.now, 0)}
	return s.check("set", s.mc.Set(it))
}

// Delete implements [store.Store].
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.end(probe)
	return parallel(len(keys), func(i int) error {
		err := s.mc.Delete(s.key(kindEntry, keys[i]))
		if errors.Is(err, memcache.ErrCacheMiss) {
			err = nil
		}
		return s.check("delete", err)
	})
}

// Bump implements [store.Store].
func (s *Store) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	probe, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer s.end(probe)
	tags = distinct(tags)
	var lease uint64
	var records map[string]*memcache.Item
	if hold > 0 {
		// Add the lease keys while the records are read: both must be done
		// before the cas that lists the lease.
		lease = newLease()
		exp := expiration(hold, s.now, 1)
		var leaseErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			leaseErr = parallel(len(tags), func(i int) error {
				err := s.mc.Add(&memcache.Item{Key: s.leaseKey(tags[i], lease), Value: []byte{'1'}, Expiration: exp})
				if errors.Is(err, memcache.ErrNotStored) {
					return fmt.Errorf("memcachestore: lease id %016x already in use on tag %q: %w", lease, tags[i], store.ErrUnavailable)
				}
				return s.check("add lease", err)
			})
		}()
		records, err = s.records(tags)
		<-done
		if err := errors.Join(leaseErr, err); err != nil {
			return 0, err
		}
	} else {
		if records, err = s.records(tags); err != nil {
			return 0, err
		}
	}
	err = parallel(len(tags), func(i int) error {
		_, _, err := s.bumpTag(tags[i], lease, 0, records)
		return err
	})
	if err != nil {
		return 0, err
	}
	return lease, nil
}

// Release implements [store.Store].
func (s *Store) Release(ctx context.Context, tags []string, lease uint64) error {
	probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.end(probe)
	tags = distinct(tags)
	records, err := s.records(tags)
	if err != nil {
		return err
	}
	return parallel(len(tags), func(i int) error {
		if _, _, err := s.bumpTag(tags[i], 0, lease, records); err != nil {
			return err
		}
		if lease == 0 {
			return nil
		}
		// The lease is no longer listed: its key is garbage now.
		err := s.mc.Delete(s.leaseKey(tags[i], lease))
		if errors.Is(err, memcache.ErrCacheMiss) {
			err = nil
		}
		return s.check("delete lease", err)
	})
}

// Close implements [store.Store]. It waits for calls in flight, and leaves
// the client open.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// check classifies the error of one memcached call for the breaker and the
// caller: protocol answers pass through, anything else is a failure that
// wraps store.ErrUnavailable. A success closes the breaker.
func (s *Store) check(op string, err error) error {
	switch {
	case err == nil, errors.Is(err, memcache.ErrCacheMiss), errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrCASConflict):
		s.br.Success(false)
		return err
	case errors.Is(err, memcache.ErrMalformedKey):
		return fmt.Errorf("memcachestore: %s: %w", op, err) // a bug here, not the server's fault
	case strings.Contains(err.Error(), "object too large"):
		// SERVER_ERROR object too large for cache: the server runs with a
		// smaller -I than MaxValueBytes.
		s.br.Success(false)
		s.tooLarge.Add(1)
		return fmt.Errorf("memcachestore: %s: %w: %w", op, store.ErrTooLarge, err)
	}
	s.errors.Add(1)
	s.br.Failure(false)
	return fmt.Errorf("memcachestore: %s: %w: %w", op, store.ErrUnavailable, err)
}

// expiration converts a duration to memcached's expiration: 0 for none,
// seconds (rounded up, plus extra) up to 30 days, an absolute unix time
// beyond.
func expiration(d time.Duration, now func() time.Time, extra int64) int32 {
	if d <= 0 {
		return 0
	}
	secs := int64(d/time.Second) + extra
	if d%time.Second != 0 {
		secs++
	}
	if secs <= 30*24*3600 {
		return int32(secs)
	}
	abs := now().Unix() + secs
	if abs > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(abs)
}

// parallel runs fn(0..n-1), concurrently when n > 1, and returns the errors
// joined.
func parallel(n int, fn func(i int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return fn(0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	errs[0] = fn(0)
	wg.Wait()
	return errors.Join(errs...)
}
