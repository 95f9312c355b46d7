package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// script is a Lua script run with EVALSHA, falling back to EVAL (which also
// loads it) when the server does not know it yet.
type script struct {
	src string
	sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// Versions are decimal strings in the scripts: Lua numbers are doubles and
// would round a 63-bit version. The scripts never do arithmetic on a
// version; they only store values the client drew.
//
// Every version is a fresh random number in [1, 2^63) that the client draws
// (crypto/rand) and passes as an argument, one per tag: a tag that has no
// version key gets one on its first read (or after Redis lost it: restart
// without persistence, FLUSHALL, eviction), and every bump writes a new one.
// Nothing is counted, so a version never comes back (except with probability
// about 2^-63 per pair of versions), whatever Redis forgets: a restart from
// an old snapshot or a failover to a lagging replica turns a version back to
// one it had, and the next bump moves it to a value nobody has seen, not to
// one handed out before the loss (as INCR would, reviving the entries stamped
// with it, here or on the nodes of a cluster that did not fail). Versions are
// compared for equality only.
//
// Row tags (their name holds the byte 0x1f: a table's rows by key value,
// see internal/core) are one per row read or written: their versions
// expire rowTagTTL after they were set (an hour), so that Redis does not
// keep one key per row for ever. An expired version is recreated at random
// on the next read, which only invalidates what was stamped with the old
// one: safe, at the cost of a miss. The held-until key and the leases hash
// of every tag expire when its last hold does.
//
// Holds are deadlines in ms on the clock (TIME) of the node that owns the
// tag: one per lease in the leases hash, and the latest of them all in the
// held-until key, which writeScript keeps exact. A tag is held while
// now < held-until.
//
// KEYS come in threes, one triple per tag, as keyspace.tagKeys gives them:
// version, held-until, leases. A triple shares one cluster slot.

// readScript is the slow path of a read, for tags the plain read found
// without a version or with a held-until key: it creates missing versions
// (SET NX) and judges holds by the server's clock, deleting them once they
// have all expired. In Redis Cluster it runs with one tag at a time.
//
//	KEYS:    version, held-until, leases keys of each tag
//	ARGV:    a fresh random version (decimal) for each tag, in KEYS order,
//	         set if the tag has none
//	reply:   one version per tag ("0" while held)
//
// rowTagTTL is the lifetime, in the scripts (ms), of a row tag's version.
const rowTagTTL = time.Hour

var readScript = newScript(`
local out = {}
local now
for i = 1, #KEYS, 3 do
  if string.find(KEYS[i], '\31', 1, true) then
    redis.call('SET', KEYS[i], ARGV[#out + 1], 'NX', 'PX', 3600000) -- a row tag: see rowTagTTL
  else
    redis.call('SET', KEYS[i], ARGV[#out + 1], 'NX')
  end
  local v = redis.call('GET', KEYS[i])
  local u = redis.call('GET', KEYS[i + 1])
  if u then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local d = tonumber(u)
    if d and d > now then
      v = '0'
    else
      redis.call('DEL', KEYS[i + 1], KEYS[i + 2])
    end
  end
  out[#out + 1] = v
end
return out
`)

// writeScript bumps tags, and holds them for a lease (Bump with a hold) or
// drops a lease's hold (Release); it drops expired holds and recomputes the
// held-until key. In Redis Cluster it runs with one tag at a time.
//
//	KEYS:    version, held-until, leases keys of each tag
//	ARGV[1]: hold in ms, 0 for none
//	ARGV[2]: lease id (decimal)
//	ARGV[3]: "1" to drop the lease's hold
//	ARGV[4…]: the new version (decimal, fresh and random) of each tag, in
//	         KEYS order
//	reply:   the number of tags
var writeScript = newScript(`
local hold = tonumber(ARGV[1])
local lease = ARGV[2]
local release = ARGV[3] == '1'
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local n = 0
for i = 1, #KEYS, 3 do
  local vk, uk, lk = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  n = n + 1
  if string.find(vk, '\31', 1, true) then
    redis.call('SET', vk, ARGV[3 + n], 'PX', 3600000) -- a row tag: see rowTagTTL
  else
    redis.call('SET', vk, ARGV[3 + n])
  end
  if release then
    redis.call('HDEL', lk, lease)
  end
  if hold > 0 then
    redis.call('HSET', lk, lease, string.format('%.0f', clock() + hold))
  end
  local h = redis.call('HGETALL', lk)
  local latest = 0
  for j = 1, #h, 2 do
    local d = tonumber(h[j + 1])
    if not d or d <= clock() then
      redis.call('HDEL', lk, h[j])
    elseif d > latest then
      latest = d
    end
  end
  if latest > 0 then
    -- (both go when the last hold ends, should nobody release it)
    redis.call('SET', uk, string.format('%.0f', latest), 'PXAT', string.format('%.0f', latest))
    redis.call('PEXPIREAT', lk, string.format('%.0f', latest))
  else
    redis.call('DEL', uk)
  end
end
return #KEYS / 3
`)
