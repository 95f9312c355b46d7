package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestMasterRestart restarts a private server while its store makes no call:
// go-redis reconnects and retries transparently, so without a check of the
// server's identity the first call after the restart succeeds on a server
// that may have lost bumps. It must fail with ErrUnavailable instead (the
// plugin then bumps the global tag before serving again), once.
func TestMasterRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer rdb.Close()
	// The client has a connection before the store exists: the store must
	// still learn the server's identity, on its first call.
	if err := rdb.Ping(bg).Err(); err != nil {
		t.Fatal(err)
	}
	s, err := New(rdb, Config{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, 1)
	for i := 0; i < 3; i++ {
		if err := s.Versions(bg, []string{"users"}, v); err != nil {
			t.Fatalf("call %d before the restart: %v", i, err)
		}
	}
	if st := s.Stats(); st.MasterChanges != 0 || st.MasterChecks != 1 {
		t.Fatalf("before the restart: %+v; want one check (the first call) and no change", st)
	}

	srv.kill()
	srv.start()

	err = s.Versions(bg, []string{"users"}, v)
	if !isUnavailable(err) || !errors.Is(err, errMasterChanged) {
		t.Fatalf("first call after a restart: %v; want ErrUnavailable for a changed master", err)
	}
	if st := s.Stats(); st.MasterChanges != 1 {
		t.Fatalf("after the restart: %+v; want MasterChanges 1", st)
	}
	// Then the store serves again, without a check per call.
	for i := 0; i < 3; i++ {
		if err := s.Versions(bg, []string{"users"}, v); err != nil {
			t.Fatalf("call %d after the restart: %v", i, err)
		}
	}
	if st := s.Stats(); st.MasterChanges != 1 || st.MasterChecks != 2 {
		t.Fatalf("after the restart: %+v; want 2 checks and 1 change", st)
	}
}

// TestSentinelFailover runs a private Sentinel over a private master and
// replica, and forces a failover (SENTINEL FAILOVER) while the store makes
// no call: its first call afterwards, on the promoted replica, must fail
// with ErrUnavailable for a changed master, then the store serves again.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a failover takes seconds")
	}
	master := startServer(t)
	replica := startServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	sentinel := startSentinel(t, master.port)
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()

	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	// Sentinel knows the replica (it may refuse the failover a little
	// longer, see below).
	for {
		reps, err := sc.Replicas(ctx, "m").Result()
		if err == nil && len(reps) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Sentinel does not see a healthy replica: %v %v", reps, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{sentinel}})
	defer rdb.Close()
	s, err := New(rdb, Config{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, 1)
	if err := s.Versions(ctx, []string{"users"}, v); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	for {
		err := sc.Failover(ctx, "m").Err()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // NOGOODSLAVE while Sentinel refreshes
	}
	// Wait until the replica is master and Sentinel says so.
	for {
		addr, err := sc.GetMasterAddrByName(ctx, "m").Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(replica.port) {
			if role, err := replicaRole(ctx, replica.addr()); err == nil && role == "master" {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no failover to %s: %v %v", replica.addr(), addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The client moves to the new master when Sentinel tells it
	// (+switch-master), a moment later: calls until then still reach the old
	// master, which has every bump. The first call that reaches the new one
	// must fail for a changed master.
	sawChange := false
	for s.Stats().MasterChanges == 0 {
		err := s.Versions(ctx, []string{"users"}, v)
		if err != nil && !isUnavailable(err) {
			t.Fatalf("after the failover: %v; want ErrUnavailable", err)
		}
		sawChange = errors.Is(err, errMasterChanged)
		if ctx.Err() != nil {
			t.Fatalf("the store did not notice the new master: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawChange {
		t.Error("the new master was counted, but the call that met it did not fail for it")
	}
	for {
		err := s.Versions(ctx, []string{"users"}, v)
		if err == nil {
			break
		}
		if !isUnavailable(err) || ctx.Err() != nil {
			t.Fatalf("after the change: %v; %+v", err, s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.MasterChanges != 1 {
		t.Fatalf("after the failover: %+v; want MasterChanges 1", st)
	}
	t.Logf("failover forced and noticed in %v; %+v", time.Since(start).Round(time.Millisecond), s.Stats())
}

// startSentinel starts a private Sentinel that monitors the master on port
// as "m", and returns its address.
func startSentinel(t *testing.T, masterPort int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor m 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 10000\n",
		port, dir, filepath.Join(dir, "log"), masterPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return "127.0.0.1:" + strconv.Itoa(port)
}
