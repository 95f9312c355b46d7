// Package rediscluster drives the six-node Redis Cluster that scripts/services
// starts on 127.0.0.1:7000-7005, for tests that stop a master under load.
// Lock serialises such tests across packages (go test runs packages in
// parallel processes).
package rediscluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addrs are the cluster's nodes.
var Addrs = []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"}

// Tests that use the cluster hold a shared lock (Use); tests that stop a
// node hold it exclusively (Lock), so that no conformance test sees a
// failover it did not ask for. The lock is a flock on a file (across the
// processes of go test ./...) and an RWMutex (within one).
var (
	mu         sync.RWMutex
	holderMu   sync.Mutex
	holderName string
)

func lockFile(t testing.TB, how int) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "gormcache-cluster.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

// Use marks t as using the cluster until it ends (a shared lock), and
// waits until the cluster is healthy; it returns that health check's error.
// Within a test holding Lock, it does nothing.
func Use(t testing.TB) error {
	t.Helper()
	holderMu.Lock()
	h := holderName
	holderMu.Unlock()
	if h != "" && (t.Name() == h || strings.HasPrefix(t.Name(), h+"/")) {
		return nil
	}
	mu.RLock()
	unlock := lockFile(t, syscall.LOCK_SH)
	t.Cleanup(func() { unlock(); mu.RUnlock() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := OK("")
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Lock takes the cluster for t alone (a test that stops nodes) until t ends.
func Lock(t testing.TB) {
	t.Helper()
	mu.Lock()
	unlock := lockFile(t, syscall.LOCK_EX)
	holderMu.Lock()
	holderName = t.Name()
	holderMu.Unlock()
	t.Cleanup(func() {
		holderMu.Lock()
		holderName = ""
		holderMu.Unlock()
		unlock()
		mu.Unlock()
	})
}

// Node is one line of CLUSTER NODES.
type Node struct {
	ID, Addr, Master string
	Flags            []string
	Slots            bool
}

// Is reports whether the node has flag ("master", "slave", "fail", …).
func (n Node) Is(flag string) bool {
	for _, f := range n.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Nodes returns CLUSTER NODES as the first answering node (but except) sees it.
func Nodes(ctx context.Context, except string) ([]Node, error) {
	var lastErr error
	for _, addr := range Addrs {
		if addr == except {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		out, err := c.ClusterNodes(ctx).Result()
		c.Close()
		if err != nil {
			lastErr = err
			continue
		}
		var nodes []Node
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			nodes = append(nodes, Node{ID: f[0], Addr: addr, Flags: strings.Split(f[2], ","), Master: f[3], Slots: len(f) > 8})
		}
		return nodes, nil
	}
	return nil, lastErr
}

// OK returns nil when every node but except says cluster_state:ok.
func OK(except string) error {
	for _, addr := range Addrs {
		if addr == except {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		cancel()
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster state not ok", addr)
		}
	}
	return nil
}

// Replication returns INFO replication of addr.
func Replication(ctx context.Context, addr string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	return c.Info(ctx, "replication").Result()
}

// Stopped is a master stopped by StopMaster.
type Stopped struct {
	Victim, Heir string
	conf         map[string]string
}

// StopMaster stops (SHUTDOWN NOSAVE) a master that has a live replica.
func StopMaster(ctx context.Context) (*Stopped, error) {
	nodes, err := Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	s := &Stopped{conf: map[string]string{}}
	for _, m := range nodes {
		if !m.Is("master") || !m.Slots || m.Is("fail") {
			continue
		}
		for _, r := range nodes {
			if r.Is("slave") && r.Master == m.ID && !r.Is("fail") {
				s.Victim, s.Heir = m.Addr, r.Addr
			}
		}
	}
	if s.Victim == "" {
		return nil, fmt.Errorf("no master with a replica in %+v", nodes)
	}
	admin := redis.NewClient(&redis.Options{Addr: s.Victim})
	defer admin.Close()
	for _, p := range []string{"dir", "logfile", "cluster-config-file", "cluster-node-timeout", "port"} {
		kv, err := admin.ConfigGet(ctx, p).Result()
		if err != nil {
			return nil, err
		}
		s.conf[p] = kv[p]
	}
	if !strings.HasPrefix(s.conf["cluster-config-file"], "/") {
		s.conf["cluster-config-file"] = s.conf["dir"] + "/" + s.conf["cluster-config-file"]
	}
	_ = admin.ShutdownNoSave(ctx).Err() // the connection drops: no answer
	return s, nil
}

// WaitPromoted waits until the heir is a master and the other nodes are ok.
func (s *Stopped) WaitPromoted(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		info, err := Replication(ctx, s.Heir)
		if err == nil && strings.Contains(info, "role:master") && OK(s.Victim) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not promoted within %v (%v)", s.Heir, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the stopped node again and waits until it is a synced
// replica in a healthy cluster.
func (s *Stopped) Restart(ctx context.Context, within time.Duration) error {
	args := []string{"--daemonize", "yes", "--bind", "127.0.0.1", "--port", s.conf["port"],
		"--cluster-enabled", "yes", "--cluster-config-file", s.conf["cluster-config-file"],
		"--cluster-node-timeout", s.conf["cluster-node-timeout"], "--save", "", "--appendonly", "no",
		"--dir", s.conf["dir"], "--logfile", s.conf["logfile"]}
	if out, err := exec.Command("redis-server", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("restart %s: %v: %s", s.Victim, err, out)
	}
	deadline := time.Now().Add(within)
	for {
		err := OK("")
		if err == nil {
			var info string
			info, err = Replication(ctx, s.Victim)
			if err == nil && (!strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up")) {
				err = fmt.Errorf("%s is not a synced replica yet", s.Victim)
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy %v after restarting %s: %v", within, s.Victim, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
