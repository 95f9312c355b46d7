package memcachestore_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/storetest"
)

// TestVersionsNeverRepeat: every bump writes a fresh random version, so a
// tag whose record went back to an older state (a copy of the record from
// before the last bump, as a replicated pool or a server that held the tag
// before a change of the server list may have it) is bumped to a version
// never handed out, not (as with version+1) to the lost bump's version.
// The tags of one call get distinct versions.
func TestVersionsNeverRepeat(t *testing.T) {
	t.Parallel()
	prefix := testdb.KeyPrefix("gctest:")
	s := newStore(t, memcachestore.Config{Prefix: prefix})
	mc := sharedClient(t)
	key := prefix + "v:t"

	handed := map[uint64]string{}
	note := func(what string) []byte {
		t.Helper()
		v := storetest.Versions(t, s, "t")[0]
		if v == 0 || v >= 1<<63 {
			t.Fatalf("%s: version %d is not in [1, 2^63)", what, v)
		}
		if prev, ok := handed[v]; ok {
			t.Fatalf("%s: version %d was already handed out (%s)", what, v, prev)
		}
		handed[v] = what
		it, err := mc.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		return it.Value
	}
	bump := func(tags ...string) {
		t.Helper()
		if _, err := s.Bump(ctx, tags, 0); err != nil {
			t.Fatal(err)
		}
	}
	note("first read")
	bump("t")
	rec1 := note("first bump")
	bump("t")
	note("second bump")
	// The record goes back to its state after the first bump.
	if err := mc.Set(&memcache.Item{Key: key, Value: rec1}); err != nil {
		t.Fatal(err)
	}
	bump("t")
	note("bump after the loss") // version+1: the second bump's version
	for i := 0; i < 50; i++ {
		bump("t")
		note("later bump")
	}

	tags := []string{"a", "b", "c"}
	for _, tag := range tags {
		if err := mc.Set(&memcache.Item{Key: prefix + "v:" + tag, Value: []byte("12345")}); err != nil {
			t.Fatal(err)
		}
	}
	bump(tags...)
	v := storetest.Versions(t, s, tags...)
	seen := map[uint64]bool{12345: true, 12346: true}
	for _, x := range v {
		if x == 0 || x >= 1<<63 || seen[x] {
			t.Fatalf("tags bumped from 12345 by one call read %v; want distinct fresh versions", v)
		}
		seen[x] = true
	}
}

// TestBumpLosesEveryRace runs the store through a proxy that, before it
// passes on a cas, rewrites the record (same value, new cas id) as a
// concurrent bumper would: every attempt loses. The bump must fail with
// store.ErrUnavailable, so that the plugin treats the tags as not bumped,
// and must not open the breaker (memcached answered every call).
func TestBumpLosesEveryRace(t *testing.T) {
	t.Parallel()
	mc := sharedClient(t) // skips without the shared memcached
	p := newRacingProxy(t, sharedAddr, mc)
	s, err := memcachestore.New(client(p.addr), memcachestore.Config{Prefix: testdb.KeyPrefix("gctest:"), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := storetest.Versions(t, s, store.GlobalTag, "users")

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Bump", func() error { _, err := s.Bump(ctx, []string{store.GlobalTag}, 0); return err }},
		{"BumpHeld", func() error { _, err := s.Bump(ctx, []string{store.GlobalTag, "users"}, time.Minute); return err }},
		{"Release", func() error { return s.Release(ctx, []string{store.GlobalTag}, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := p.rewrites.Load()
			err := tc.call()
			if err == nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "cas races") {
				t.Fatalf("a bump that lost every cas race returned %v; want an error wrapping store.ErrUnavailable", err)
			}
			if got := p.rewrites.Load() - n; got < 100 {
				t.Errorf("%d cas attempts; want at least 100", got)
			}
		})
	}
	if st := s.Stats(); st.BreakerOpen || st.BreakerOpens != 0 || st.Errors != 0 {
		t.Errorf("lost races counted as server failures: %+v", st)
	}
	p.racing.Store(false)
	if _, err := s.Bump(ctx, []string{store.GlobalTag}, 0); err != nil {
		t.Fatalf("bump without the races: %v", err)
	}
	if v := storetest.Versions(t, s, store.GlobalTag); v[0] == 0 || v[0] == before[0] {
		t.Errorf("after a successful bump %s reads %d (before %d)", store.GlobalTag, v[0], before[0])
	}
}

// racingProxy forwards memcached's text protocol to a server; while racing
// is set, it rewrites the record named by every cas before passing the cas
// on, so that the cas fails with EXISTS.
type racingProxy struct {
	addr     string
	racing   atomic.Bool
	rewrites atomic.Int64
}

func newRacingProxy(t *testing.T, target string, admin *memcache.Client) *racingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &racingProxy{addr: l.Addr().String()}
	p.racing.Store(true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, up)
				_ = c.Close()
			}()
			go func() {
				defer wg.Done()
				p.forward(up, c, admin)
				_ = up.Close()
			}()
		}
	}()
	return p
}

// forward copies the client's commands to the server, one command (and its
// data block) at a time.
func (p *racingProxy) forward(up io.Writer, c io.Reader, admin *memcache.Client) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "cas" && p.racing.Load() {
			// A concurrent bumper gets there first.
			if it, err := admin.Get(f[1]); err == nil {
				_ = admin.Set(it)
			}
			p.rewrites.Add(1)
		}
		if _, err := io.WriteString(up, line); err != nil {
			return
		}
		if len(f) > 4 {
			switch f[0] {
			case "set", "add", "replace", "append", "prepend", "cas":
				n, err := strconv.Atoi(f[4])
				if err != nil {
					return
				}
				if _, err := io.CopyN(up, r, int64(n)+2); err != nil {
					return
				}
			}
		}
	}
}
