package tiered

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// nShards splits the local version table so that readers of different tags
// do not share a lock. A power of two.
const nShards = 64

// versionTable is an instance's local copy of the tag versions it learned
// from L2. An entry is served from L1 without asking L2 only when every one
// of its tags has a version here.
//
// The table is trustworthy only while nothing can have changed a version
// without the table hearing of it: local bumps invalidate synchronously,
// remote bumps arrive from the bus, and while the bus is down or silent
// (live is false) the table is not used at all. Three counters keep a slow L2 read from
// installing a version that an invalidation has overtaken:
//
//   - gen counts resets (the bus went down or came up): a read that began
//     under another gen installs nothing;
//   - each shard's seq counts invalidations of its tags: a read that began
//     before an invalidation of one of its tags installs nothing for it;
//   - remote counts remote invalidations and resets, so that an L1 entry
//     stored by this instance can tell whether another instance may have
//     stored a fresher one in L2 since (an efficiency hint, never a
//     correctness one).
type versionTable struct {
	ttl    int64 // how long a learned version is used, in nanoseconds
	base   time.Time
	seed   maphash.Seed
	live   atomic.Bool
	gen    atomic.Uint64
	remote atomic.Uint64
	shards [nShards]vshard
}

type vshard struct {
	mu  sync.RWMutex
	seq atomic.Uint64 // changed only under mu
	m   map[string]known
	_   [40]byte // keep shards on separate cache lines
}

type known struct {
	v  uint64
	at int64 // when the L2 read that learned v began (table clock)
}

// token is what a read from L2 remembers from before it started.
type token struct {
	gen   uint64
	start int64
	seqs  []uint64
}

func newVersionTable(ttl time.Duration) *versionTable {
	t := &versionTable{ttl: int64(ttl), base: time.Now(), seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]known)
	}
	return t
}

func (t *versionTable) now() int64 { return int64(time.Since(t.base)) }

func (t *versionTable) shard(tag string) *vshard {
	return &t.shards[maphash.String(t.seed, tag)&(nShards-1)]
}

// lookup fills versions from the table and reports whether every tag had a
// usable version. versions is undefined when it returns false.
func (t *versionTable) lookup(tags []string, versions []uint64) bool {
	if !t.live.Load() {
		return false
	}
	now := t.now()
	for i, tag := range tags {
		sh := t.shard(tag)
		sh.mu.RLock()
		k, ok := sh.m[tag]
		sh.mu.RUnlock()
		if !ok || now-k.at > t.ttl {
			return false
		}
		versions[i] = k.v
	}
	return true
}

// begin is called before reading versions of tags from L2; seqs is scratch
// space for the token (reused when large enough).
func (t *versionTable) begin(tags []string, seqs []uint64) token {
	tok := token{gen: t.gen.Load(), start: t.now(), seqs: seqs[:0]}
	for _, tag := range tags {
		tok.seqs = append(tok.seqs, t.shard(tag).seq.Load())
	}
	return tok
}

// learn installs the versions an L2 read begun with tok returned, except
// for tags held or unknown (0) and tags invalidated since tok was taken.
func (t *versionTable) learn(tags []string, versions []uint64, tok token) {
	if !t.live.Load() {
		return
	}
	for i, tag := range tags {
		if versions[i] == 0 {
			continue
		}
		sh := t.shard(tag)
		sh.mu.Lock()
		// Under the shard lock: a reset that moved gen on clears this
		// shard after we release it, and an invalidation of tag moves seq
		// under this same lock.
		if t.gen.Load() == tok.gen && sh.seq.Load() == tok.seqs[i] {
			// Of two reads that both raced no invalidation, the one that
			// began later saw the later version.
			if old, ok := sh.m[tag]; !ok || old.at <= tok.start {
				sh.m[tag] = known{v: versions[i], at: tok.start}
			}
		}
		sh.mu.Unlock()
	}
}

// invalidate forgets tags: the next read of them goes to L2.
func (t *versionTable) invalidate(tags []string, remote bool) {
	if remote {
		t.remote.Add(1)
	}
	for _, tag := range tags {
		sh := t.shard(tag)
		sh.mu.Lock()
		sh.seq.Add(1)
		delete(sh.m, tag)
		sh.mu.Unlock()
	}
}

// reset forgets everything. live says whether the table may be used from
// now on (the bus is up); the table stops being used before it is cleared,
// and is used again only after.
func (t *versionTable) reset(live bool) {
	if !live {
		t.live.Store(false)
	}
	t.remote.Add(1)
	t.gen.Add(1)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
	if live {
		t.live.Store(true)
	}
}

// size reports the number of versions held (for tests).
func (t *versionTable) size() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
