// Package memcachestore is a [store.Store] on memcached, through
// github.com/bradfitz/gomemcache.
//
//	mc := memcache.New("10.0.0.1:11211", "10.0.0.2:11211")
//	mc.MaxIdleConns = 64 // about your peak concurrency: gomemcache keeps 2 by default
//	s, err := memcachestore.New(mc, memcachestore.Config{})
//
// # Keys
//
// Every key starts with [Config.Prefix] ("gc:" by default), then a kind: "e:"
// for entries, "v:" for tag records, "l:" for hold leases. Memcached keys are
// at most 250 bytes of printable ASCII without spaces; a name that would make
// an illegal key (too long, a space, a control or non-ASCII byte, or one that
// starts with "#") is replaced by "#" and the base64url SHA-256 of the name, so
// any tag or entry key works.
//
// # Tag records: versions and holds in one key
//
// Each tag has one record, "v:<tag>", that never expires and holds the tag's
// version (decimal) followed by the ids of the leases that may hold it:
//
//	4611686018427391233 9f3a0c1d2e4b5a61 03c2d4e5f6a7b8c9
//
// The version and the hold list live in one key, changed together with
// gets/cas, because a reader must never see a version written by a held bump
// without also seeing the hold. With two keys (an incr-ed counter beside a
// hold list) that cannot be promised: gomemcache sends a GetMulti to several
// servers in parallel, so the two keys may be read in either order around a
// writer's two updates. The price is that a bump is gets + cas (two round
// trips, retried on a conflict) where incr would be one. gomemcache has no
// pipelining: the calls of one Bump for several tags run in parallel, so set
// the client's MaxIdleConns well above 2.
//
// A lease that holds a tag is also a key of its own, "l:<lease>:<tag>", created
// with add before the lease is listed in the record, with memcached's own
// expiry set to the hold rounded up to whole seconds plus one (memcached's clock
// ticks once a second, so a one-second expiry may end at once). Expiry is thus
// the server's clock, never a client's. A tag is held while its record lists a
// lease whose key still exists.
//
// Operations:
//
//   - Get and Versions read the entry and every tag record with one GetMulti:
//     one round trip. A record that lists leases costs one more GetMulti for
//     the lease keys (only while writes are in flight, or until a dead
//     writer's lease is pruned). A missing record is created with add and a
//     fresh random version (see Versions below); on a lost add race the
//     winner's record is read back, so concurrent creators agree.
//   - Bump reads every record with one GetMulti (while it adds the lease
//     keys, when hold > 0), then, for every tag in parallel, prunes the
//     leases whose keys are gone (one more GetMulti, only when the record
//     lists any) and writes a fresh random version plus the new lease with
//     cas. A cas conflict re-reads that record and tries again (with a short
//     random back-off after a few conflicts); a bump that loses 100 races in
//     a row (a very hot tag, such as [store.GlobalTag] under many writers)
//     gives up and fails with an error wrapping [store.ErrUnavailable], so
//     that the plugin treats the tag as not bumped (it stops serving it and
//     retries in the background); the breaker is not counted, since the
//     server answered. A missing record gets a fresh random version with add.
//   - Release does the same cas without the lease (a fresh version, the lease
//     dropped), then deletes the lease keys.
//
// # Versions
//
// A version is a random number in [1, 2^63) (crypto/rand), drawn anew for
// every bump and for every record created; nothing is incremented. So a
// version is never 0 (0 reads as held or unknown), versions are compared for
// equality only (neither the store nor the plugin orders them), and a version
// never repeats (except with probability about 2^-63 for a pair of
// versions): a record lost to eviction, flush_all or a restart comes back
// with a new version, and a record that went back to an older state (a copy
// from before the last bump) is bumped to a version never seen, not to one
// handed out before, so an entry stamped with a replaced version never
// matches again through a later bump.
//
// # Changing the server list
//
// gomemcache picks a tag record's server by hashing its key over the server
// list, so adding, removing or replacing a server moves most tags (and
// entries) to other servers. A moved tag is read from its new server, where
// it has no record (a fresh version: its entries read as misses) or the
// record of an earlier stay there. Random versions keep the change from
// reviving entries through later bumps, even when instances run with
// different lists during a rolling change; but while instances disagree,
// one instance's bump of a tag lands on a server another does not read it
// from, and an old record left on a server that becomes a tag's home again
// still validates the entries stamped with it. So reads during the change may
// miss, or serve what a write on the other list invalidated: after changing
// the server list everywhere, bump [store.GlobalTag] (everything is then
// invalid once), and keep the rolling change short; or move to a new
// [Config.Prefix] together with the new list, which starts from nothing.
//
// # Race analysis
//
// A record is changed only by cas, so every read sees a version together
// with the leases listed at the time it was written. Bump lists its lease in
// the same cas that writes the post-bump version, and the lease key exists
// before that cas. A reader that sees the post-bump version therefore sees the
// lease, and reads 0 unless the lease key is gone when it checks. The key goes
// only when Release has already written a newer version (Release deletes it
// after its cas), or when the hold elapsed. In the first case the reader's
// database query starts after the writer's commit, so whatever it stores under
// the superseded version is fresh data, and nobody reads that version as
// current any more. Two leases on one tag are two list items and two keys: the
// tag reads 0 until both are released or expired. Concurrent bumps serialise
// on cas, each writing its own fresh version. Lease ids are random and non-zero;
// the add of the lease key detects the (2^-64) collision with a live lease.
//
// What remains is memcached losing data in the middle of a write. If a tag
// record is evicted or flushed while a write holds it, the next reader creates
// a fresh, unheld version; a reader that queried before the commit could then
// serve its rows until the writer's Release bumps the recreated record: a
// window from COMMIT to Release (the same as Redis under allkeys-lru). Records
// are read on every lookup and so are the last keys LRU evicts; size memcached
// so that it does not evict under load, and watch Stats.VersionsCreated.
//
// # Failures
//
// Every failure that is not a protocol answer (connection refused, a timeout,
// a server error) is returned wrapped with [store.ErrUnavailable]; the socket
// timeout per call is the client's Timeout ([Config.Timeout]). After
// [Config.BreakerFailures] consecutive failures the breaker opens: calls
// return ErrUnavailable at once for [Config.BreakerCooldown], then one call
// probes the server and, if it answers, the store resumes. A value above
// [Config.MaxValueBytes] returns [store.ErrTooLarge] without a round trip.
// gomemcache calls take no context: the context is checked before a call, and
// the client's Timeout bounds it.
//
// # Entries and TTLs
//
// Entries are plain memcached items. A TTL <= 0 stores without expiry; a TTL
// up to 30 days is sent as seconds (rounded up); a longer one as an absolute
// unix time, as memcached requires. Records never expire.
//
// # An L1 in front of memcached
//
// Memcached has no pub/sub: an in-process cache in front of it cannot be told
// of another instance's writes, so its staleness is bounded only by its own
// (short) TTL.
package memcachestore
