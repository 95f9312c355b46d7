// Package redisstore is a gormcache [store.Store] on Redis, through a go-redis
// v9 [redis.UniversalClient]: a single node, Sentinel, or Redis Cluster.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	st, err := redisstore.New(rdb, redisstore.Config{Prefix: "myapp:"})
//
// # Round trips
//
// A Get reads the entry and the versions of its tags in one round trip, with
// plain reads: on a *redis.Client (a single node, or Sentinel through
// redis.NewFailoverClient or NewUniversalClient with MasterName) one MGET of
// the entry and of each tag's version and held-until keys; on a
// *redis.ClusterClient, where an entry and its tags live in different hash
// slots, one pipeline of single-key GETs, which the client splits per node
// and sends in parallel. Other clients (wrappers) are served as a cluster
// is, except *redis.Ring, which New refuses: when a shard is down a ring
// moves its keys to other shards, so a tag's bumps land where its version
// is no longer read once the shard is back. A tag found without a version (its first read, or after
// Redis lost it) or held takes a second round trip, a Lua script that
// creates the version (SET NX) or judges the holds by the server's clock; a
// held tag reads as 0, a miss anyway. Plain reads rather than a script on the
// hot path because on Redis 7.0 running even a trivial script costs a good
// part of a GET; a hit costs about 1.1 times a bare GET of the same bytes
// (BenchmarkGetHit, with ContextTimeoutEnabled).
//
// All the bumps of one Bump (or Release) are one round trip: on a
// *redis.Client one Lua script over every tag, sent with EVALSHA (EVAL when
// the server does not know it yet); on a cluster one pipeline of one script
// per tag, whose keys share a slot through a hash tag. No path ever sends a
// cross-slot command to a cluster.
//
// Versions must be read from masters: New refuses a cluster client that
// reads from replicas (ReadOnly, RouteByLatency, RouteRandomly), since a
// replica may not have a bump yet.
//
// No path uses KEYS or SCAN: invalidation is one write per tag.
//
// # Keys
//
// With the prefix P (Config.Prefix, "gc:" by default):
//
//	P e:<key>       string  an entry, under the plugin's key; always a TTL
//	P {t:<tag>}:v   string  the tag's version; no TTL
//	P {t:<tag>}:u   string  while the tag is held: the latest deadline of its
//	                        holds (ms, server clock); no TTL
//	P {t:<tag>}:l   hash    while the tag is held: lease id → deadline; no TTL
//
// # Versions
//
// A version is a decimal string holding a random number in [1, 2^63),
// drawn by the client (crypto/rand) and passed to a script, one value for
// each tag of a call: a tag that has no version (its first read, or after
// Redis lost it: a restart without persistence, FLUSHALL, eviction) gets one
// with SET NX semantics, and every bump (and Release) overwrites it with a
// fresh one. Nothing is incremented. So:
//
//   - a version is never 0 (0 reads as held or unknown);
//   - versions are compared for equality only: the store never orders them,
//     and neither does the plugin;
//   - a version never comes back (except with probability about 2^-63 for a
//     pair of versions), not even after Redis went back in time: a restart
//     from a snapshot, or a failover to a replica that had not received the
//     last bumps, sets a tag back to a version it had, and the next bump
//     moves it to a value never seen, where a counter would hand out the
//     lost bump's version again, and make valid again every entry stamped
//     with it (in a cluster, entries stored on the nodes that did not fail).
//
// A hold makes a tag read as version 0 until its lease is released or its
// deadline, measured on the clock of the Redis node that owns the tag, has
// passed. Overlapping holds by several leases hold until the last one ends.
//
// # Eviction
//
// Version keys carry no TTL and entries always do (Config.DefaultTTL when Set
// is given none), so configure Redis with maxmemory-policy volatile-lru or
// volatile-lfu: only entries are evicted. With allkeys-lru or allkeys-lfu an
// evicted version key reads as a new version, so its tag's entries read as
// misses: safe, but wasteful (an evicted held-until key, though, ends a hold
// early).
//
// # Masters that change
//
// Replication is asynchronous: a failover can lose the last writes a master
// acknowledged, bumps among them, and a restart loses the writes after its
// last snapshot. Random versions keep the next bumps from reviving entries,
// but a lost bump itself is lost: the tag reads as the version it had before,
// which validates the entries stamped with that version. So the store
// watches which masters it talks to, on a *redis.Client (single node or
// Sentinel) and a *redis.ClusterClient (other clients are not watched). It
// knows a master by its run_id (random for every start of a process) and
// master_replid (new when a replica is promoted), read with INFO: on a
// *redis.Client the one master it talks to, whatever its address (Sentinel
// moves it); on a cluster every master of the client's current view, by
// address. A hook on the client (on every node client of a cluster) notes
// each new connection, each command that ends with a connection error or a
// redirection (MOVED, ASK, READONLY, CLUSTERDOWN, MASTERDOWN, LOADING), and
// each CLUSTER SLOTS that gives a cluster client a new view of which masters
// serve which slots (not with ClusterOptions.ClusterSlots). The first call whose
// result arrives after such an event runs INFO before it returns: one
// command on a single node, one per master in parallel on a cluster,
// coalesced between concurrent calls, bounded by Config.Timeout. If a master
// is new or its run_id or master_replid changed, that call and every call in
// flight meanwhile fail with an error wrapping [store.ErrUnavailable], and
// [Stats].MasterChanges counts it: the plugin, which serves nothing after
// such an error until it has bumped [store.GlobalTag], invalidates
// everything before it serves from the new master. A check that cannot be
// completed fails its call the same way. Calls on established connections
// cost nothing more ([Stats].MasterChecks counts the checks): a master cannot
// change under an established connection, since a restarted server or
// another master means new connections, or on a cluster redirections or a
// new view of the slots. A restart that lost nothing (persistence) counts as
// a change too, as does a master added by resharding: one global bump each.
//
// What remains:
//
//   - The first check of a store records what it finds: there is nothing to
//     compare. A store created after the change has cached nothing from
//     before, and the instances that had notice the change themselves; but
//     if every instance that knew the old master is gone, nobody bumps.
//   - Bumps acknowledged by an old master after the promotion (a partition,
//     or a forced Sentinel failover, during which the old master still
//     accepts writes until Sentinel demotes it) are lost too. The writer's
//     store notices the new master when its client reaches it, and the
//     global bump follows; until then, instances already on the new master
//     serve the entries those bumps invalidated.
//   - A check needs INFO: through a proxy that refuses it or answers for
//     another node, or under an ACL user without +info, every call fails.
//   - On a cluster, a known master that does not answer a check (dead, or
//     a failover not yet complete) is skipped: its own calls fail by
//     themselves, and it keeps the fingerprint it had, so that it is seen
//     as changed if it comes back restarted. A master the store never
//     knew must answer: until it does, every call fails (except at the
//     first check, which compares nothing and records those that answer).
//   - Config.WaitReplicas closes the window on a single node with replicas
//     or Sentinel: a bump returns only once that many replicas have it, so a
//     promoted replica has it (if Sentinel promotes one of those). It is not
//     available on a cluster (WAIT must be sent on the connection of the
//     write): there, only the detection above applies.
//
// # Failures
//
// The store fails fast so that its caller can fail open. Every call is bounded
// by Config.Timeout; an error from Redis, the network or the timeout wraps
// [store.ErrUnavailable]. Give the client ContextTimeoutEnabled: true so that
// the timeout also ends the socket read. Without it, the store calls the
// client from a goroutine per call, which it stops waiting for at the timeout
// (the read goes on in the background until the client's ReadTimeout): correct,
// but the goroutine hand-off can cost as much as the round trip itself. A
// cluster client is also asked to reload its
// topology after a failed call: it would otherwise keep calling a dead master
// until its periodic reload. After Config.BreakerFailures consecutive failures a
// circuit breaker stops calling Redis for Config.BreakerCooldown (calls return
// store.ErrUnavailable at once), then lets one call through as a probe, and
// resumes by itself when it succeeds. [Store.Stats] counts round trips,
// errors, timeouts and the breaker's work.
//
// The store does not own its client: Close marks the store closed (later
// calls return [store.ErrClosed]) and leaves the client open.
package redisstore
