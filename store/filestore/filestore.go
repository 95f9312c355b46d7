package filestore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gormcache/gormcache/store"
	"golang.org/x/sys/unix"
)

// Defaults of a zero [Config].
const (
	DefaultMaxBytes      = 256 << 20
	DefaultMaxEntries    = 100_000
	DefaultCullFraction  = 1.0 / 3
	DefaultSweepInterval = time.Minute
	DefaultLockTimeout   = 2 * time.Second
	DefaultFileMode      = 0o600
)

// staleTemp is the age after which a temporary file is a dead writer's and
// the sweep removes it.
const staleTemp = 10 * time.Minute

// Config configures a Store. The zero Config is ready to use.
type Config struct {
	// MaxBytes bounds the total size of the entry files (header, key and
	// value of each). 0 means DefaultMaxBytes (256 MiB). Negative is an
	// error. The bound is enforced by culling (see the package doc), so the
	// directory may exceed it for a short while.
	MaxBytes int64
	// MaxEntries bounds the number of entry files. 0 means
	// DefaultMaxEntries (100 000). Negative is an error.
	MaxEntries int64
	// CullFraction is the share of each limit a cull frees: a directory
	// found over MaxBytes or MaxEntries loses its oldest entries until it is
	// at most (1-CullFraction) of both. 0 means DefaultCullFraction (1/3,
	// Django's CULL_FREQUENCY of 3). It must be in [0, 1).
	CullFraction float64
	// MaxValueBytes bounds the values Set accepts; a larger one returns an
	// error wrapping store.ErrTooLarge. 0 means MaxBytes/8. Negative is an
	// error.
	MaxValueBytes int64
	// SweepInterval is the period of the background sweep, which removes
	// expired entries and culls a full directory. 0 means
	// DefaultSweepInterval (1 minute). Negative disables the periodic sweep;
	// a Set that finds the store full still starts one.
	SweepInterval time.Duration
	// Sync makes every write durable before it is visible: the file is
	// fsynced before its rename and the directory after it. Without Sync a
	// crash of the host (not of a process) may lose recent writes, and
	// version files written during an earlier boot are then not trusted (see
	// the package doc): tags get fresh versions after a reboot. With Sync,
	// writes cost a disk flush each and versions survive reboots.
	Sync bool
	// LockTimeout bounds the wait for a tag's lock (Bump, Release, and the
	// first read of a tag). A lock still busy then returns an error wrapping
	// store.ErrUnavailable. 0 means DefaultLockTimeout (2s). Negative is an
	// error.
	LockTimeout time.Duration
	// FileMode is the permission of the files the store creates;
	// directories get it plus search permission where it grants reading. 0
	// means DefaultFileMode (0600: cached rows are the application's data).
	// Only permission bits are allowed.
	FileMode os.FileMode
}

// withDefaults checks c and returns it with the defaults in its zero fields.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.MaxBytes < 0:
		return c, fmt.Errorf("filestore: %w: MaxBytes must not be negative (got %d)", store.ErrInvalidConfig, c.MaxBytes)
	case c.MaxEntries < 0:
		return c, fmt.Errorf("filestore: %w: MaxEntries must not be negative (got %d)", store.ErrInvalidConfig, c.MaxEntries)
	case c.CullFraction < 0 || c.CullFraction >= 1 || c.CullFraction != c.CullFraction:
		return c, fmt.Errorf("filestore: %w: CullFraction must be in [0, 1) (got %v)", store.ErrInvalidConfig, c.CullFraction)
	case c.MaxValueBytes < 0:
		return c, fmt.Errorf("filestore: %w: MaxValueBytes must not be negative (got %d)", store.ErrInvalidConfig, c.MaxValueBytes)
	case c.LockTimeout < 0:
		return c, fmt.Errorf("filestore: %w: LockTimeout must not be negative (got %v)", store.ErrInvalidConfig, c.LockTimeout)
	case c.FileMode&^os.ModePerm != 0:
		return c, fmt.Errorf("filestore: %w: FileMode %v has bits other than permissions", store.ErrInvalidConfig, c.FileMode)
	}
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	c.MaxEntries = cmp.Or(c.MaxEntries, DefaultMaxEntries)
	c.CullFraction = cmp.Or(c.CullFraction, DefaultCullFraction)
	c.MaxValueBytes = cmp.Or(c.MaxValueBytes, c.MaxBytes/8)
	c.SweepInterval = cmp.Or(c.SweepInterval, DefaultSweepInterval)
	c.LockTimeout = cmp.Or(c.LockTimeout, DefaultLockTimeout)
	c.FileMode = cmp.Or(c.FileMode, DefaultFileMode)
	return c, nil
}

// Stats are counters of one Store since New. Several processes sharing a
// directory each count their own operations; Entries and Bytes describe the
// directory.
type Stats struct {
	// Hits counts Gets that returned a value.
	Hits uint64
	// Misses counts Gets that found none: absent, expired, corrupt, or the
	// entry of another key under the same file name.
	Misses uint64
	// Expired counts expired entry files removed, by Get or by a sweep.
	Expired uint64
	// Corrupt counts entry and version files that would not decode
	// (truncated, garbled, of an unknown format). An entry is removed and
	// read as a miss; a version file is replaced with a fresh version.
	Corrupt uint64
	// Culled counts entries removed because the directory was over
	// MaxBytes or MaxEntries.
	Culled uint64
	// Sweeps counts the sweeps this process ran.
	Sweeps uint64
	// VersionsCreated counts version files created with a fresh random
	// version: first uses of a tag, and tags whose file was lost (a wiped
	// directory), corrupt, or written before the host's last reboot.
	VersionsCreated uint64
	// Entries and Bytes estimate the directory's entry files: as counted by
	// the last sweep, plus this process's Sets since.
	Entries, Bytes int64
}

// Store is a [store.Store] in a directory of the local file system. It is
// safe for concurrent use, and several processes of one host may share a
// directory.
type Store struct {
	dir, entryDir, versionDir string

	maxBytes, maxEntries, maxValue int64
	cullFraction                   float64
	sweepInterval, lockTimeout     time.Duration
	sync                           bool
	staleTemp                      time.Duration
	fileMode                       uint32
	dirMode                        os.FileMode
	boot                           [16]byte

	tempPrefix string
	tempSeq    atomic.Uint64

	tagMu    [64]chan struct{} // serialise this process's writers of a tag before flock
	tagPaths sync.Map          // tag → *tagFiles
	nTags    atomic.Int64

	// Estimates of the directory, reset by each sweep.
	estBytes, estEntries atomic.Int64
	ownBytes, ownEntries atomic.Int64 // this process's Sets since the last sweep

	hits, misses, expired, corrupt, culled, sweeps, created atomic.Uint64

	sweepMu   sync.Mutex
	kick      chan struct{}
	stopSweep context.CancelFunc
	sweepDone chan struct{}

	mu     sync.RWMutex // held for reading by every call; Close takes it to wait for them
	closed bool
}

var _ store.Store = (*Store)(nil)

var errUnavailable = store.ErrUnavailable

// New returns a store in dir, creating it if needed, and starts its
// background sweep. Processes that open the same directory share the cache;
// their Configs may differ (each applies its own limits when it sweeps).
func New(dir string, cfg Config) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: empty directory")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	mode := cfg.FileMode
	s := &Store{
		dir:           abs,
		entryDir:      filepath.Join(abs, "e"),
		versionDir:    filepath.Join(abs, "v"),
		maxBytes:      cfg.MaxBytes,
		maxEntries:    cfg.MaxEntries,
		maxValue:      cfg.MaxValueBytes,
		cullFraction:  cfg.CullFraction,
		sweepInterval: cfg.SweepInterval,
		lockTimeout:   cfg.LockTimeout,
		sync:          cfg.Sync,
		staleTemp:     staleTemp,
		fileMode:      uint32(mode),
		dirMode:       mode | (mode&0o444)>>2,
		boot:          bootID(),
		kick:          make(chan struct{}, 1),
		sweepDone:     make(chan struct{}),
	}
	for i := range s.tagMu {
		s.tagMu[i] = make(chan struct{}, 1)
	}
	for _, d := range []string{s.entryDir, s.versionDir} {
		if err := s.mkdirAll(d); err != nil {
			return nil, err
		}
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	s.tempPrefix = ".tmp-" + hex.EncodeToString(r[:]) + "-"

	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweep = cancel
	go s.sweeper(ctx)
	return s, nil
}

// Dir returns the store's directory, made absolute.
func (s *Store) Dir() string { return s.dir }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Hits:            s.hits.Load(),
		Misses:          s.misses.Load(),
		Expired:         s.expired.Load(),
		Corrupt:         s.corrupt.Load(),
		Culled:          s.culled.Load(),
		Sweeps:          s.sweeps.Load(),
		VersionsCreated: s.created.Load(),
		Entries:         max(s.estEntries.Load(), 0),
		Bytes:           max(s.estBytes.Load(), 0),
	}
}

// begin starts a call: it fails when the store is closed or the context is
// done. On success the caller must call s.end.
func (s *Store) begin(ctx context.Context) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.mu.RUnlock()
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

func (s *Store) end() { s.mu.RUnlock() }

func (s *Store) fsError(op, path string, err error) error {
	return fmt.Errorf("filestore: %s %s: %w: %w", op, path, errUnavailable, err)
}

func (s *Store) tempName() string {
	return s.tempPrefix + strconv.FormatUint(s.tempSeq.Add(1), 36)
}

// entryPath returns e/<shard>/<name>: name is the hex xxhash64 of key, shard
// its first two digits (256 subdirectories). The file holds the key itself,
// so a collision of names is a miss, never another key's value.
func (s *Store) entryPath(key string) string {
	var sum [8]byte
	var name [16]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64String(key))
	hex.Encode(name[:], sum[:])
	return s.entryDir + "/" + string(name[:2]) + "/" + string(name[:])
}

// Get implements [store.Store]. It reads the tags' versions, then the entry,
// without taking any lock (see the package doc).
func (s *Store) Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error) {
	if len(tags) != len(versions) {
		return nil, fmt.Errorf("filestore: %d tags but %d versions", len(tags), len(versions))
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	if err := s.versions(ctx, tags, versions); err != nil {
		return nil, err
	}
	v, err := s.readEntry(key)
	switch {
	case err != nil:
		return nil, err
	case v == nil:
		s.misses.Add(1)
	default:
		s.hits.Add(1)
	}
	return v, nil
}

// readEntry returns the value of key, or nil. An expired or corrupt file is
// removed.
func (s *Store) readEntry(key string) ([]byte, error) {
	path := s.entryPath(key)
	fd, err := openRead(path)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fsError("open", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		closeFile(fd)
		return nil, s.fsError("stat", path, err)
	}
	if st.Size > s.maxValue+int64(len(key))+entryMin {
		// Larger than any Set of this configuration writes: another
		// process's, with a larger MaxValueBytes, or garbage. A miss.
		closeFile(fd)
		return nil, nil
	}
	buf := make([]byte, st.Size)
	err = readFull(fd, buf)
	closeFile(fd)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, s.fsError("read", path, err)
	}
	var value []byte
	var expiry int64
	if err == nil {
		value, expiry, err = decodeEntry(buf, key)
	} else {
		err = errCorrupt
	}
	switch {
	case errors.Is(err, errOtherKey):
		return nil, nil
	case err != nil:
		s.corrupt.Add(1)
		s.forget(&st)
		removeIfSame(path, &st)
		return nil, nil
	case expiry != 0 && time.Now().UnixNano() >= expiry:
		s.expired.Add(1)
		s.forget(&st)
		removeIfSame(path, &st)
		return nil, nil
	}
	return value, nil
}

// forget takes a removed file out of the estimates.
func (s *Store) forget(st *unix.Stat_t) {
	s.estBytes.Add(-st.Size)
	s.estEntries.Add(-1)
}

// Set implements [store.Store]. The entry is written to a temporary file and
// renamed into place: readers see the old entry, the new one or none, never
// a part of one.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if int64(len(value)) > s.maxValue {
		return fmt.Errorf("filestore: %d bytes (limit %d): %w", len(value), s.maxValue, store.ErrTooLarge)
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	var expiry int64
	mtime := unix.NsecToTimespec(noExpiryMtime)
	if now := time.Now().UnixNano(); ttl > 0 && int64(ttl) < math.MaxInt64-now {
		expiry = now + int64(ttl)
		mtime = unix.NsecToTimespec(expiry)
	}
	data := encodeEntry(key, value, expiry)
	if err := s.writeAtomic(s.entryPath(key), data, &mtime); err != nil {
		return err
	}
	n := int64(len(data))
	bytes, entries := s.estBytes.Add(n), s.estEntries.Add(1)
	own, ownEntries := s.ownBytes.Add(n), s.ownEntries.Add(1)
	if bytes > s.maxBytes || entries > s.maxEntries || own > s.maxBytes/4 || ownEntries > s.maxEntries/4 {
		s.requestSweep()
	}
	return nil
}

// noExpiryMtime is the modification time of an entry without expiry (the
// year 2242); see the package doc. A file system that cannot store it clamps
// it, which at worst makes a sweep remove the entry early.
const noExpiryMtime = int64(1<<33-1) * int64(time.Second)

// Delete implements [store.Store].
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	var errs []error
	for _, k := range keys {
		path := s.entryPath(k)
		if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, s.fsError("remove", path, err))
		}
	}
	return errors.Join(errs...)
}

// Close implements [store.Store]. It stops the background sweep and waits
// for calls in flight. The directory stays as it is.
func (s *Store) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		s.stopSweep()
		<-s.sweepDone
	}
	return nil
}
