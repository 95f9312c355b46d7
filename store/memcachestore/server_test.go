package memcachestore_test

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/memcachestore"
	"github.com/gormcache/gormcache/store/storetest"
)

// server is a private memcached, so that tests may flush or kill it without
// disturbing the shared one.
type server struct {
	t    *testing.T
	port int
	addr string
	cmd  *exec.Cmd
}

// startServer starts a memcached on a free port, stopped when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	if _, err := exec.LookPath("memcached"); err != nil {
		testdb.Unavailable(t, "memcached binary", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &server{t: t, port: port, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command("memcached", "-u", "root", "-l", "127.0.0.1", "-p", fmt.Sprint(s.port), "-m", "16", "-U", "0")
	if err := cmd.Start(); err != nil {
		testdb.Unavailable(s.t, "memcached", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("memcached on %s did not come up: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server this test started, and waits for it.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestFlushAll checks that after memcached loses its data, versions come back
// different, so an entry stamped before the loss never matches again.
func TestFlushAll(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	mc := client(srv.addr)
	s, err := memcachestore.New(mc, memcachestore.Config{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tags := []string{"users", "orders", store.GlobalTag}
	before := storetest.Versions(t, s, tags...)
	if _, err := s.Bump(ctx, tags[:1], 0); err != nil {
		t.Fatal(err)
	}
	before[0] = storetest.Versions(t, s, tags[0])[0]
	lease, err := s.Bump(ctx, tags[1:2], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that stored its entry under the versions it read.
	if err := s.Set(ctx, "k", []byte("rows"), time.Minute); err != nil {
		t.Fatal(err)
	}

	if err := mc.FlushAll(); err != nil {
		t.Fatal(err)
	}
	// A slow reader stores its entry again after the flush, under the
	// versions it read before: the next Get must not match them.
	if err := s.Set(ctx, "k", []byte("rows"), time.Minute); err != nil {
		t.Fatal(err)
	}
	got := make([]uint64, len(tags))
	b, err := s.Get(ctx, "k", tags, got)
	if err != nil || string(b) != "rows" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	for i, tag := range tags {
		if got[i] == 0 || got[i] == before[i] {
			t.Errorf("tag %q: version %d before the flush, %d after; want a new non-zero version", tag, before[i], got[i])
		}
	}
	if again := storetest.Versions(t, s, tags...); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("versions after the flush not stable: %v then %v", got, again)
	}
	// The hold was lost with the data; its release still bumps.
	if err := s.Release(ctx, tags[1:2], lease); err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, s, tags[1]); v[0] == 0 || v[0] == got[1] {
		t.Errorf("release after the flush: version %d (was %d)", v[0], got[1])
	}
	// Losing one record (an eviction) is the same.
	if err := mc.Delete("gc:v:users"); err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, s, "users"); v[0] == 0 || v[0] == got[0] {
		t.Errorf("after the record's loss users reads %d (was %d)", v[0], got[0])
	}
	if st := s.Stats(); st.VersionsCreated != 7 {
		t.Errorf("VersionsCreated = %d, want 7 (3 + 3 after the flush + 1)", st.VersionsCreated)
	}
}

// TestFailOpenAndHeal kills the server: calls fail promptly with
// ErrUnavailable, the breaker opens and answers at once, and when the server
// is back the store resumes by itself.
func TestFailOpenAndHeal(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s, err := memcachestore.New(client(srv.addr), memcachestore.Config{
		Timeout:         500 * time.Millisecond,
		BreakerFailures: 3,
		BreakerCooldown: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	storetest.Versions(t, s, "t")

	srv.stop()
	v := make([]uint64, 1)
	for i := range 5 {
		start := time.Now()
		_, err := s.Get(ctx, "k", []string{"t"}, v)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get %d with the server down: err = %v, want ErrUnavailable", i, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Get %d with the server down took %v", i, d)
		}
	}
	st := s.Stats()
	if !st.BreakerOpen || st.BreakerOpens != 1 || st.Errors != 3 || st.Rejected != 2 {
		t.Fatalf("stats with the server down: %+v; want the breaker open after 3 errors, 2 calls rejected", st)
	}
	for name, err := range map[string]error{
		"Set":     s.Set(ctx, "k", []byte("v"), time.Minute),
		"Delete":  s.Delete(ctx, "k"),
		"Release": s.Release(ctx, []string{"t"}, 1),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the breaker open: err = %v", name, err)
		}
	}
	if _, err := s.Bump(ctx, []string{"t"}, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Bump with the breaker open: err = %v", err)
	}
	// After the cool-down a probe goes to the (still dead) server, fails, and
	// the breaker opens again.
	time.Sleep(250 * time.Millisecond)
	if _, err := s.Get(ctx, "k", nil, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("probe with the server down: %v", err)
	}
	if st := s.Stats(); !st.BreakerOpen || st.Errors != 4 {
		t.Fatalf("after a failed probe: %+v", st)
	}

	srv.start() // same port, empty
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := s.Get(ctx, "k", []string{"t"}, v)
		if err == nil {
			if b != nil || v[0] == 0 {
				t.Fatalf("after the restart Get = %q, version %d; want a miss and a fresh version", b, v[0])
			}
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get while healing: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not resume within 5s of the restart: %v (stats %+v)", err, s.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Stats(); st.BreakerOpen {
		t.Fatalf("breaker still open after a success: %+v", st)
	}
	if err := s.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
}
