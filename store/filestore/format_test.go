package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key string
		value     []byte
		expiry    int64
	}{
		{"empty value", "k", []byte{}, 0},
		{"empty key", "", []byte("v"), 1},
		{"binary", "key\x00with\xffbytes", []byte("\x00\x01\x02"), 1 << 62},
		{"negative expiry", "k", []byte("v"), -5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeEntry(tc.key, tc.value, tc.expiry)
			v, exp, err := decodeEntry(b, tc.key)
			if err != nil || !bytes.Equal(v, tc.value) || exp != tc.expiry || v == nil {
				t.Fatalf("decode = %q, %d, %v", v, exp, err)
			}
			if _, _, err := decodeEntry(b, tc.key+"x"); !errors.Is(err, errOtherKey) {
				t.Fatalf("decode with another key: %v", err)
			}
		})
	}
}

func TestVersionRoundTrip(t *testing.T) {
	t.Parallel()
	boot := [16]byte{1, 2, 3}
	st := &tagState{version: 1<<62 + 7, boot: boot, holds: []hold{{1, 100}, {2, 300}}}
	b := encodeVersion(st)
	got, err := decodeVersion(b)
	if err != nil || got.version != st.version || got.boot != boot || len(got.holds) != 2 || got.holds[1] != st.holds[1] || got.durable {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		now           int64
		held, current bool
		boot          [16]byte
	}{
		{now: 50, held: true, current: true, boot: boot},
		{now: 200, held: true, current: true, boot: boot},
		{now: 300, held: false, current: true, boot: boot},
		{now: 300, held: false, current: false, boot: [16]byte{9}},
	} {
		v, held, current, err := peekVersion(b, tc.now, &tc.boot)
		if err != nil || v != st.version || held != tc.held || current != tc.current {
			t.Errorf("peek at %d = %d, held %v, current %v, %v", tc.now, v, held, current, err)
		}
	}
	st.durable = true
	if _, _, current, _ := peekVersion(encodeVersion(st), 0, &[16]byte{9}); !current {
		t.Error("a durable file from another boot is not current")
	}
}

// FuzzDecodeEntry checks that no input makes the entry decoder panic or
// return a value that is not a whole entry of the key.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry("k", []byte("value"), 0), "k")
	f.Add(encodeEntry("key", nil, 1<<62), "key")
	f.Add(encodeEntry("k", []byte("value"), 0)[:10], "k")
	f.Add([]byte("GCE\x01\xff\xff\xff\xff"), "")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		v, exp, err := decodeEntry(b, key)
		if err != nil {
			if v != nil {
				t.Fatal("value with an error")
			}
			return
		}
		if re := encodeEntry(key, v, exp); !bytes.Equal(re, b) {
			t.Fatalf("decoded entry does not re-encode to its input")
		}
	})
}

// FuzzDecodeVersion does the same for version files, through both decoders.
func FuzzDecodeVersion(f *testing.F) {
	f.Add(encodeVersion(&tagState{version: 1 << 62}), int64(0))
	f.Add(encodeVersion(&tagState{version: 5, holds: []hold{{1, 10}, {2, 20}}}), int64(15))
	f.Add(encodeVersion(&tagState{version: 5, durable: true, holds: []hold{{1, 10}}})[:30], int64(15))
	f.Fuzz(func(t *testing.T, b []byte, now int64) {
		var boot [16]byte
		v, held, _, perr := peekVersion(b, now, &boot)
		st, err := decodeVersion(b)
		if (perr == nil) != (err == nil) {
			t.Fatalf("peek error %v, decode error %v", perr, err)
		}
		if err != nil {
			return
		}
		if v != st.version || v == 0 || held != st.heldAt(now) {
			t.Fatalf("peek %d held %v, decode %+v", v, held, st)
		}
		if re := encodeVersion(st); !bytes.Equal(re, b) {
			t.Fatal("decoded state does not re-encode to its input")
		}
	})
}

// TestNameCollisionIsAMiss puts another key's whole entry where key's file
// goes, as a collision of the 64-bit file names would.
func TestNameCollisionIsAMiss(t *testing.T) {
	t.Parallel()
	s, err := New(t.TempDir(), Config{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "other", []byte("other's rows"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.entryPath("other"), mustMkdir(t, s.entryPath("key"))); err != nil {
		t.Fatal(err)
	}
	b, err := s.Get(ctx, "key", nil, nil)
	if err != nil || b != nil {
		t.Fatalf("Get = %q, %v; want a miss", b, err)
	}
	if st := s.Stats(); st.Corrupt != 0 || st.Misses != 1 {
		t.Errorf("stats %+v: a collision is a miss, not corruption", st)
	}
}

func mustMkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVersionFromAnotherBoot checks that a version file written without
// Sync during an earlier boot is not trusted: the tag gets a new random
// version, and its live holds are kept.
func TestVersionFromAnotherBoot(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		s, err := New(t.TempDir(), Config{SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		old := &tagState{version: 1<<62 + 1000, durable: durable, boot: [16]byte{0xee}}
		if !durable {
			old.holds = []hold{{lease: 7, deadline: time.Now().Add(time.Hour).UnixNano()}}
		}
		f := s.files("users")
		if err := s.writeAtomic(f.version, encodeVersion(old), nil); err != nil {
			t.Fatal(err)
		}
		v := make([]uint64, 1)
		ctx := context.Background()
		if err := s.Versions(ctx, []string{"users"}, v); err != nil {
			t.Fatal(err)
		}
		if durable {
			if v[0] != old.version {
				t.Errorf("durable file from another boot: version %d, want %d", v[0], old.version)
			}
			continue
		}
		if v[0] != 0 {
			t.Errorf("the old boot's live hold was dropped: version %d", v[0])
		}
		if err := s.Release(ctx, []string{"users"}, 7); err != nil {
			t.Fatal(err)
		}
		if err := s.Versions(ctx, []string{"users"}, v); err != nil {
			t.Fatal(err)
		}
		if v[0] == 0 || v[0] >= old.version && v[0] <= old.version+1 {
			t.Errorf("after another boot, version %d (old file had %d): not renewed", v[0], old.version)
		}
		if s.Stats().VersionsCreated != 1 {
			t.Errorf("VersionsCreated = %d, want 1", s.Stats().VersionsCreated)
		}
	}
}

func TestSweepRemovesStaleTemporaryFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New(dir, Config{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	tmps := []string{
		mustMkdir(t, filepath.Join(dir, "e", "ab", ".tmp-dead-1")),
		filepath.Join(dir, "v", ".tmp-dead-2"),
	}
	for _, p := range tmps {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range tmps {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("fresh temporary file removed: %v", err)
		}
	}
	s.sweepMu.Lock()
	s.staleTemp = -time.Second
	s.sweepMu.Unlock()
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range tmps {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale temporary file %s kept: %v", p, err)
		}
	}
	if b, _ := s.Get(ctx, "k", nil, nil); string(b) != "v" {
		t.Fatalf("entry lost: %q", b)
	}
}
