package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// errMasterChanged is the cause of the store.ErrUnavailable a call returns
// when the store found that Redis is served by another master than before:
// a restarted server, or a failover. Such a master may have lost the last
// bumps (replication is asynchronous, snapshots are old), so its versions
// can validate entries again: the caller must treat it as an outage (the
// plugin bumps store.GlobalTag before serving again).
var errMasterChanged = errors.New("the Redis master changed (restart or failover): it may have lost bumps")

// masterWatch tells whether the masters a client talks to are the ones it
// talked to before. A master is known by its fingerprint, run_id (random
// for every start of a process) and master_replid (new when a replica is
// promoted), from INFO: a restart changes the
// first, a failover the address or both.
//
// Checking costs a round trip, so the watch checks only when something may
// have changed: a hook on the client (on every node client of a cluster)
// counts suspect events (see watchHook), and a call whose result arrived after a suspect event not yet
// covered by a check runs one (coalesced) before its result is trusted. A
// master cannot change under an established connection: a new master means
// new connections, or, for a cluster, redirections to another node.
type masterWatch struct {
	single  *redis.Client        // a single node or Sentinel; or
	cluster *redis.ClusterClient // a cluster
	timeout time.Duration        // bound of a check, as of a call
	trips   *atomic.Uint64       // the store's round trips (a check is one)

	suspect atomic.Uint64 // suspect events so far; starts at 1: nothing is known
	checked atomic.Uint64 // the value of suspect that the last check covered
	changes atomic.Uint64 // masters found changed (Stats.MasterChanges)
	checks  atomic.Uint64 // checks run (Stats.MasterChecks)
	flight  singleflight.Group

	mu     sync.Mutex
	known  map[string]string      // master address → fingerprint; nil before the first check
	hooked map[*redis.Client]bool // cluster node clients that have the hook

	slots atomic.Pointer[string] // the last view of the masters from CLUSTER SLOTS
}

// newMasterWatch returns a watch on rdb, or nil for a client it cannot
// watch (a wrapper of unknown type).
func newMasterWatch(rdb redis.UniversalClient, timeout time.Duration, trips *atomic.Uint64) *masterWatch {
	w := &masterWatch{timeout: timeout, trips: trips}
	w.suspect.Store(1)
	switch c := rdb.(type) {
	case *redis.Client:
		w.single = c
		c.AddHook(watchHook{w})
	case *redis.ClusterClient:
		w.cluster = c
		w.hooked = map[*redis.Client]bool{}
		// Node clients made from now on; the others are hooked by the
		// first check.
		c.OnNewNode(w.hook)
	default:
		return nil
	}
	return w
}

// hook adds the watch's hook to a cluster node client, once.
func (w *masterWatch) hook(c *redis.Client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.hooked[c] {
		w.hooked[c] = true
		c.AddHook(watchHook{w})
	}
}

// verify returns nil if the result of a call that started when the count
// of changes was changesBefore can be trusted: every suspect event seen so
// far has been checked, and no check found a changed master meanwhile. It
// returns an error wrapping errMasterChanged when a master changed, and the
// check's error when a check could not be completed.
func (w *masterWatch) verify(ctx context.Context, changesBefore uint64) error {
	// Checks cover the events before they start: wait for one that started
	// after the events this call may have seen.
	for target := w.suspect.Load(); w.checked.Load() < target; {
		ch := w.flight.DoChan("", func() (any, error) {
			// Detached from the caller that happens to lead, and
			// bounded as a call is: followers must not fail because
			// the leader's caller gave up.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
			defer cancel()
			return nil, w.check(cctx)
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return r.Err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if w.changes.Load() != changesBefore {
		return errMasterChanged
	}
	return nil
}

// check reads the fingerprints of the masters, compares them with those it
// knew and remembers them. The first check has nothing to compare: it
// records.
func (w *masterWatch) check(ctx context.Context) error {
	covers := w.suspect.Load()
	w.checks.Add(1)
	w.trips.Add(1)
	fps, err := w.fingerprints(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	changed := false
	if w.known != nil {
		for addr, fp := range fps {
			if w.known[addr] != fp {
				changed = true // a new master, or a known one restarted or promoted
			}
		}
	}
	w.known = fps
	w.mu.Unlock()
	if changed {
		w.changes.Add(1)
	}
	for {
		c := w.checked.Load()
		if c >= covers || w.checked.CompareAndSwap(c, covers) {
			return nil
		}
	}
}

// fingerprints returns the fingerprint of every master, by address (one
// entry, under "", on a single client, whose address may change under
// Sentinel).
func (w *masterWatch) fingerprints(ctx context.Context) (map[string]string, error) {
	if w.single != nil {
		fp, err := fingerprint(ctx, w.single)
		if err != nil {
			return nil, err
		}
		return map[string]string{"": fp}, nil
	}
	w.mu.Lock()
	first := w.known == nil
	w.mu.Unlock()
	if first {
		// Hook the node clients made before the watch (replicas
		// included: one may be promoted on connections it already has,
		// and any node may be asked for CLUSTER SLOTS).
		if err := w.cluster.ForEachShard(ctx, func(_ context.Context, c *redis.Client) error {
			w.hook(c)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var (
		mu       sync.Mutex
		fps      = map[string]string{}
		failed   []string
		firstErr error
	)
	err := w.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		fp, err := fingerprint(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			// A known master that does not answer serves no call either
			// (its calls fail by themselves): it must not fail the calls
			// of the others (a dead master stays in the client's view
			// until a reload drops it). It keeps the fingerprint it had:
			// if it comes back changed, the next check sees it.
			failed = append(failed, c.Options().Addr)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", c.Options().Addr, err)
			}
			return nil
		}
		fps[c.Options().Addr] = fp
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(fps) == 0 && firstErr != nil {
		return nil, firstErr // nothing verified
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, addr := range failed {
		fp, ok := w.known[addr]
		if !ok {
			if w.known == nil {
				// The first check compares nothing: it records what
				// answers. One that answers later is new to the store,
				// and counted as a change then (a false alarm at worst).
				continue
			}
			// A master this store never knew (a promoted replica, say)
			// must be fingerprinted before any call is trusted.
			return nil, firstErr
		}
		fps[addr] = fp
	}
	return fps, nil
}

// fingerprint reads run_id and master_replid from INFO (its default
// sections, server and replication among them: one command, on the pool
// single commands use, in every Redis version) of the node c talks to.
func fingerprint(ctx context.Context, c *redis.Client) (string, error) {
	info, err := c.Info(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("INFO (the store needs it to notice a changed master): %w", err)
	}
	runID := infoField(info, "run_id")
	if runID == "" {
		return "", fmt.Errorf("%w: INFO without run_id", errReply)
	}
	return runID + "/" + infoField(info, "master_replid"), nil
}

// infoField returns the value of field in an INFO reply, "" if absent.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// watchHook counts suspect events on a client: new connections, commands
// that ended with a connection error or a redirection (the client may have
// gone on to another node, or a new connection), and on a cluster the
// reloads of the client's view of the slots.
type watchHook struct{ w *masterWatch }

func (h watchHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err == nil {
			h.w.suspect.Add(1)
		}
		return cn, err
	}
}

func (h watchHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if suspectError(cmd.Err()) || h.w.newSlots(cmd) {
			h.w.suspect.Add(1)
		}
		return err
	}
}

func (h watchHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if suspectError(c.Err()) {
				h.w.suspect.Add(1)
				break
			}
		}
		return err
	}
}

// newSlots tells whether cmd is a CLUSTER SLOTS that gave another view of
// the masters than the last one: the cluster client is reloading its view,
// and may next send a master's slots to another node on connections it
// already has (an idle client reloads every 10s, and may never see the old
// master fail). The reloads of an unchanged cluster, the checks' own among
// them, are not suspect.
func (w *masterWatch) newSlots(cmd redis.Cmder) bool {
	sc, ok := cmd.(*redis.ClusterSlotsCmd)
	if !ok || w.cluster == nil || sc.Err() != nil {
		return false
	}
	var b strings.Builder
	for _, r := range sc.Val() {
		b.WriteString(strconv.Itoa(r.Start) + "-" + strconv.Itoa(r.End) + "=")
		if len(r.Nodes) > 0 {
			b.WriteString(r.Nodes[0].ID + "@" + r.Nodes[0].Addr)
		}
		b.WriteByte(';')
	}
	view := b.String()
	old := w.slots.Swap(&view)
	return old == nil || *old != view
}

// suspectError tells whether a command's error may mean that the client
// talks, or is about to talk, to another master: anything but a reply of
// the server about the command itself.
func suspectError(err error) bool {
	if err == nil || err == redis.Nil {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true // network, timeout, pool
	}
	msg := rerr.Error()
	for _, p := range []string{"MOVED", "ASK", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "LOADING"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
