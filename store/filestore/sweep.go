package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sweeper runs the background sweep: once at start (to learn the size of the
// directory), then every sweepInterval and whenever a Set asks for one.
func (s *Store) sweeper(ctx context.Context) {
	defer close(s.sweepDone)
	var tick <-chan time.Time
	if s.sweepInterval > 0 {
		t := time.NewTicker(s.sweepInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		// A sweep another process is running does the work for everyone:
		// this one then waits for the next occasion.
		_ = s.sweep(ctx, false)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-s.kick:
		}
	}
}

// requestSweep asks the background sweeper for a sweep, without waiting.
func (s *Store) requestSweep() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Sweep removes expired entries and stale temporary files, and culls the
// directory when it is over MaxBytes or MaxEntries. It waits (at most
// Config.LockTimeout) for a sweep that another goroutine or process is
// running, then runs its own. The
// background sweeper calls it every SweepInterval; call it yourself to sweep
// at chosen times.
func (s *Store) Sweep(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	return s.sweep(ctx, true)
}

// candidate is a live entry file that a cull may remove.
type candidate struct {
	shard   uint8
	name    string
	size    int64
	written int64 // ctime: when the file was renamed into place
}

// sweep scans every entry file's metadata: a stat per file, no reads. The
// modification time of an entry file is its expiry deadline (Set sets it),
// so expired files are found without opening them. Then, when the directory
// is over a limit, it culls: the oldest-written entries go first, until the
// directory is at most (1-CullFraction) of both limits. With wait false it
// returns at once when a sweep is running elsewhere.
func (s *Store) sweep(ctx context.Context, wait bool) error {
	if wait {
		s.sweepMu.Lock()
	} else if !s.sweepMu.TryLock() {
		return nil
	}
	defer s.sweepMu.Unlock()
	l, ok, err := s.lockFile(ctx, s.dir+"/sweep.lock", wait, time.Now().Add(s.lockTimeout))
	if err != nil || !ok {
		return err
	}
	defer l.unlock()
	s.sweeps.Add(1)
	ownEntries, ownBytes := s.ownEntries.Load(), s.ownBytes.Load()

	now := time.Now()
	nowNs, staleNs := now.UnixNano(), now.Add(-s.staleTemp).UnixNano()
	var cands []candidate
	var total int64
	var st unix.Stat_t
	for shard := range 256 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("filestore: sweep: %w", err)
		}
		dir := fmt.Sprintf("%s/%02x", s.entryDir, shard)
		names, err := readDirNames(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return s.fsError("list", dir, err)
		}
		for _, name := range names {
			path := dir + "/" + name
			if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			if strings.HasPrefix(name, ".tmp-") {
				if st.Ctim.Nano() < staleNs {
					_ = unix.Unlink(path) // a dead writer's
				}
				continue
			}
			if !isEntryName(name, shard) {
				continue // not the store's
			}
			if st.Mtim.Nano() <= nowNs {
				if unix.Unlink(path) == nil {
					s.expired.Add(1)
				}
				continue
			}
			cands = append(cands, candidate{uint8(shard), name, st.Size, st.Ctim.Nano()})
			total += st.Size
		}
	}
	s.removeStaleTemps(s.versionDir, staleNs)

	count := int64(len(cands))
	if total > s.maxBytes || count > s.maxEntries {
		keepBytes := int64(float64(s.maxBytes) * (1 - s.cullFraction))
		keepEntries := int64(float64(s.maxEntries) * (1 - s.cullFraction))
		slices.SortFunc(cands, func(a, b candidate) int {
			switch {
			case a.written < b.written:
				return -1
			case a.written > b.written:
				return 1
			}
			return 0
		})
		for _, c := range cands {
			if total <= keepBytes && count <= keepEntries {
				break
			}
			path := fmt.Sprintf("%s/%02x/%s", s.entryDir, c.shard, c.name)
			if err := unix.Unlink(path); err == nil {
				s.culled.Add(1)
			}
			total -= c.size
			count--
		}
	}
	s.estBytes.Store(total)
	s.estEntries.Store(count)
	// Sets during the scan may or may not have been counted: keep them in
	// the next round's trigger.
	s.ownBytes.Add(-ownBytes)
	s.ownEntries.Add(-ownEntries)
	return nil
}

// isEntryName reports whether name is 16 lower-case hex digits starting with
// the shard's two.
func isEntryName(name string, shard int) bool {
	if len(name) != 16 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	const digits = "0123456789abcdef"
	return name[0] == digits[shard>>4] && name[1] == digits[shard&15]
}

func (s *Store) removeStaleTemps(dir string, staleNs int64) {
	names, err := readDirNames(dir)
	if err != nil {
		return
	}
	var st unix.Stat_t
	for _, name := range names {
		if strings.HasPrefix(name, ".tmp-") {
			path := dir + "/" + name
			if unix.Lstat(path, &st) == nil && st.Ctim.Nano() < staleNs {
				_ = unix.Unlink(path)
			}
		}
	}
}

// readDirNames lists a directory in its own order (no sort, no stat).
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
