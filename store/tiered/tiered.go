package tiered

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
)

// DefaultL1TTL is the L1TTL of a store with a Bus whose Config.L1TTL is 0.
const DefaultL1TTL = time.Minute

// Local is what an L1 must be: an in-process store that keeps Go values.
// *memstore.Store is one. Only its entries are used (Get/SetValue, Delete
// with no tags); tag versions are kept by the tiered store itself.
type Local interface {
	store.Store
	store.ValueStore
}

// Config configures a [Store]. With a Bus, the other fields' zero values
// are defaults; without one, L1TTL must be set, because it is then the only
// bound on how long another instance's write goes unseen.
type Config struct {
	// L1 is the in-process level. nil means a new memstore.Store bounded by
	// L1MaxBytes, which Close closes. An L1 given here is not closed by
	// Close, and must not be shared with another tiered store.
	L1 Local

	// L1MaxBytes bounds the memstore made when L1 is nil; 0 means
	// memstore.DefaultMaxBytes. Negative is an error, and so is a non-zero
	// value together with L1.
	L1MaxBytes int64

	// L1TTL caps how long an entry is kept in L1 and how long a tag version
	// learned from L2 is used without asking L2 again. With a Bus it is a
	// safety net (for a bump whose message could not be published), and 0
	// means DefaultL1TTL. Without a Bus it is the bound on staleness across
	// instances (a write through another instance may go unseen here for
	// up to L1TTL), so it must be set and should be short: a second or
	// two. Negative is an error.
	L1TTL time.Duration

	// Bus carries invalidations between the instances that share L2
	// (NewRedisBus in practice). nil means no bus: see L1TTL.
	Bus Bus

	// Encode and Decode convert the values given to SetValue to L2's bytes
	// and back; set both or neither. Without them, SetValue accepts only
	// []byte and GetValue returns []byte. The gormcache plugin stores
	// decoded entries through SetValue, so it needs them (the entry
	// codec's encode and decode functions).
	Encode func(v any) ([]byte, error)
	Decode func(b []byte) (any, error)

	// HeartbeatInterval is how long a store with a Bus goes without hearing
	// any message on it before it publishes a heartbeat through it (a
	// message with no tags, which every instance hears, its publisher
	// included); 0 means DefaultHeartbeatInterval. Bumps heard from any
	// instance and other instances' heartbeats count as well, so a busy bus
	// carries few heartbeats. Negative is an error, and so is a non-zero
	// value without a Bus.
	HeartbeatInterval time.Duration

	// HeartbeatTimeout is how long the Bus's subscription may be up without
	// delivering any message before the store stops trusting its L1: it
	// then reads every version from L2, as while the subscription is down,
	// until a message arrives again (and then forgets every version it
	// knew, since bumps may have been lost). It bounds how long a loss of
	// messages that the subscription's connection cannot see (a partitioned
	// cluster bus, a subscriber left on an isolated node) goes unnoticed.
	// 0 means three times HeartbeatInterval. It must be at least twice
	// HeartbeatInterval: a healthy bus may go 1.5 intervals without a
	// message. Negative is an error, and so is a non-zero value without a
	// Bus.
	HeartbeatTimeout time.Duration
}

// withDefaults checks c and returns it with the defaults in its zero fields
// (L1TTL and the heartbeat's times with a Bus; L1 is made by New).
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.L1MaxBytes < 0:
		return c, fmt.Errorf("tiered: %w: L1MaxBytes must not be negative (got %d)", store.ErrInvalidConfig, c.L1MaxBytes)
	case c.L1 != nil && c.L1MaxBytes != 0:
		return c, fmt.Errorf("tiered: %w: L1MaxBytes is for the L1 the store makes; it must be 0 when L1 is set", store.ErrInvalidConfig)
	case c.L1TTL < 0:
		return c, fmt.Errorf("tiered: %w: L1TTL must not be negative (got %v)", store.ErrInvalidConfig, c.L1TTL)
	case c.Bus == nil && c.L1TTL == 0:
		return c, fmt.Errorf("tiered: %w: L1TTL must be set when there is no Bus: it bounds how long other instances' writes go unseen", store.ErrInvalidConfig)
	case (c.Encode == nil) != (c.Decode == nil):
		return c, fmt.Errorf("tiered: %w: set both Encode and Decode, or neither", store.ErrInvalidConfig)
	case c.HeartbeatInterval < 0:
		return c, fmt.Errorf("tiered: %w: HeartbeatInterval must not be negative (got %v)", store.ErrInvalidConfig, c.HeartbeatInterval)
	case c.HeartbeatTimeout < 0:
		return c, fmt.Errorf("tiered: %w: HeartbeatTimeout must not be negative (got %v)", store.ErrInvalidConfig, c.HeartbeatTimeout)
	case c.Bus == nil && (c.HeartbeatInterval != 0 || c.HeartbeatTimeout != 0):
		return c, fmt.Errorf("tiered: %w: HeartbeatInterval and HeartbeatTimeout check a Bus; they must be 0 without one", store.ErrInvalidConfig)
	}
	if c.Bus == nil {
		return c, nil
	}
	c.L1TTL = cmp.Or(c.L1TTL, DefaultL1TTL)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.HeartbeatTimeout = cmp.Or(c.HeartbeatTimeout, 3*c.HeartbeatInterval)
	if c.HeartbeatTimeout < 2*c.HeartbeatInterval {
		return c, fmt.Errorf("tiered: %w: HeartbeatTimeout (%v) must be at least twice HeartbeatInterval (%v)", store.ErrInvalidConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	return c, nil
}

// Store is a two-level [store.Store] and [store.ValueStore]: an in-process
// L1 in front of a shared L2. See the package documentation for what it
// guarantees.
type Store struct {
	l2     store.Store
	l1     Local
	ownL1  bool
	l1TTL  time.Duration
	encode func(any) ([]byte, error)
	decode func([]byte) (any, error)
	bus    Bus
	stop   func()
	hb     *heartbeat // nil without a bus
	vt     *versionTable
	seed   maphash.Seed

	closed  atomic.Bool
	closeMu sync.RWMutex // held for reading by bumps in flight; Close waits for them
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.ValueStore = (*Store)(nil)
)

// item is what the store keeps in L1 under an entry's key.
type item struct {
	v   any  // the value: []byte when raw, else a decoded value
	raw bool // v is the bytes L2 holds
	sum uint64
	// Whether the item is as fresh as what L2 holds under the same key: the
	// versions current when it was last found equal to L2's copy, or, for
	// an item stored through this instance and not compared since, the
	// remote counter at that time. An item that may be outdated by a
	// fresher entry another instance stored in L2 is compared with L2's
	// copy (one round trip) instead of being served from L1.
	vers   atomic.Pointer[[]uint64]
	remote uint64
}

const itemOverhead = 96

// UseCodec implements [store.CodecUser]: the gormcache plugin calls it
// before first use to give the store its entry codec. A codec set in
// Config is kept.
func (s *Store) UseCodec(encode func(any) ([]byte, error), decode func([]byte) (any, error)) {
	if s.encode == nil && s.decode == nil {
		s.encode, s.decode = encode, decode
	}
}

var _ store.CodecUser = (*Store)(nil)

// New returns a store with L1 in front of l2. Close does not close l2.
func New(l2 store.Store, cfg Config) (*Store, error) {
	if l2 == nil {
		return nil, errors.New("tiered: L2 store is nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		l2:     l2,
		l1:     cfg.L1,
		l1TTL:  cfg.L1TTL,
		encode: cfg.Encode,
		decode: cfg.Decode,
		bus:    cfg.Bus,
		seed:   maphash.MakeSeed(),
	}
	if s.l1 == nil {
		ms, err := memstore.New(memstore.Config{MaxBytes: cfg.L1MaxBytes})
		if err != nil {
			return nil, fmt.Errorf("tiered: %w", err)
		}
		s.l1, s.ownL1 = ms, true
	}
	s.vt = newVersionTable(s.l1TTL)
	if s.bus == nil {
		s.vt.live.Store(true)
		return s, nil
	}
	s.hb = newHeartbeat(s.vt, s.bus, cfg.HeartbeatInterval, cfg.HeartbeatTimeout)
	stop, err := s.bus.Subscribe(context.Background(), s.hb.onTags, s.hb.onState)
	if err != nil {
		if s.ownL1 {
			_ = s.l1.Close()
		}
		return nil, fmt.Errorf("tiered: subscribe: %w", err)
	}
	s.stop = stop
	s.hb.start()
	return s, nil
}

func lengthError(tags []string, versions []uint64) error {
	return fmt.Errorf("tiered: %d tags but %d versions", len(tags), len(versions))
}

// Get implements [store.Store].
func (s *Store) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	v, err := s.get(ctx, key, tags, versions, false)
	b, _ := v.([]byte)
	return b, err
}

// GetValue implements [store.ValueStore]: it returns what SetValue stored
// (decoded with Config.Decode when it comes from L2), or []byte without a
// codec.
func (s *Store) GetValue(ctx context.Context, key string, tags []string, versions []uint64) (any, error) {
	return s.get(ctx, key, tags, versions, true)
}

// usable says whether it can answer a Get (value false) or a GetValue.
func (s *Store) usable(it *item, value bool) bool {
	if it == nil {
		return false
	}
	if value && s.decode != nil {
		return !it.raw
	}
	return it.raw
}

func (s *Store) l1Item(ctx context.Context, key string) *item {
	v, err := s.l1.GetValue(ctx, key, nil, nil)
	if err != nil {
		return nil
	}
	it, _ := v.(*item)
	return it
}

func (s *Store) get(ctx context.Context, key string, tags []string, versions []uint64, value bool) (any, error) {
	if len(tags) != len(versions) {
		return nil, lengthError(tags, versions)
	}
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	it := s.l1Item(ctx, key)
	ok := s.usable(it, value)
	if ok && s.vt.lookup(tags, versions) && s.fresh(it, versions) {
		return it.v, nil
	}

	var scratch [8]uint64
	tok := s.vt.begin(tags, scratch[:])
	b, err := s.l2.Get(ctx, key, tags, versions)
	if err != nil {
		return nil, err
	}
	s.vt.learn(tags, versions, tok)
	if b == nil {
		// L2 lost it (evicted, expired, deleted elsewhere). Our copy is
		// still checked against the versions by the caller.
		if ok {
			return it.v, nil
		}
		return nil, nil
	}
	sum := maphash.Bytes(s.seed, b)
	if ok && it.sum == sum {
		it.vers.Store(ptr(slices.Clone(versions)))
		return it.v, nil
	}
	if !value && it != nil && !it.raw {
		return b, nil // leave L1's decoded copy for GetValue
	}
	nv := any(b)
	raw := !value || s.decode == nil
	if !raw {
		if nv, err = s.decode(b); err != nil {
			return nil, nil // an entry that will not decode is a miss
		}
	}
	ni := &item{v: nv, raw: raw, sum: sum}
	ni.vers.Store(ptr(slices.Clone(versions)))
	_ = s.l1.SetValue(ctx, key, ni, len(b)+itemOverhead, s.l1TTL)
	return nv, nil
}

func ptr[T any](v T) *T { return &v }

// fresh says whether it may be served from L1 under the local versions:
// whether it is known to be as fresh as L2's copy.
func (s *Store) fresh(it *item, versions []uint64) bool {
	if p := it.vers.Load(); p != nil {
		return slices.Equal(*p, versions)
	}
	return it.remote == s.vt.remote.Load()
}

// Set implements [store.Store].
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.set(ctx, key, value, value, true, len(value), ttl)
}

// SetValue implements [store.ValueStore]. With Config.Encode, v is encoded
// for L2 and kept as it is in L1; without it, v must be a []byte.
func (s *Store) SetValue(ctx context.Context, key string, v any, size int, ttl time.Duration) error {
	if s.encode == nil {
		b, ok := v.([]byte)
		if !ok {
			return fmt.Errorf("tiered: SetValue of a %T without Config.Encode", v)
		}
		return s.set(ctx, key, b, b, true, size, ttl)
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	b, err := s.encode(v)
	if err != nil {
		return fmt.Errorf("tiered: encode: %w", err)
	}
	return s.set(ctx, key, b, v, false, size, ttl)
}

func (s *Store) set(ctx context.Context, key string, b []byte, v any, raw bool, size int, ttl time.Duration) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	remote := s.vt.remote.Load()
	if err := s.l2.Set(ctx, key, b, ttl); err != nil {
		return err
	}
	it := &item{v: v, raw: raw, sum: maphash.Bytes(s.seed, b), remote: remote}
	l1TTL := s.l1TTL
	if ttl > 0 && ttl < l1TTL {
		l1TTL = ttl
	}
	_ = s.l1.SetValue(ctx, key, it, size+itemOverhead, l1TTL)
	return nil
}

// Delete implements [store.Store]. It deletes from this instance's L1 and
// from L2; other instances' L1 copies live on until they expire, which is
// harmless to callers that check versions.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_ = s.l1.Delete(ctx, keys...)
	return s.l2.Delete(ctx, keys...)
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, tags []string, versions []uint64) error {
	if len(tags) != len(versions) {
		return lengthError(tags, versions)
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	if s.vt.lookup(tags, versions) {
		return nil
	}
	var scratch [8]uint64
	tok := s.vt.begin(tags, scratch[:])
	if err := s.l2.Versions(ctx, tags, versions); err != nil {
		return err
	}
	s.vt.learn(tags, versions, tok)
	return nil
}

// Bump implements [store.Store]. It bumps tags in L2, forgets this
// instance's copy of their versions, and publishes them on the bus before
// it returns. An error that wraps store.ErrUnavailable but comes with a
// lease means the bump landed in L2 but other instances may not have heard
// of it (they will when their L1TTL ends).
func (s *Store) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	lease, err := s.l2.Bump(ctx, tags, hold)
	return lease, s.after(ctx, tags, err)
}

// Release implements [store.Store], as Bump does.
func (s *Store) Release(ctx context.Context, tags []string, lease uint64) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.after(ctx, tags, s.l2.Release(ctx, tags, lease))
}

// after runs once L2 has answered a bump of tags (err is its answer): the
// bump may have landed even if it failed, so it is treated as landed.
func (s *Store) after(ctx context.Context, tags []string, err error) error {
	// Forget our versions only now: a read that learned the old version
	// from L2 before the bump landed began before this invalidation, so it
	// cannot install what it learned.
	s.vt.invalidate(tags, false)
	if s.bus == nil || len(tags) == 0 {
		return err
	}
	// Publish only after L2 has the new version: an instance that hears the
	// message and then reads L2 must find it there.
	if perr := s.bus.Publish(ctx, tags); perr != nil && err == nil {
		err = fmt.Errorf("tiered: bump stored in L2 but not published to other instances: %w: %w", store.ErrUnavailable, perr)
	}
	return err
}

// Stats are counters of a Store since New. Without a Bus they stay 0, and
// L1Trusted is true.
type Stats struct {
	// BusOutages counts the times the Bus reported that messages may have
	// been lost (onState(false): a broken or silent connection, an
	// unreadable message).
	BusOutages uint64
	// BusSilences counts the times the subscription was up but delivered
	// no message, not even this store's own heartbeats, for
	// Config.HeartbeatTimeout, so that the store stopped trusting its L1.
	BusSilences uint64
	// HeartbeatsSent counts the heartbeats this store published;
	// HeartbeatErrors those whose publication failed.
	HeartbeatsSent, HeartbeatErrors uint64
	// L1Trusted tells whether local versions are used now (so that a read
	// may be served from L1 without asking L2): false while the
	// subscription is down or silent.
	L1Trusted bool
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{L1Trusted: s.vt.live.Load()}
	if h := s.hb; h != nil {
		st.BusOutages = h.outages.Load()
		st.BusSilences = h.silences.Load()
		st.HeartbeatsSent = h.sent.Load()
		st.HeartbeatErrors = h.publishErrors.Load()
	}
	return st
}

// Close implements [store.Store]. It waits for bumps in flight, stops the
// heartbeat and the subscription and closes the L1 the store made; it does
// not close L2, a Config.L1 or the bus's client. Later calls return
// store.ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	already := s.closed.Swap(true)
	s.closeMu.Unlock()
	if already {
		return nil
	}
	if s.hb != nil {
		s.hb.stop()
		s.stop()
	}
	if s.ownL1 {
		return s.l1.Close()
	}
	return nil
}
