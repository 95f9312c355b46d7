package redisstore

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/rediscluster"
	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/redis/go-redis/v9"
)

// TestClusterFailover stops a master of the shared cluster under load, waits
// for its replica to take over, checks that the store only ever failed with
// store.ErrUnavailable, never returned a wrong value or a version that came
// back once replaced (versions are random: they are compared for equality
// only), and works again after the promotion; then it
// restarts the stopped node, which rejoins as a replica, and waits until the
// cluster is healthy again.
//
// It does not run in parallel with this package's other tests.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a node of the shared cluster")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		testdb.Unavailable(t, "redis-server", err)
	}
	rediscluster.Lock(t)         // no other test uses the cluster while a node is down
	rdb := clusterClient(t, nil) // skips (or fails under CI) when the cluster is not healthy
	guard(t, rdb)
	ctx := context.Background()

	nodes, err := rediscluster.Nodes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var victim, heir rediscluster.Node
	for _, m := range nodes {
		if !m.Is("master") || !m.Slots || m.Is("fail") {
			continue
		}
		for _, r := range nodes {
			if r.Is("slave") && r.Master == m.ID && !r.Is("fail") {
				victim, heir = m, r
			}
		}
	}
	if victim.ID == "" {
		t.Fatalf("no master with a replica in %+v", nodes)
	}
	admin := redis.NewClient(&redis.Options{Addr: victim.Addr})
	defer admin.Close()
	conf := map[string]string{}
	for _, p := range []string{"dir", "logfile", "cluster-config-file", "cluster-node-timeout", "port"} {
		kv, err := admin.ConfigGet(ctx, p).Result()
		if err != nil {
			t.Fatal(err)
		}
		conf[p] = kv[p]
	}
	if !strings.HasPrefix(conf["cluster-config-file"], "/") {
		conf["cluster-config-file"] = conf["dir"] + "/" + conf["cluster-config-file"]
	}
	stopped, restarted := false, false
	restart := func() {
		if !stopped || restarted {
			return // still running (the test ended before the stop), or back
		}
		restarted = true
		args := []string{"--daemonize", "yes", "--bind", "127.0.0.1", "--port", conf["port"],
			"--cluster-enabled", "yes", "--cluster-config-file", conf["cluster-config-file"],
			"--cluster-node-timeout", conf["cluster-node-timeout"], "--save", "", "--appendonly", "no",
			"--dir", conf["dir"], "--logfile", conf["logfile"]}
		if out, err := exec.Command("redis-server", args...).CombinedOutput(); err != nil {
			t.Errorf("restart %s: %v: %s", victim.Addr, err, out)
			return
		}
		// Back as a replica of its heir, in a healthy cluster.
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := clusterOK()
			if err == nil {
				var info string
				info, err = rediscluster.Replication(ctx, victim.Addr)
				if err == nil && (!strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up")) {
					err = fmt.Errorf("%s is not a synced replica yet", victim.Addr)
				}
			}
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("cluster not healthy 20s after restarting %s: %v", victim.Addr, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	prefix := testdb.KeyPrefix("gctest:")
	cleanup(t, rdb, prefix) // registered first, so it runs once the victim is back
	t.Cleanup(restart)      // whatever happens, leave the cluster whole

	s, err := New(rdb, Config{Prefix: prefix, Timeout: 200 * time.Millisecond, BreakerFailures: 5, BreakerCooldown: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Tags on every master, among them some on the victim's slots.
	var tags, victimTags []string
	for i := 0; len(victimTags) < 2 || len(tags) < 8; i++ {
		tag := fmt.Sprintf("f%d", i)
		c, err := rdb.MasterForKey(ctx, s.keys.tag(tag).version)
		if err != nil {
			t.Fatal(err)
		}
		if c.Options().Addr == victim.Addr {
			if len(victimTags) < 2 {
				victimTags = append(victimTags, tag)
				tags = append(tags, tag)
			}
		} else if len(tags) < 8 {
			tags = append(tags, tag)
		}
	}

	// A quiet instance, on its own client: it makes no call during the
	// failover, so nothing fails for it there; its first calls after the
	// promotion must still report the new master (or fail), never serve.
	quiet := newTestStore(t, clusterClient(t, nil), Config{Prefix: s.keys.entryPrefix[:len(s.keys.entryPrefix)-2], Timeout: 200 * time.Millisecond})
	if err := quiet.Versions(ctx, tags, make([]uint64, len(tags))); err != nil {
		t.Fatalf("quiet store before the failover: %v", err)
	}

	var (
		stop       atomic.Bool
		wg         sync.WaitGroup
		mu         sync.Mutex
		problems   []string
		unavail    atomic.Int64
		okVictim   atomic.Int64                   // successful Gets touching the victim's tags
		replaced   = map[string]map[uint64]bool{} // versions some goroutine saw replaced
		slowest    atomic.Int64
		phaseAfter atomic.Bool // set once the heir is master
		okAfter    atomic.Int64
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	check := func(op string, start time.Time, err error) bool {
		if d := time.Since(start); int64(d) > slowest.Load() {
			slowest.Store(int64(d))
		}
		if err == nil {
			return true
		}
		if !isUnavailable(err) {
			problem("%s: error not wrapping ErrUnavailable: %v", op, err)
		}
		unavail.Add(1)
		return false
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			last := map[string]uint64{}
			seen := map[string]map[uint64]bool{}
			bumped := map[string]bool{}
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("c%d", (g*3+i)%8) // entries the cleanup knows
				val := fmt.Sprintf("%s:%d:%d", key, g, i)
				rt := []string{tags[(g+i)%len(tags)], victimTags[i%len(victimTags)], tags[(g+2*i+1)%len(tags)]}
				v := make([]uint64, len(rt))

				start := time.Now()
				check("set", start, s.Set(ctx, key, []byte(val), time.Minute))

				start = time.Now()
				b, err := s.Get(ctx, key, rt, v)
				if check("get", start, err) {
					okVictim.Add(1)
					if phaseAfter.Load() {
						okAfter.Add(1)
					}
					if b != nil && !strings.HasPrefix(string(b), key+":") {
						problem("get %s: wrong value %q", key, b)
					}
					for j, tag := range rt {
						switch {
						case v[j] == 0:
							problem("tag %s read 0 with no hold", tag)
						case v[j] != last[tag] && seen[tag][v[j]]:
							problem("tag %s came back to %d, replaced before", tag, v[j])
						case v[j] == last[tag] && bumped[tag]:
							problem("tag %s repeated %d after a bump", tag, v[j])
						}
						if seen[tag] == nil {
							seen[tag] = map[uint64]bool{}
						}
						seen[tag][v[j]] = true
						last[tag], bumped[tag] = v[j], false
					}
				}

				bt := []string{rt[i%len(rt)]}
				start = time.Now()
				if _, err := s.Bump(ctx, bt, 0); check("bump", start, err) {
					bumped[bt[0]] = true
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			for tag, vs := range seen {
				if replaced[tag] == nil {
					replaced[tag] = map[uint64]bool{}
				}
				for v := range vs {
					if v != last[tag] {
						replaced[tag][v] = true
					}
				}
			}
			mu.Unlock()
		}(g)
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// The store works before the failover. On a loaded machine a call may
	// miss its 200ms deadline now and then: that is ErrUnavailable, as it
	// should be, and not what this test is about.
	for wait := time.Now(); okVictim.Load() < 20; {
		if time.Since(wait) > 10*time.Second {
			t.Fatalf("before the failover: %d errors, %d successes in 10s; problems %v", unavail.Load(), okVictim.Load(), problems)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := unavail.Load(); n > 0 {
		t.Logf("before the failover: %d calls failed with ErrUnavailable (a loaded machine), %d succeeded", n, okVictim.Load())
	}

	// Stop the master. SHUTDOWN NOSAVE: the process exits, and since Redis 7
	// only after its replica has what it acknowledged (see the package doc on
	// asynchronous replication).
	start := time.Now()
	stopped = true
	_ = admin.ShutdownNoSave(ctx).Err()
	t.Logf("stopped master %s; its replica is %s", victim.Addr, heir.Addr)

	// Wait for the heir to be promoted.
	for {
		role, err := replicaRole(ctx, heir.Addr)
		if err == nil && role == "master" && rediscluster.OK(victim.Addr) == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s not promoted within 20s (role %q, %v)", heir.Addr, role, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	phaseAfter.Store(true)
	promoted := time.Since(start)

	// The quiet store: failures (ErrUnavailable) until it has seen the new
	// master, which it counts, then successes.
	quietFails := 0
	for {
		err := quiet.Versions(ctx, tags, make([]uint64, len(tags)))
		if err == nil {
			break
		}
		if !isUnavailable(err) {
			t.Fatalf("quiet store after the failover: %v; want ErrUnavailable", err)
		}
		quietFails++
		if time.Since(start) > promoted+10*time.Second {
			t.Fatalf("quiet store still failing 10s after the promotion: %v; %+v", err, quiet.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := quiet.Stats(); st.MasterChanges < 1 || quietFails == 0 {
		t.Errorf("quiet store after the failover: %d failed calls, %+v; want the new master reported (MasterChanges ≥ 1)", quietFails, st)
	}
	t.Logf("quiet store: %d failed calls after the promotion, then served; %+v", quietFails, quiet.Stats())

	// The store works again by itself.
	for okAfter.Load() < 50 {
		if time.Since(start) > promoted+10*time.Second {
			t.Fatalf("store did not recover within 10s of the promotion: %d successes; %+v", okAfter.Load(), s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	recovered := time.Since(start)
	stop.Store(true)
	wg.Wait()
	t.Logf("promoted after %v, store serving again after %v; %d calls failed with ErrUnavailable; slowest call %v; %+v",
		promoted.Round(time.Millisecond), recovered.Round(time.Millisecond), unavail.Load(),
		time.Duration(slowest.Load()).Round(time.Millisecond), s.Stats())

	for _, p := range problems {
		t.Error(p)
	}
	if d := time.Duration(slowest.Load()); d > 200*time.Millisecond+250*time.Millisecond {
		t.Errorf("a call took %v with Timeout 200ms", d)
	}
	// After the load: no tag reads a version that was replaced before.
	v := make([]uint64, len(tags))
	if err := s.Versions(ctx, tags, v); err != nil {
		t.Fatal(err)
	}
	for i, tag := range tags {
		if replaced[tag][v[i]] {
			t.Errorf("tag %s reads %d after the failover, a version replaced before", tag, v[i])
		}
	}

	restart()
	t.Logf("%s rejoined as a replica; cluster healthy %v after the stop", victim.Addr, time.Since(start).Round(time.Millisecond))
}

// replicaRole returns "master" or "slave" from INFO replication of addr.
func replicaRole(ctx context.Context, addr string) (string, error) {
	info, err := rediscluster.Replication(ctx, addr)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if role, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return role, nil
		}
	}
	return "", fmt.Errorf("%s: no role in INFO", addr)
}
