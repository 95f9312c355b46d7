package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The file operations go straight to golang.org/x/sys/unix: an os.File costs
// an extra epoll registration attempt and an allocation per open, and a Get
// opens one file per tag plus the entry.

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func openFile(path string, flags int, perm uint32) (int, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(path, flags|unix.O_CLOEXEC, perm)
		return err
	})
	return fd, err
}

// noAtime is O_NOATIME where it exists, until it fails once with EPERM (it
// is allowed only on files the process owns).
var noAtime atomic.Int64

func init() { noAtime.Store(oNoAtime) }

// openRead opens a file for reading without updating its access time, when
// the system allows it.
func openRead(path string) (int, error) {
	flag := int(noAtime.Load())
	fd, err := openFile(path, unix.O_RDONLY|flag, 0)
	if flag != 0 && errors.Is(err, unix.EPERM) {
		noAtime.Store(0)
		return openFile(path, unix.O_RDONLY, 0)
	}
	return fd, err
}

func closeFile(fd int) { _ = unix.Close(fd) }

// readAll reads fd to its end into buf, growing it when needed.
func readAll(fd int, buf []byte) ([]byte, error) {
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, 0)[:n]
			buf = buf[:cap(buf)]
		}
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}

// readFull fills buf from fd; a short file is io.ErrUnexpectedEOF.
func readFull(fd int, buf []byte) error {
	for n := 0; n < len(buf); {
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return err
		}
		if m == 0 {
			return io.ErrUnexpectedEOF
		}
		n += m
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.Write(fd, b)
			return err
		})
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// writeAtomic replaces path with a file holding data: a temporary file in
// the same directory is written (and fsynced when s.sync), given mtime when
// not nil, and renamed over path, so that a reader opens either the old file
// or the new one, whole. A missing directory is created (the store's
// directory may have been wiped).
func (s *Store) writeAtomic(path string, data []byte, mtime *unix.Timespec) error {
	dir := filepath.Dir(path)
	for attempt := 0; ; attempt++ {
		tmp := dir + "/" + s.tempName()
		fd, err := openFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, s.fileMode)
		switch {
		case errors.Is(err, unix.ENOENT) && attempt < 3:
			if err := s.mkdirAll(dir); err != nil {
				return err
			}
			continue
		case errors.Is(err, unix.EEXIST) && attempt < 3:
			continue
		case err != nil:
			return s.fsError("create", tmp, err)
		}
		err = writeAll(fd, data)
		if err == nil && s.sync {
			err = unix.Fsync(fd)
		}
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err == nil && mtime != nil {
			// The access time is after the modification time, so that
			// relatime never writes a new one when the file is read.
			atime := unix.NsecToTimespec(mtime.Nano() + int64(time.Second))
			err = unix.UtimesNanoAt(unix.AT_FDCWD, tmp, []unix.Timespec{atime, *mtime}, 0)
		}
		if err == nil {
			// Not a rename over the old file: on ext4 that starts a flush
			// of the new file's data (auto_da_alloc), 0.3-0.7 ms where the
			// rename alone takes a few µs. A reader between the two sees no
			// file (see the package doc).
			if uerr := unix.Unlink(path); uerr != nil && !errors.Is(uerr, unix.ENOENT) {
				err = uerr
			}
		}
		if err == nil {
			err = unix.Rename(tmp, path)
		}
		if err != nil {
			_ = unix.Unlink(tmp)
			if errors.Is(err, unix.ENOENT) && attempt < 3 {
				continue // the directory went away under us
			}
			return s.fsError("write", path, err)
		}
		if s.sync {
			syncDir(dir)
		}
		return nil
	}
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	fd, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return
	}
	_ = unix.Fsync(fd)
	closeFile(fd)
}

func (s *Store) mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, s.dirMode); err != nil {
		return s.fsError("mkdir", dir, err)
	}
	return nil
}

// removeIfSame unlinks path if it is still the file whose stat is st: a
// removal must not take a file another process renamed there since. (What
// remains of the race can only remove a fresh entry: a miss.)
func removeIfSame(path string, st *unix.Stat_t) {
	var now unix.Stat_t
	if unix.Lstat(path, &now) == nil && now.Ino == st.Ino && now.Dev == st.Dev {
		_ = unix.Unlink(path)
	}
}

// fileLock is an exclusive flock on a lock file.
type fileLock struct{ fd int }

func (l fileLock) unlock() {
	_ = unix.Flock(l.fd, unix.LOCK_UN)
	closeFile(l.fd)
}

// lockFile takes an exclusive flock on path, creating it, waiting at most
// until ctx is done or deadline. With wait false it gives up at once when
// another holds the lock (ok false, nil error).
//
// The wait is a blocking flock, so that the kernel hands the lock over when
// its holder lets go (a loop of non-blocking tries with sleeps can be
// starved by a busy process). It runs in a goroutine of its own: a caller
// that gives up leaves it to release the lock if it comes, then close the
// file.
//
// Lock files are never removed by the store; if one is removed anyway (a
// wiped directory), a lock taken on the removed file excludes nobody, so the
// lock is taken again until the file locked is the one at path.
func (s *Store) lockFile(ctx context.Context, path string, wait bool, deadline time.Time) (l fileLock, ok bool, err error) {
	for attempt := 0; ; attempt++ {
		fd, err := openFile(path, unix.O_RDWR|unix.O_CREAT, s.fileMode)
		if errors.Is(err, unix.ENOENT) && attempt < 3 {
			if err := s.mkdirAll(filepath.Dir(path)); err != nil {
				return fileLock{}, false, err
			}
			continue
		}
		if err != nil {
			return fileLock{}, false, s.fsError("open lock", path, err)
		}
		err = retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
		switch {
		case err == nil:
		case !errors.Is(err, unix.EWOULDBLOCK):
			closeFile(fd)
			return fileLock{}, false, s.fsError("lock", path, err)
		case !wait:
			closeFile(fd)
			return fileLock{}, false, nil
		default:
			if err := s.waitLock(ctx, fd, path, deadline); err != nil {
				return fileLock{}, false, err
			}
		}
		var held, cur unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(path, &cur) == nil && held.Ino == cur.Ino && held.Dev == cur.Dev {
			return fileLock{fd: fd}, true, nil
		}
		fileLock{fd: fd}.unlock()
		if attempt > 100 {
			return fileLock{}, false, fmt.Errorf("filestore: lock %s: the file keeps being replaced: %w", path, errUnavailable)
		}
	}
}

// waitLock blocks in flock on fd until it holds the lock, ctx is done or
// deadline has passed. On an error fd is no longer the caller's.
func (s *Store) waitLock(ctx context.Context, fd int, path string, deadline time.Time) error {
	done := make(chan error, 1)
	go func() {
		done <- retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) })
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case err := <-done:
		if err != nil {
			closeFile(fd)
			return s.fsError("lock", path, err)
		}
		return nil
	case <-ctx.Done():
		err = fmt.Errorf("filestore: lock %s: %w", path, ctx.Err())
	case <-timer.C:
		err = fmt.Errorf("filestore: lock %s: held by another for %v: %w", path, s.lockTimeout, errUnavailable)
	}
	go func() {
		if <-done == nil {
			_ = unix.Flock(fd, unix.LOCK_UN)
		}
		closeFile(fd)
	}()
	return err
}
