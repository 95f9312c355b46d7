// Package filestore is a [store.Store] in a directory of the local file
// system, gormcache's counterpart of Django's FileBasedCache.
//
//	s, err := filestore.New("/var/cache/myapp/gormcache", filestore.Config{})
//
// # When to use it
//
// Use it on a single host, when the cache should survive restarts of the
// application and the processes of the host should share it (several
// workers, a cron job, a CLI), but running Redis or memcached is not worth
// it. A hit costs a few file reads from the page cache: slower than the
// in-process [github.com/gormcache/gormcache/store/memstore], faster than a network round trip.
//
// Do not use it:
//
//   - on a network file system (NFS, SMB, most FUSE mounts): the store
//     relies on flock(2) and on rename(2) being atomic for every reader, which
//     such file systems do not promise;
//   - from several hosts: holds end at wall-clock deadlines, which is sound
//     only while every process reads the same clock. Use a shared store
//     (Redis, memcached) instead;
//   - on Windows: the package uses golang.org/x/sys/unix (Linux, macOS and
//     the BSDs).
//
// # Layout
//
//	<dir>/e/<2 hex>/<16 hex>   entries: name = xxhash64 of the key, 256 subdirectories
//	<dir>/v/<tag>.v            a tag's version and holds
//	<dir>/v/<tag>.lock         the flock a tag's writers take
//	<dir>/sweep.lock           the flock of the process that sweeps
//	.tmp-*                     files being written, beside their destination
//
// The directory is the namespace: processes share a cache by opening the
// same directory, so give each application and environment its own.
//
// A tag's file is named after the tag when it is a plain name (letters,
// digits, '_', '.', '-'), else "~" and a hash.
//
// Every file is written to a temporary file in the same directory and
// renamed to its destination, so a reader opens the old file, the new one or
// none, never a mix. (The old file is removed just before the rename: on ext4
// a rename over an existing file starts a flush of the new file's data,
// auto_da_alloc, which costs 0.3-0.7 ms where the rename alone costs a few
// µs. A reader in between finds no file: a miss for an entry; for a version
// file it waits on the tag's lock, which the writer holds, and reads the new
// file.) Entry files get an access time after their modification time, and
// are opened with O_NOATIME where allowed, so that reads write nothing. Both
// formats start with a magic and a format byte and end
// with an xxhash64 of the rest; an entry file also holds its key (a collision
// of file names is a miss, never another key's value) and its expiry
// deadline. A file that does not decode (truncated, garbled, of another
// format) is a miss, counted in [Stats].Corrupt: an entry file is removed and
// the next Set replaces it; a version file is replaced by a fresh version.
//
// # Versions, holds and locking
//
// Readers take no lock: Get and Versions open each tag's version file, read
// it whole and check it, then read the entry file (one open, read and close
// per tag and one for the entry). Writers of a tag (Bump,
// Release, and the first read of a tag, which creates its file) take the
// tag's flock, read the file, change it, and rename a new one into place. The
// version and the holds are in one file, so a reader that sees a held bump's
// version also sees its hold. Within a process a mutex per tag comes before
// the flock, so that only processes contend on it; a lock busy for longer
// than [Config.LockTimeout] is an error wrapping [store.ErrUnavailable].
//
// A tag's first version is random in [2^62, 2^63) (crypto/rand); each bump
// adds one. A lost version file (a wiped directory) comes back with a new
// random version, so a version is never handed out twice except with a
// probability of about (bumps per tag) / 2^62. One more loss is guarded
// against: without [Config.Sync], a crash of the host may roll a version file
// back to an older state, whose next bumps would repeat versions already
// used. Version files therefore record the boot id of the host
// (/proc/sys/kernel/random/boot_id); a file written without Sync during an
// earlier boot gets a new random version at its first use. After a reboot
// every tag is thus invalidated once, unless the store runs with Sync. (On
// systems other than Linux there is no boot id: use Sync where a crash of the
// host must not lose bumps.)
//
// Holds are entries (lease id, deadline) in the tag's file; a tag reads 0
// while any of its holds is before its deadline. Release drops its lease;
// elapsed holds are dropped at the tag's next write. A tag may carry several
// holds at once. Deadlines are wall-clock times, shared by every process of
// the host; a clock that jumps forward ends holds early.
//
// A Bump of several tags writes them one after the other under their own
// locks, as the memcached store does: a reader between two of them sees one
// tag bumped and not the other, and whatever it stores is invalidated by the
// second bump.
//
// # Size bounds, culling and expiry
//
// The directory is bounded by [Config.MaxBytes] and [Config.MaxEntries], by
// culling rather than on every write. A sweep stats every entry file (the
// modification time of an entry file is its expiry deadline, set by Set, so
// no file is opened): it removes expired files and temporary files older than
// ten minutes, counts what remains, and when the total is over a limit
// removes the oldest-written entries (by change time) until both totals are
// at most (1-[Config.CullFraction]) of their limits. That is Django's cull
// (a third by default), oldest first instead of at random.
//
// Sweeps run in a background goroutine (at New, then every
// [Config.SweepInterval], stopped by Close), on demand through
// [Store.Sweep], and when a Set finds the store full: each process keeps an
// estimate (the last sweep's totals plus its own Sets) and starts a sweep when
// the estimate is over a limit, or when its own Sets since the last sweep
// exceed a quarter of a limit (they cannot see other processes' Sets). So the
// directory exceeds its limits by at most about a quarter of them per writing
// process between two sweeps. One process sweeps at a time (a flock); the
// others skip their turn. Get removes the expired and corrupt files it meets.
//
// A removal that races a rewrite of the same key may remove the new file: a
// miss, never a wrong value.
//
// # Cost
//
// BenchmarkStores compares the stores (go test -run '^$' -bench Stores
// -benchmem ./store/filestore/). Medians on the development machine (2
// vCPUs, ext4 on a virtual disk, other work running): a hit with the versions
// of 2 tags takes 5 µs for 1 KiB and 12-20 µs for 16 KiB (memstore 0.2 µs,
// Redis on loopback 15-130 µs). Every hit reads 1+len(tags) files from the
// page cache. A Set or a Bump creates a file and renames it: 15-50 µs on a
// quiet disk, several times that while other processes write to it (Redis
// 25-60 µs).
//
// # Durability
//
// Without [Config.Sync] writes are as durable as the page cache: a crash of
// a process loses at most the file it was replacing (a miss, or a fresh
// version for the tag: both safe), a crash of the host may lose recent writes
// (and the versions are renewed, see above). With Sync every file is fsynced
// before its rename and its directory after it.
package filestore
