package redisstore

import (
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestFailsOpenAndHeals runs a store against a private redis-server that
// hangs (SIGSTOP), dies (SIGKILL) and comes back empty on the same port:
// calls fail with store.ErrUnavailable within the timeout, the breaker stops
// the store from calling Redis, and the store resumes by itself.
func TestFailsOpenAndHeals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		clientTimeout bool // ContextTimeoutEnabled on the client
	}{
		{"ClientIgnoresDeadlines", false},
		{"ClientHonoursDeadlines", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			hook := &countHook{}
			rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), ContextTimeoutEnabled: tc.clientTimeout})
			defer rdb.Close()
			rdb.AddHook(hook)
			const (
				timeout  = 100 * time.Millisecond
				cooldown = 300 * time.Millisecond
				slack    = 150 * time.Millisecond // scheduling under -race
			)
			s, err := New(rdb, Config{Timeout: timeout, BreakerFailures: 3, BreakerCooldown: cooldown})
			if err != nil {
				t.Fatal(err)
			}
			tags := []string{"users", "orders"}
			v := make([]uint64, 2)
			if err := s.Set(bg, "k", []byte("rows"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Get(bg, "k", tags, v); err != nil || string(b) != "rows" {
				t.Fatalf("Get = %q, %v", b, err)
			}
			stamp := append([]uint64(nil), v...)

			// timed runs a Get and checks that it failed with
			// ErrUnavailable within max.
			timed := func(phase string, max time.Duration) {
				t.Helper()
				start := time.Now()
				_, err := s.Get(bg, "k", tags, v)
				if d := time.Since(start); d > max {
					t.Errorf("%s: Get took %v, want at most %v", phase, d, max)
				}
				if !isUnavailable(err) {
					t.Fatalf("%s: Get error %v; want one wrapping store.ErrUnavailable", phase, err)
				}
			}

			// 1. The server hangs: every call ends at the timeout, and
			// after 3 of them the breaker opens.
			srv.signal(syscall.SIGSTOP)
			for i := 0; i < 3; i++ {
				timed("hung server", timeout+slack)
			}
			st := s.Stats()
			if !st.BreakerOpen || st.BreakerOpens != 1 || st.Timeouts < 3 || st.Errors < 3 {
				t.Fatalf("after 3 timeouts: %+v; want the breaker open", st)
			}

			// 2. Open breaker: calls fail at once and do not reach Redis.
			reqs := hook.requests()
			for i := 0; i < 50; i++ {
				timed("open breaker", 20*time.Millisecond)
			}
			if got := hook.requests() - reqs; got != 0 {
				t.Errorf("open breaker: %d requests reached the client", got)
			}
			if s.Stats().Rejected < 50 {
				t.Errorf("Rejected = %d, want ≥ 50", s.Stats().Rejected)
			}

			// 3. The server is dead: for a second of calls every 5ms, only
			// the probes (one per cooldown) reach the network.
			srv.kill()
			reqs = hook.requests()
			start := time.Now()
			calls := 0
			for time.Since(start) < time.Second {
				timed("dead server", timeout+slack)
				calls++
				time.Sleep(5 * time.Millisecond)
			}
			probes := hook.requests() - reqs
			if max := int64(time.Second/cooldown) + 2; probes > max {
				t.Errorf("dead server: %d of %d calls reached the client; want at most %d probes", probes, calls, max)
			}
			t.Logf("dead server: %d calls, %d probes reached the client", calls, probes)

			// 4. The server comes back (empty) on the same port: the store
			// resumes by itself, and the lost versions read as new ones.
			srv.start()
			start = time.Now()
			for {
				b, err := s.Get(bg, "k", tags, v)
				if err == nil {
					if b != nil {
						t.Fatalf("entry %q survived a restart without persistence", b)
					}
					break
				}
				if !isUnavailable(err) {
					t.Fatal(err)
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("store did not resume within 5s: %v (%+v)", err, s.Stats())
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("resumed %v after restart; %+v", time.Since(start).Round(time.Millisecond), s.Stats())
			if s.Stats().BreakerOpen {
				t.Error("breaker still open after a success")
			}
			for i := range tags {
				if v[i] == 0 || v[i] == stamp[i] {
					t.Errorf("%s: version %d after the restart, %d before", tags[i], v[i], stamp[i])
				}
			}
			if err := s.Set(bg, "k", []byte("new rows"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Get(bg, "k", tags, v); err != nil || string(b) != "new rows" {
				t.Fatalf("after recovery Get = %q, %v", b, err)
			}
		})
	}
}
