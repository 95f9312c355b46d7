package tiered

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memstore"
	"github.com/gormcache/gormcache/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("RedisBus", func(t *testing.T) {
		t.Parallel()
		rdb := newRedis(t, nil)
		storetest.Run(t, func(t *testing.T) store.Store {
			return newTiered(t, newL2(t), Config{Bus: NewRedisBus(rdb, testdb.RandomName("gctest:tiered:"))})
		})
	})
	t.Run("LocalBus", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			return newTiered(t, newL2(t), Config{Bus: NewLocalBus()})
		})
	})
	t.Run("NoBus", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			return newTiered(t, newL2(t), Config{L1TTL: time.Second, L1MaxBytes: 1 << 20})
		})
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	l1, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	enc := func(any) ([]byte, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"BusDefaults", Config{Bus: NewLocalBus()}, ""},
		{"NoBusNoTTL", Config{}, "L1TTL must be set"},
		{"NoBusTTL", Config{L1TTL: time.Second}, ""},
		{"NegativeTTL", Config{Bus: NewLocalBus(), L1TTL: -1}, "L1TTL must not be negative"},
		{"NegativeMaxBytes", Config{Bus: NewLocalBus(), L1MaxBytes: -1}, "L1MaxBytes must not be negative"},
		{"MaxBytesWithL1", Config{Bus: NewLocalBus(), L1: l1, L1MaxBytes: 1}, "must be 0 when L1 is set"},
		{"GivenL1", Config{Bus: NewLocalBus(), L1: l1}, ""},
		{"EncodeOnly", Config{Bus: NewLocalBus(), Encode: enc}, "both Encode and Decode"},
		{"Heartbeat", Config{Bus: NewLocalBus(), HeartbeatInterval: time.Second, HeartbeatTimeout: 2 * time.Second}, ""},
		{"HeartbeatIntervalOnly", Config{Bus: NewLocalBus(), HeartbeatInterval: time.Millisecond}, ""},
		{"HeartbeatTimeoutOnly", Config{Bus: NewLocalBus(), HeartbeatTimeout: 5 * time.Second}, ""},
		{"NegativeHeartbeat", Config{Bus: NewLocalBus(), HeartbeatInterval: -1}, "HeartbeatInterval must not be negative"},
		{"NegativeHeartbeatTimeout", Config{Bus: NewLocalBus(), HeartbeatTimeout: -1}, "HeartbeatTimeout must not be negative"},
		{"HeartbeatTimeoutShort", Config{Bus: NewLocalBus(), HeartbeatInterval: time.Second, HeartbeatTimeout: 1500 * time.Millisecond}, "at least twice HeartbeatInterval"},
		{"HeartbeatTimeoutUnderDefault", Config{Bus: NewLocalBus(), HeartbeatTimeout: time.Second}, "at least twice HeartbeatInterval (1s)"},
		{"HeartbeatNoBus", Config{L1TTL: time.Second, HeartbeatInterval: time.Second}, "must be 0 without one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(newL2(t), tc.cfg)
			if s != nil {
				defer s.Close()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (!errors.Is(err, store.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tiered: ")):
				t.Fatalf("New: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(nil, Config{Bus: NewLocalBus()}); err == nil {
		t.Fatal("New(nil L2): no error")
	}
	// A given L1 outlives the store.
	s, err := New(newL2(t), Config{Bus: NewLocalBus(), L1: l1})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := l1.Set(bg, "k", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Config.L1 closed by Close: %v", err)
	}
}

// TestL1Hit checks that a repeated read is served by L1 without a round trip
// to L2, and that reads which must see L2 do.
func TestL1Hit(t *testing.T) {
	t.Parallel()
	l2 := &countingStore{Store: newL2(t)}
	s := newTiered(t, l2, Config{Bus: NewLocalBus()})
	tags := []string{"users", store.GlobalTag}
	v := make([]uint64, 2)
	if err := s.Versions(bg, tags, v); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(bg, "k", stamp(v), time.Minute); err != nil {
		t.Fatal(err)
	}
	before := l2.calls()
	for range 10 {
		got := make([]uint64, 2)
		b, err := s.Get(bg, "k", tags, got)
		if err != nil || !served(b, got) {
			t.Fatalf("Get = %x %v, %v; want a hit", b, got, err)
		}
	}
	if n := l2.calls() - before; n != 0 {
		t.Fatalf("%d calls reached L2 for 10 repeated reads; want 0", n)
	}
	if _, err := s.Bump(bg, []string{"users"}, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]uint64, 2)
	b, _ := s.Get(bg, "k", tags, got)
	if served(b, got) || l2.calls() == before {
		t.Fatalf("after a bump: served %v, L2 calls %d; want a miss from L2", served(b, got), l2.calls()-before)
	}
}

// TestSameInstance is the in-process guarantee: once Bump (or Release) has
// returned, no read that starts later through the same store returns a
// version the bump replaced, so no entry stamped before it is served.
// Readers run concurrently with the bumps and store what they "compute"
// the way the plugin does, stamped with the versions they read first.
func TestSameInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		bus  func(t *testing.T) Bus
	}{
		{"RedisBus", func(t *testing.T) Bus { return NewRedisBus(newRedis(t, nil), testdb.RandomName("gctest:tiered:")) }},
		{"LocalBus", func(*testing.T) Bus { return NewLocalBus() }},
		{"NoBus", func(*testing.T) Bus { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTiered(t, newL2(t), Config{Bus: tc.bus(t), L1TTL: time.Minute})
			checkSameInstance(t, s, s, 1500)
		})
	}
}

// retiredSet holds the versions that completed bumps replaced, as an
// immutable map behind an atomic pointer: a reader takes a snapshot before
// it starts.
type retiredSet struct {
	mu sync.Mutex
	p  atomic.Pointer[map[uint64]bool]
}

func (r *retiredSet) add(vs ...uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[uint64]bool{}
	if old := r.p.Load(); old != nil {
		for k := range *old {
			m[k] = true
		}
	}
	for _, v := range vs {
		if v != 0 {
			m[v] = true
		}
	}
	r.p.Store(&m)
}

func (r *retiredSet) snapshot() map[uint64]bool {
	if p := r.p.Load(); p != nil {
		return *p
	}
	return nil
}

// checkSameInstance bumps through writer n times while readers read through
// reader; with writer == reader it checks the same-instance guarantee.
func checkSameInstance(t *testing.T, writer, reader *Store, n int) {
	tags := []string{"t", store.GlobalTag}
	keys := []string{"k0", "k1", "k2"}
	var retired retiredSet
	var stop atomic.Bool
	var hits, reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]uint64, len(tags))
			for i := 0; !stop.Load(); i++ {
				key := keys[(g+i)%len(keys)]
				old := retired.snapshot()
				var b []byte
				var err error
				if i%2 == 0 {
					b, err = reader.Get(bg, key, tags, v)
				} else {
					var x any
					x, err = reader.GetValue(bg, key, tags, v)
					b, _ = x.([]byte)
				}
				if err != nil {
					errs <- err.Error()
					return
				}
				reads.Add(1)
				if old[v[0]] {
					errs <- "a read returned a version replaced by a bump that had returned before it began"
					return
				}
				if served(b, v) {
					hits.Add(1)
					continue
				}
				if !slices.Contains(v, 0) {
					_ = reader.Set(bg, key, stamp(v), time.Minute)
				}
			}
		}()
	}
	v := make([]uint64, len(tags))
	for i := range n {
		if err := writer.l2.Versions(bg, tags[:1], v[:1]); err != nil {
			t.Fatal(err)
		}
		before := v[0]
		if i%3 == 0 {
			lease, err := writer.Bump(bg, tags[:1], time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			retired.add(before)
			if err := writer.Release(bg, tags[:1], lease); err != nil {
				t.Fatal(err)
			}
		} else if _, err := writer.Bump(bg, tags[:1], 0); err != nil {
			t.Fatal(err)
		}
		retired.add(before)
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let readers hit between bumps
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d bumps, %d reads, %d hits", n, reads.Load(), hits.Load())
}

// TestValues checks the ValueStore side with a codec: values stay decoded
// in L1, travel as bytes through L2, and another instance decodes them once.
func TestValues(t *testing.T) {
	t.Parallel()
	type entry struct{ s string }
	var decodes atomic.Int64
	cfg := Config{
		Bus:    NewLocalBus(),
		Encode: func(v any) ([]byte, error) { return []byte(v.(*entry).s), nil },
		Decode: func(b []byte) (any, error) {
			decodes.Add(1)
			if string(b) == "bad" {
				return nil, errors.New("bad")
			}
			return &entry{string(b)}, nil
		},
	}
	l2 := newL2(t)
	a := newTiered(t, l2, cfg)
	b := newTiered(t, l2, cfg)
	tags := []string{"t"}
	v := make([]uint64, 1)
	e := &entry{"rows"}
	if err := a.SetValue(bg, "k", e, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetValue(bg, "k", tags, v); err != nil || got != e {
		t.Fatalf("same instance GetValue = %v, %v; want the very value set", got, err)
	}
	got, err := b.GetValue(bg, "k", tags, v)
	if err != nil || got.(*entry).s != "rows" {
		t.Fatalf("other instance GetValue = %v, %v", got, err)
	}
	again, _ := b.GetValue(bg, "k", tags, v)
	if again != got || decodes.Load() != 1 {
		t.Fatalf("second read: same value %v, %d decodes; want the L1 copy and 1 decode", again == got, decodes.Load())
	}
	// Bytes through Get still work beside values.
	if raw, err := b.Get(bg, "k", tags, v); err != nil || string(raw) != "rows" {
		t.Fatalf("Get of a value = %q, %v", raw, err)
	}
	// An entry that will not decode is a miss.
	if err := l2.Set(bg, "bad", []byte("bad"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetValue(bg, "bad", tags, v); got != nil || err != nil {
		t.Fatalf("undecodable entry: GetValue = %v, %v; want a miss", got, err)
	}

	// Without a codec, values are bytes.
	plain := newTiered(t, l2, Config{Bus: NewLocalBus()})
	if err := plain.SetValue(bg, "p", 42, 8, time.Minute); err == nil {
		t.Fatal("SetValue of an int without a codec: no error")
	}
	if err := plain.SetValue(bg, "p", []byte("x"), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := plain.GetValue(bg, "p", tags, v); !bytes.Equal(got.([]byte), []byte("x")) {
		t.Fatalf("GetValue without codec = %v", got)
	}
}

// TestFresherInL2 checks that an instance whose L1 copy of an entry may be
// outdated by what another instance stored in L2 reads L2's copy instead of
// serving its own (and so shares the other instance's work).
func TestFresherInL2(t *testing.T) {
	t.Parallel()
	bus := NewLocalBus()
	l2 := newL2(t)
	a := newTiered(t, l2, Config{Bus: bus})
	b := newTiered(t, l2, Config{Bus: bus})
	tags := []string{"t"}
	v := make([]uint64, 1)
	if err := a.Versions(bg, tags, v); err != nil {
		t.Fatal(err)
	}
	_ = a.Set(bg, "k", stamp(v), time.Minute)
	if x, _ := a.Get(bg, "k", tags, v); !served(x, v) {
		t.Fatal("no hit before the bump")
	}
	if _, err := b.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	// b recomputes and stores first.
	bv := make([]uint64, 1)
	if x, _ := b.Get(bg, "k", tags, bv); served(x, bv) {
		t.Fatal("b served an entry stamped before its own bump")
	}
	_ = b.Set(bg, "k", stamp(bv), time.Minute)
	// a must now find b's entry, not its own outdated copy.
	if x, _ := a.Get(bg, "k", tags, v); !served(x, v) || v[0] != bv[0] {
		t.Fatalf("a read %x under %v; want b's entry under %v", x, v, bv)
	}
}

// TestLocalBusOutage checks that an outage report drops every version
// learned before it.
func TestLocalBusOutage(t *testing.T) {
	t.Parallel()
	bus := NewLocalBus()
	l2 := &countingStore{Store: newL2(t)}
	s := newTiered(t, l2, Config{Bus: bus})
	v := make([]uint64, 1)
	_ = s.Versions(bg, []string{"t"}, v)
	_ = s.Versions(bg, []string{"t"}, v)
	if n := l2.versions.Load(); n != 1 {
		t.Fatalf("%d L2 reads for two reads of one tag; want 1", n)
	}
	bus.outage()
	if s.vt.size() != 0 {
		t.Fatalf("%d versions survive an outage", s.vt.size())
	}
	_ = s.Versions(bg, []string{"t"}, v)
	if n := l2.versions.Load(); n != 2 {
		t.Fatalf("after an outage the read did not go to L2 (%d reads)", n)
	}
}

// TestNoBusTTL checks that without a bus, another instance's bump is seen
// within L1TTL, and that the store's own bumps are seen at once.
func TestNoBusTTL(t *testing.T) {
	t.Parallel()
	l2 := newL2(t)
	const ttl = 100 * time.Millisecond
	a := newTiered(t, l2, Config{L1TTL: ttl})
	b := newTiered(t, l2, Config{L1TTL: ttl})
	tags := []string{"t"}
	v := make([]uint64, 1)
	_ = a.Versions(bg, tags, v)
	old := v[0]
	if _, err := a.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	if _ = a.Versions(bg, tags, v); v[0] == old {
		t.Fatal("a still reads the version its own bump replaced")
	}
	mine := v[0]
	start := time.Now()
	if _, err := b.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "a to see b's bump", func() bool {
		_ = a.Versions(bg, tags, v)
		return v[0] != mine
	})
	if d := time.Since(start); d > ttl+time.Second {
		t.Fatalf("b's bump seen by a after %v; L1TTL is %v", d, ttl)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s := newTiered(t, newL2(t), Config{Bus: NewLocalBus()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, 1)
	for name, err := range map[string]error{
		"Get":      func() error { _, err := s.Get(bg, "k", []string{"t"}, v); return err }(),
		"GetValue": func() error { _, err := s.GetValue(bg, "k", []string{"t"}, v); return err }(),
		"Set":      s.Set(bg, "k", nil, 0),
		"Delete":   s.Delete(bg, "k"),
		"Versions": s.Versions(bg, []string{"t"}, v),
		"Bump":     func() error { _, err := s.Bump(bg, []string{"t"}, 0); return err }(),
		"Release":  s.Release(bg, []string{"t"}, 1),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	for _, tags := range [][]string{
		{"users"},
		{"users", "orders", store.GlobalTag},
		{"", "a\x00b", strings.Repeat("x", 300), "public.\"Weird\" name"},
	} {
		got, err := parsePayload(string(appendPayload(nil, tags)))
		if err != nil || !slices.Equal(got, tags) {
			t.Errorf("round trip of %q = %q, %v", tags, got, err)
		}
	}
	for _, bad := range []string{"", "\x02users", "\x01\x05ab", "\x01\xff"} {
		if _, err := parsePayload(bad); err == nil {
			t.Errorf("parsePayload(%q): no error", bad)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(string(appendPayload(nil, []string{"users", "*"})))
	f.Add("\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")
	f.Fuzz(func(t *testing.T, p string) {
		tags, err := parsePayload(p)
		if err != nil {
			return
		}
		again, err := parsePayload(string(appendPayload(nil, tags)))
		if err != nil || !slices.Equal(again, tags) {
			t.Fatalf("%q parses to %q, whose encoding parses to %q, %v", p, tags, again, err)
		}
	})
}
