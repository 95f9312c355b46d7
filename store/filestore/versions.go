package filestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// maxCachedTags bounds the per-process cache of tags' file names.
const maxCachedTags = 4096

// tagFiles are the files of one tag: v/<name>.v holds its version and holds
// and is only ever replaced by rename; v/<name>.lock is the flock that
// writers of the tag take, and is never replaced.
type tagFiles struct {
	version, lock string
	mu            chan struct{} // this process's writers of the tag, before flock
}

func (s *Store) files(tag string) *tagFiles {
	if f, ok := s.tagPaths.Load(tag); ok {
		return f.(*tagFiles)
	}
	name := tagFileName(tag)
	f := &tagFiles{
		version: s.versionDir + "/" + name + ".v",
		lock:    s.versionDir + "/" + name + ".lock",
		mu:      s.tagMu[xxhash.Sum64String(tag)%uint64(len(s.tagMu))],
	}
	if s.nTags.Load() < maxCachedTags {
		if _, loaded := s.tagPaths.LoadOrStore(tag, f); !loaded {
			s.nTags.Add(1)
		}
	}
	return f
}

// tagFileName is the tag itself when it is a short name of letters, digits,
// '_', '.' and '-' that does not start with '.' (table names, so that an
// operator can read the directory), else "~" and the hex of the first 128
// bits of its SHA-256. Two tags that share a file (on a case-insensitive
// file system) share a version, which invalidates more, never less.
func tagFileName(tag string) string {
	safe := tag != "" && len(tag) <= 100 && tag[0] != '.'
	for i := 0; safe && i < len(tag); i++ {
		c := tag[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
	}
	if safe {
		return tag
	}
	sum := sha256.Sum256([]byte(tag))
	return "~" + hex.EncodeToString(sum[:16])
}

// randomVersion returns a fresh version in [2^62, 2^63): a new tag's base,
// far from any version a lost file may have held, with 2^62 bumps of room.
func randomVersion() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])>>2 | 1<<62
}

func nextVersion(v uint64) uint64 {
	if v+1 == 0 {
		return randomVersion()
	}
	return v + 1
}

func randomLease() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Versions implements [store.Store].
func (s *Store) Versions(ctx context.Context, tags []string, versions []uint64) error {
	if len(tags) != len(versions) {
		return fmt.Errorf("filestore: %d tags but %d versions", len(tags), len(versions))
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	return s.versions(ctx, tags, versions)
}

// versions reads the tags' version files without a lock: each file is
// replaced whole by rename, so a read sees one state, version and holds
// together. Only a tag whose file is missing, corrupt or from an earlier boot
// takes its lock, to create the file.
func (s *Store) versions(ctx context.Context, tags []string, versions []uint64) error {
	if len(tags) == 0 {
		return nil
	}
	var buf [256]byte
	now := time.Now().UnixNano()
	for i, tag := range tags {
		f := s.files(tag)
		v, ok, err := s.peek(f, buf[:], now)
		if err != nil {
			return err
		}
		if !ok {
			st, err := s.updateTag(ctx, f, nil)
			if err != nil {
				return err
			}
			v = st.version
			if st.heldAt(time.Now().UnixNano()) {
				v = 0
			}
		}
		versions[i] = v
	}
	return nil
}

// peek reads a tag's version file: its version, or 0 while it is held. ok is
// false when the file must be (re)created under the lock.
func (s *Store) peek(f *tagFiles, buf []byte, now int64) (version uint64, ok bool, err error) {
	fd, err := openRead(f.version)
	if errors.Is(err, unix.ENOENT) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.fsError("open", f.version, err)
	}
	b, err := readAll(fd, buf)
	closeFile(fd)
	if err != nil {
		return 0, false, s.fsError("read", f.version, err)
	}
	v, held, current, err := peekVersion(b, now, &s.boot)
	if err != nil || !current {
		return 0, false, nil
	}
	if held {
		return 0, true, nil
	}
	return v, true, nil
}

// updateTag reads, changes and rewrites a tag's version file under the
// tag's lock: first this process's mutex for the tag, then the flock that
// excludes other processes. A missing, corrupt or untrusted file is replaced
// by a fresh random version. With change nil, a valid file is left as it is.
func (s *Store) updateTag(ctx context.Context, f *tagFiles, change func(st *tagState, now int64)) (*tagState, error) {
	deadline := time.Now().Add(s.lockTimeout)
	timer := time.NewTimer(s.lockTimeout)
	select {
	case f.mu <- struct{}{}:
		timer.Stop()
	case <-ctx.Done():
		timer.Stop()
		return nil, fmt.Errorf("filestore: lock %s: %w", f.lock, ctx.Err())
	case <-timer.C:
		return nil, fmt.Errorf("filestore: lock %s: busy in this process for %v: %w", f.lock, s.lockTimeout, errUnavailable)
	}
	defer func() { <-f.mu }()
	l, _, err := s.lockFile(ctx, f.lock, true, deadline)
	if err != nil {
		return nil, err
	}
	defer l.unlock()

	st, fresh, err := s.loadTag(f)
	if err != nil {
		return nil, err
	}
	if change == nil && !fresh {
		return st, nil
	}
	now := time.Now().UnixNano()
	if change != nil {
		change(st, now)
	}
	st.prune(now)
	st.durable, st.boot = s.sync, s.boot
	if err := s.writeAtomic(f.version, encodeVersion(st), nil); err != nil {
		return nil, err
	}
	return st, nil
}

// loadTag reads a tag's version file for a writer. fresh reports a new
// state with a random version, for a file that is missing, corrupt, or was
// written without fsync before the host's last boot (the crash that ended
// that boot may have rolled it back to a version already handed out).
func (s *Store) loadTag(f *tagFiles) (st *tagState, fresh bool, err error) {
	fd, err := openRead(f.version)
	if errors.Is(err, unix.ENOENT) {
		s.created.Add(1)
		return &tagState{version: randomVersion()}, true, nil
	}
	if err != nil {
		return nil, false, s.fsError("open", f.version, err)
	}
	b, err := readAll(fd, make([]byte, 256))
	closeFile(fd)
	if err != nil {
		return nil, false, s.fsError("read", f.version, err)
	}
	st, err = decodeVersion(b)
	if err != nil {
		s.corrupt.Add(1)
		s.created.Add(1)
		return &tagState{version: randomVersion()}, true, nil
	}
	if !st.durable && st.boot != s.boot {
		// Keep the holds: they end at their deadlines anyway.
		s.created.Add(1)
		st.version = randomVersion()
		return st, true, nil
	}
	return st, false, nil
}

// distinct returns tags without repeats (a tag named twice is bumped once).
func distinct(tags []string) []string {
	for i := 1; i < len(tags); i++ {
		for j := range i {
			if tags[i] == tags[j] {
				out := make([]string, 0, len(tags))
				seen := make(map[string]bool, len(tags))
				for _, t := range tags {
					if !seen[t] {
						seen[t] = true
						out = append(out, t)
					}
				}
				return out
			}
		}
	}
	return tags
}

// Bump implements [store.Store]. Each tag's file is rewritten under its
// lock with version+1 and, when hold > 0, the new lease and its deadline.
// The tags are bumped one after the other, not as one atomic step.
func (s *Store) Bump(ctx context.Context, tags []string, hold time.Duration) (uint64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	var lease uint64
	var deadline int64
	if hold > 0 {
		lease = randomLease()
		deadline = time.Now().Add(hold).UnixNano()
	}
	tags = distinct(tags)
	for i, tag := range tags {
		_, err := s.updateTag(ctx, s.files(tag), func(st *tagState, _ int64) {
			st.version = nextVersion(st.version)
			if lease != 0 {
				st.holds = append(st.holds, holdOf(lease, deadline))
			}
		})
		if err != nil {
			if lease != 0 && i > 0 {
				// The caller gets no lease to release: drop the holds
				// already placed rather than leave them to their deadline.
				_ = s.release(context.WithoutCancel(ctx), tags[:i], lease)
			}
			return 0, err
		}
	}
	return lease, nil
}

func holdOf(lease uint64, deadline int64) hold { return hold{lease: lease, deadline: deadline} }

// Release implements [store.Store]: version+1 and the lease dropped, under
// each tag's lock.
func (s *Store) Release(ctx context.Context, tags []string, lease uint64) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	return s.release(ctx, distinct(tags), lease)
}

func (s *Store) release(ctx context.Context, tags []string, lease uint64) error {
	for _, tag := range tags {
		_, err := s.updateTag(ctx, s.files(tag), func(st *tagState, _ int64) {
			st.version = nextVersion(st.version)
			holds := st.holds[:0]
			for _, h := range st.holds {
				if h.lease != lease {
					holds = append(holds, h)
				}
			}
			st.holds = holds
		})
		if err != nil {
			return err
		}
	}
	return nil
}
