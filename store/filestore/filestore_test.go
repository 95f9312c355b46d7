package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/filestore"
	"github.com/gormcache/gormcache/store/storetest"
	"golang.org/x/sys/unix"
)

var ctx = context.Background()

// TestMain runs the child workload of TestTwoProcesses when the test binary
// is started as that child.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// newStore returns a store in a fresh temporary directory.
func newStore(t testing.TB, cfg filestore.Config) *filestore.Store {
	t.Helper()
	return openStore(t, t.TempDir(), cfg)
}

func openStore(t testing.TB, dir string, cfg filestore.Config) *filestore.Store {
	t.Helper()
	s, err := filestore.New(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func get(t testing.TB, s store.Store, key string) []byte {
	t.Helper()
	b, err := s.Get(ctx, key, nil, nil)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return b
}

func set(t testing.TB, s store.Store, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Set(ctx, key, value, ttl); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// entryFiles lists the entry files under dir (not temporary files).
func entryFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, "e"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

// onlyEntryFile returns the one entry file under dir.
func onlyEntryFile(t testing.TB, dir string) string {
	t.Helper()
	files := entryFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d entry files, want 1: %v", len(files), files)
	}
	return files[0]
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := filestore.New(t.TempDir(), filestore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceSync(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := filestore.New(t.TempDir(), filestore.Config{Sync: true, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  filestore.Config
	}{
		{"negative MaxBytes", filestore.Config{MaxBytes: -1}},
		{"negative MaxEntries", filestore.Config{MaxEntries: -1}},
		{"CullFraction 1", filestore.Config{CullFraction: 1}},
		{"negative CullFraction", filestore.Config{CullFraction: -0.1}},
		{"negative MaxValueBytes", filestore.Config{MaxValueBytes: -1}},
		{"negative LockTimeout", filestore.Config{LockTimeout: -time.Second}},
		{"FileMode with type bits", filestore.Config{FileMode: os.ModeDir | 0o600}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := filestore.New(t.TempDir(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "filestore: ") || !errors.Is(err, store.ErrInvalidConfig) {
				t.Errorf("error %q lacks the package prefix or does not wrap ErrInvalidConfig", err)
			}
		})
	}
	if _, err := filestore.New("", filestore.Config{}); err == nil {
		t.Error("empty directory: no error")
	}
}

func TestReopenKeepsEntriesAndVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := filestore.New(dir, filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "k", []byte("v"), time.Hour)
	before := storetest.Versions(t, s, "users")
	s.Close()

	s = openStore(t, dir, filestore.Config{})
	if b := get(t, s, "k"); string(b) != "v" {
		t.Fatalf("after reopen Get = %q", b)
	}
	if after := storetest.Versions(t, s, "users"); after[0] != before[0] {
		t.Fatalf("version %d → %d across a reopen", before[0], after[0])
	}
}

func TestTwoStoresShareADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := openStore(t, dir, filestore.Config{})
	b := openStore(t, dir, filestore.Config{})
	set(t, a, "k", []byte("from a"), time.Minute)
	if got := get(t, b, "k"); string(got) != "from a" {
		t.Fatalf("b reads %q", got)
	}
	va := storetest.Versions(t, a, "t")
	if vb := storetest.Versions(t, b, "t"); vb[0] != va[0] {
		t.Fatalf("a reads %d, b reads %d", va[0], vb[0])
	}
	lease, err := a.Bump(ctx, []string{"t"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, b, "t"); v[0] != 0 {
		t.Fatalf("b reads %d while a holds the tag", v[0])
	}
	if err := a.Release(ctx, []string{"t"}, lease); err != nil {
		t.Fatal(err)
	}
	if v := storetest.Versions(t, b, "t"); v[0] == 0 || v[0] == va[0] {
		t.Fatalf("b reads %d after the release (before %d)", v[0], va[0])
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, a, "k"); got != nil {
		t.Fatalf("a reads %q after b deleted it", got)
	}
}

func TestWipedDirectoryNeverRepeatsVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{})
	seen := map[uint64]bool{}
	for round := range 5 {
		for range 3 {
			v := storetest.Versions(t, s, "users")[0]
			if v == 0 || seen[v] {
				t.Fatalf("round %d: version %d (seen before: %v)", round, v, seen[v])
			}
			seen[v] = true
			if _, err := s.Bump(ctx, []string{"users"}, 0); err != nil {
				t.Fatal(err)
			}
		}
		set(t, s, "k", []byte("x"), time.Minute)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, s, "k"); got != nil {
			t.Fatalf("entry survived the wipe: %q", got)
		}
	}
	// The store works on after the wipe, directories included.
	set(t, s, "k", []byte("again"), time.Minute)
	if got := get(t, s, "k"); string(got) != "again" {
		t.Fatalf("after wipes Get = %q", got)
	}
	if _, err := s.Bump(ctx, []string{"users"}, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// garblers damage an entry or version file in place.
var garblers = []struct {
	name string
	fn   func(b []byte) []byte
}{
	{"empty", func(b []byte) []byte { return nil }},
	{"one byte", func(b []byte) []byte { return b[:1] }},
	{"truncated half", func(b []byte) []byte { return b[:len(b)/2] }},
	{"truncated checksum", func(b []byte) []byte { return b[:len(b)-3] }},
	{"last byte flipped", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
	{"middle byte flipped", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
	{"format byte", func(b []byte) []byte { b[3] = 99; return b }},
	{"length field huge", func(b []byte) []byte { b[4], b[5], b[6], b[7] = 0xff, 0xff, 0xff, 0x7f; return b }},
	{"appended", func(b []byte) []byte { return append(b, "junk"...) }},
	{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }},
	{"text", func(b []byte) []byte { return []byte("not a gormcache file\n") }},
}

// rewrite garbles a file in place, keeping its modification time (an entry
// file's expiry deadline), as a disk error would.
func rewrite(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Through a file of another name, so that a sweep never sees the
	// garbled file with a modification time of now (an expired entry).
	tmp := path + "-garbled"
	if err := os.WriteFile(tmp, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, time.Time{}, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptEntryIsAMissAndReplaced(t *testing.T) {
	t.Parallel()
	for _, g := range garblers {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openStore(t, dir, filestore.Config{SweepInterval: -1})
			val := bytes.Repeat([]byte("row"), 100)
			set(t, s, "k", val, time.Minute)
			path := onlyEntryFile(t, dir)
			rewrite(t, path, g.fn)

			v := make([]uint64, 1)
			got, err := s.Get(ctx, "k", []string{"t"}, v)
			if err != nil || got != nil {
				t.Fatalf("Get of a garbled entry = %q, %v; want a miss", got, err)
			}
			if v[0] == 0 {
				t.Error("versions not filled on a corrupt entry")
			}
			if st := s.Stats(); st.Corrupt != 1 || st.Misses != 1 {
				t.Errorf("stats %+v: want Corrupt 1, Misses 1", st)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("garbled file not removed: %v", err)
			}
			set(t, s, "k", val, time.Minute)
			if got := get(t, s, "k"); !bytes.Equal(got, val) {
				t.Fatalf("after a new Set Get = %d bytes", len(got))
			}
		})
	}
}

func TestCorruptVersionFileGetsAFreshVersion(t *testing.T) {
	t.Parallel()
	for _, g := range garblers {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openStore(t, dir, filestore.Config{SweepInterval: -1})
			before := storetest.Versions(t, s, "users")[0]
			rewrite(t, filepath.Join(dir, "v", "users.v"), g.fn)

			after := storetest.Versions(t, s, "users")[0]
			if after == 0 || after == before {
				t.Fatalf("version %d → %d after the file was garbled", before, after)
			}
			if st := s.Stats(); st.Corrupt != 1 {
				t.Errorf("Corrupt = %d, want 1", st.Corrupt)
			}
			if again := storetest.Versions(t, s, "users")[0]; again != after {
				t.Fatalf("repaired version not stable: %d then %d", after, again)
			}
			if _, err := s.Bump(ctx, []string{"users"}, 0); err != nil {
				t.Fatal(err)
			}
			if v := storetest.Versions(t, s, "users")[0]; v == after || v == 0 {
				t.Fatalf("bump after repair: %d → %d", after, v)
			}
		})
	}
}

func TestLazyExpiryRemovesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{SweepInterval: -1})
	set(t, s, "k", []byte("x"), 20*time.Millisecond)
	path := onlyEntryFile(t, dir)
	time.Sleep(40 * time.Millisecond)
	if got := get(t, s, "k"); got != nil {
		t.Fatalf("expired entry read: %q", got)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("expired file not removed: %v", err)
	}
	if st := s.Stats(); st.Expired != 1 || st.Misses != 1 {
		t.Errorf("stats %+v: want Expired 1, Misses 1", st)
	}
}

func TestSweepRemovesExpired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{SweepInterval: -1})
	for i := range 20 {
		set(t, s, fmt.Sprint("short", i), []byte("x"), 20*time.Millisecond)
	}
	for i := range 5 {
		set(t, s, fmt.Sprint("long", i), []byte("y"), time.Hour)
		set(t, s, fmt.Sprint("forever", i), []byte("z"), []time.Duration{0, -1, math.MaxInt64, 200 * 365 * 24 * time.Hour, 100 * 365 * 24 * time.Hour}[i])
	}
	time.Sleep(40 * time.Millisecond)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(entryFiles(t, dir)); n != 10 {
		t.Fatalf("%d entry files after the sweep, want 10", n)
	}
	st := s.Stats()
	if st.Expired != 20 || st.Entries != 10 {
		t.Errorf("stats %+v: want Expired 20, Entries 10", st)
	}
	for i := range 5 {
		if get(t, s, fmt.Sprint("long", i)) == nil || get(t, s, fmt.Sprint("forever", i)) == nil {
			t.Fatalf("live entry %d removed", i)
		}
	}
}

func TestBackgroundSweep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{SweepInterval: 20 * time.Millisecond})
	for i := range 10 {
		set(t, s, fmt.Sprint(i), []byte("x"), 10*time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(entryFiles(t, dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("expired entries still on disk after 5s: %d", len(entryFiles(t, dir)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.Expired != 10 || st.Sweeps == 0 {
		t.Errorf("stats %+v: want Expired 10 and some sweeps", st)
	}
}

// The cull tests write with one store (default limits, so it never culls)
// and sweep with another on the same directory, whose limits are small: each
// process applies its own limits when it sweeps.

func TestCullByEntries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openStore(t, dir, filestore.Config{})
	for i := range 30 {
		set(t, w, fmt.Sprint("old", i), []byte("x"), time.Hour)
	}
	time.Sleep(30 * time.Millisecond) // change times are coarse
	for i := range 15 {
		set(t, w, fmt.Sprint("new", i), []byte("y"), time.Hour)
	}
	s := openStore(t, dir, filestore.Config{MaxEntries: 30, SweepInterval: -1})
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(entryFiles(t, dir)); n != 20 {
		t.Fatalf("%d entries after a cull, want 20 (MaxEntries 30, a third culled)", n)
	}
	for i := range 15 {
		if get(t, s, fmt.Sprint("new", i)) == nil {
			t.Errorf("newest entry %d culled", i)
		}
	}
	if st := s.Stats(); st.Culled != 25 || st.Entries != 20 {
		t.Errorf("stats %+v: want Culled 25, Entries 20", st)
	}
}

func TestCullByBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const maxBytes = 64 << 10
	w := openStore(t, dir, filestore.Config{})
	val := make([]byte, 4<<10)
	for i := range 40 {
		set(t, w, fmt.Sprint(i), val, time.Hour)
	}
	s := openStore(t, dir, filestore.Config{MaxBytes: maxBytes, SweepInterval: -1})
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range entryFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > maxBytes*2/3 || total < maxBytes*2/3-5<<10 {
		t.Fatalf("%d bytes after a cull, want just under 2/3 of %d", total, maxBytes)
	}
	if st := s.Stats(); st.Culled == 0 || st.Bytes != total {
		t.Errorf("stats %+v: want some culled, Bytes %d", st, total)
	}
}

// TestSetStartsACull checks that a full store culls without a periodic
// sweep.
func TestSetStartsACull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{MaxEntries: 20, SweepInterval: -1})
	for i := range 100 {
		set(t, s, fmt.Sprint(i), []byte("x"), time.Hour)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := len(entryFiles(t, dir))
		if n <= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries 5s after the Sets, MaxEntries 20", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	s := newStore(t, filestore.Config{MaxValueBytes: 10})
	if err := s.Set(ctx, "k", make([]byte, 11), time.Minute); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Set of 11 bytes with MaxValueBytes 10: %v", err)
	}
	set(t, s, "k", make([]byte, 10), time.Minute)
}

func TestLongKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t, filestore.Config{})
	long := strings.Repeat("select * from a_table_with_a_long_name where ", 300)
	set(t, s, long, []byte("a"), time.Minute)
	set(t, s, long+"x", []byte("b"), time.Minute)
	if a, b := get(t, s, long), get(t, s, long+"x"); string(a) != "a" || string(b) != "b" {
		t.Fatalf("Get = %q, %q", a, b)
	}
	tag := strings.Repeat("schema/table?*", 50)
	if v := storetest.Versions(t, s, tag, store.GlobalTag); v[0] == 0 || v[1] == 0 {
		t.Fatalf("versions of odd tags: %v", v)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s := newStore(t, filestore.Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	v := make([]uint64, 1)
	for name, err := range map[string]error{
		"Get":      func() error { _, err := s.Get(ctx, "k", []string{"t"}, v); return err }(),
		"Set":      s.Set(ctx, "k", nil, 0),
		"Delete":   s.Delete(ctx, "k"),
		"Versions": s.Versions(ctx, []string{"t"}, v),
		"Bump":     func() error { _, err := s.Bump(ctx, []string{"t"}, 0); return err }(),
		"Release":  s.Release(ctx, []string{"t"}, 1),
		"Sweep":    s.Sweep(ctx),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

// TestLockTimeout holds a tag's lock file as another process would, and
// checks that a Bump gives up with ErrUnavailable, while readers go on.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, filestore.Config{LockTimeout: 50 * time.Millisecond})
	before := storetest.Versions(t, s, "users")[0]
	f, err := os.OpenFile(filepath.Join(dir, "v", "users.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Bump(ctx, []string{"users"}, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Bump while the lock is held elsewhere: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Bump gave up after %v", d)
	}
	if v := storetest.Versions(t, s, "users")[0]; v != before {
		t.Fatalf("readers blocked or version changed: %d → %d", before, v)
	}
	// A hold that fails on its second tag leaves the first unheld.
	if _, err := s.Bump(ctx, []string{"orders", "users"}, time.Hour); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Bump with hold while the lock is held elsewhere: %v", err)
	}
	if v := storetest.Versions(t, s, "orders")[0]; v == 0 {
		t.Fatal("a failed Bump left its hold on the tag it did bump")
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Bump(c, []string{"users"}, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Bump with a cancelled context: %v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bump(ctx, []string{"users"}, 0); err != nil {
		t.Fatalf("Bump after the lock was freed: %v", err)
	}
}

// TestConcurrentBumpsLoseNothing checks the read-modify-write under the
// lock: n bumps from several stores on one directory add exactly n.
func TestConcurrentBumpsLoseNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stores := []*filestore.Store{openStore(t, dir, filestore.Config{}), openStore(t, dir, filestore.Config{})}
	before := storetest.Versions(t, stores[0], "t")[0]
	var wg sync.WaitGroup
	const perGoroutine = 25
	for g := range 8 {
		wg.Go(func() {
			s := stores[g%2]
			for range perGoroutine {
				lease, err := s.Bump(ctx, []string{"t"}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Release(ctx, []string{"t"}, lease); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if after := storetest.Versions(t, stores[1], "t")[0]; after != before+8*perGoroutine*2 {
		t.Fatalf("version %d → %d after %d increments", before, after, 8*perGoroutine*2)
	}
}
