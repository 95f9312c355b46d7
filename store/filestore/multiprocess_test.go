package filestore_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gormcache/gormcache/store/filestore"
	"github.com/gormcache/gormcache/store/storetest"
)

// childEnv names the directory the child process of TestTwoProcesses works
// in; TestMain runs the child's workload when it is set.
const childEnv = "GORMCACHE_FILESTORE_CHILD_DIR"

// Each goroutine of the workload runs for workloadTime and at least minOps
// operations.
const (
	workloadTime = 1500 * time.Millisecond
	minOps       = 100
)

// workloadConfig is small on purpose: the sweeper culls while the other
// process reads.
var workloadConfig = filestore.Config{MaxEntries: 150, MaxBytes: 2 << 20, SweepInterval: 50 * time.Millisecond}

// report is what one process's workload observed.
type report struct {
	Sets, Gets, Hits, Bumps int
	Increments              map[string]int // version increments made, per tag
	Problems                []string
}

func runChild(dir string) int {
	r := workload(dir, workloadTime)
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// TestTwoProcesses runs the same workload in this process and in a child
// (this test binary started again) on one directory: Sets of values of many
// sizes, Gets, Bumps with and without holds. It checks that every value read
// is one that was written whole, that the versions a goroutine reads never
// go backwards, that no bump is lost (the final version is the first plus
// every increment of both processes), and that neither process fails.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, workloadConfig)
	first := storetest.Versions(t, s, "shared", "other")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mine := workload(dir, workloadTime)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("child's stderr:\n%s", stderr.String())
	}
	var child report
	if err := json.Unmarshal(stdout.Bytes(), &child); err != nil {
		t.Fatalf("child's report %q: %v", stdout.String(), err)
	}
	for who, r := range map[string]report{"parent": mine, "child": child} {
		for _, p := range r.Problems {
			t.Errorf("%s: %s", who, p)
		}
		t.Logf("%s: %d sets, %d gets (%d hits), %d bumps", who, r.Sets, r.Gets, r.Hits, r.Bumps)
		if r.Sets == 0 || r.Hits == 0 || r.Bumps == 0 {
			t.Errorf("%s did too little: %+v", who, r)
		}
	}
	last := storetest.Versions(t, s, "shared", "other")
	for i, tag := range []string{"shared", "other"} {
		want := first[i] + uint64(mine.Increments[tag]+child.Increments[tag])
		if last[i] != want {
			t.Errorf("%s: version %d → %d, want %d (%d + %d increments): a bump was lost",
				tag, first[i], last[i], want, mine.Increments[tag], child.Increments[tag])
		}
	}
	if st := s.Stats(); st.Corrupt != 0 {
		t.Errorf("stats %+v: corrupt files under concurrency", st)
	}
}

// workload runs 4 goroutines on a store in dir for d.
func workload(dir string, d time.Duration) report {
	r := report{Increments: map[string]int{}}
	s, err := filestore.New(dir, workloadConfig)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return r
	}
	defer s.Close()
	var mu sync.Mutex
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(r.Problems) < 20 {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(g)))
			tags := []string{"shared", "other"}
			v := make([]uint64, len(tags))
			lastSeen := make([]uint64, len(tags))
			seen := func(when string) {
				for i, x := range v {
					if x == 0 {
						continue // held
					}
					if x < lastSeen[i] {
						problem("%s: %s went back from %d to %d", when, tags[i], lastSeen[i], x)
					}
					lastSeen[i] = x
				}
			}
			var sets, gets, hits, bumps int
			incs := map[string]int{}
			// At least minOps each, however loaded the machine is.
			for seq := 0; seq < minOps || time.Now().Before(stop); seq++ {
				key := fmt.Sprintf("key-%d", rng.IntN(50))
				switch op := rng.IntN(20); {
				case op < 9:
					size := rng.IntN(20_000)
					if rng.IntN(4) == 0 {
						size = rng.IntN(64)
					}
					if err := s.Set(ctx, key, makeValue(key, size, seq), time.Minute); err != nil {
						problem("Set: %v", err)
					}
					sets++
				case op < 18:
					b, err := s.Get(ctx, key, tags, v)
					if err != nil {
						problem("Get: %v", err)
						continue
					}
					gets++
					seen("Get")
					if b != nil {
						hits++
						if err := checkValue(key, b); err != nil {
							problem("torn or foreign value for %s: %v", key, err)
						}
					}
				case op == 18:
					if _, err := s.Bump(ctx, tags[:1], 0); err != nil {
						problem("Bump: %v", err)
						continue
					}
					bumps++
					incs[tags[0]]++
					if err := s.Versions(ctx, tags, v); err != nil {
						problem("Versions: %v", err)
						continue
					}
					if v[0] != 0 && v[0] <= lastSeen[0] {
						problem("after a bump %s reads %d, had seen %d", tags[0], v[0], lastSeen[0])
					}
					seen("Versions after Bump")
				default:
					lease, err := s.Bump(ctx, tags, time.Minute) // released at once; long enough for a loaded machine
					if err != nil {
						problem("Bump with hold: %v", err)
						continue
					}
					if err := s.Versions(ctx, tags, v); err != nil || v[0] != 0 || v[1] != 0 {
						problem("held tags read %v (%v)", v, err)
					}
					if err := s.Release(ctx, tags, lease); err != nil {
						problem("Release: %v", err)
						continue
					}
					bumps++
					for _, tag := range tags {
						incs[tag] += 2
					}
				}
			}
			mu.Lock()
			r.Sets += sets
			r.Gets += gets
			r.Hits += hits
			r.Bumps += bumps
			for tag, n := range incs {
				r.Increments[tag] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return r
}

// makeValue returns a self-checking value: key, writer, sequence, a filler
// derived from them, and a CRC of it all.
func makeValue(key string, size, seq int) []byte {
	head := fmt.Sprintf("%s|%d|%d|", key, os.Getpid(), seq)
	b := make([]byte, 0, len(head)+size+4)
	b = append(b, head...)
	for i := range size {
		b = append(b, byte(i*31+seq))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func checkValue(key string, b []byte) error {
	if len(b) < 4 {
		return fmt.Errorf("%d bytes", len(b))
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return fmt.Errorf("checksum mismatch in %d bytes", len(b))
	}
	if !strings.HasPrefix(string(body), key+"|") {
		return fmt.Errorf("value of another key: %.40q", body)
	}
	return nil
}
