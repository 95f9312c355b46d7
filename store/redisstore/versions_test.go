package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestVersionsNeverRepeat: a bump writes a fresh random version, never one
// handed out before, even after Redis went back in time (a failover to a
// lagging replica, a restart that lost its tail); and the tags of one call
// get distinct versions. With INCR, the bump after the loss handed out the
// version of the lost bump again, and validated the entries stamped with it.
func TestVersionsNeverRepeat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"Single", func(t *testing.T) redis.UniversalClient { return singleClient(t, nil) }},
		{"SingleWaitReplicas", nil}, // the WAIT path, on Sentinel's master
		{"Cluster", func(t *testing.T) redis.UniversalClient { return clusterClient(t, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s *Store
			var rdb redis.UniversalClient
			if tc.client == nil {
				rdb = sentinelClient(t)
				s = newTestStore(t, rdb, Config{Timeout: time.Second, WaitReplicas: 1})
			} else {
				rdb = tc.client(t)
				s = newTestStore(t, rdb, Config{Timeout: time.Second})
			}

			t.Run("LostTail", func(t *testing.T) {
				handed := map[uint64]string{}
				note := func(what string) uint64 {
					t.Helper()
					v := versionOf(t, s, "t")
					if v == 0 || v >= 1<<63 {
						t.Fatalf("%s: version %d is not in [1, 2^63)", what, v)
					}
					if prev, ok := handed[v]; ok {
						t.Fatalf("%s: version %d was already handed out (%s)", what, v, prev)
					}
					handed[v] = what
					return v
				}
				note("first read")
				bump(t, s, "t")
				v1 := note("first bump")
				bump(t, s, "t")
				note("second bump")
				// The second bump is lost, as a lagging replica promoted by
				// a failover, or a restart from an older snapshot, would
				// lose it: the version key is back to v1.
				if err := rdb.Set(bg, s.keys.tag("t").version, v1, 0).Err(); err != nil {
					t.Fatal(err)
				}
				bump(t, s, "t")
				note("bump after the loss") // INCR: v1+1, the lost bump's version
				for i := 0; i < 50; i++ {
					bump(t, s, "t")
					note("later bump")
				}
			})

			t.Run("DistinctPerTag", func(t *testing.T) {
				tags := []string{"a", "b", "c"}
				// Tags created by one read get one version each.
				created := make([]uint64, len(tags))
				if err := s.Versions(bg, tags, created); err != nil {
					t.Fatal(err)
				}
				distinct(t, "created by one read", created)
				// Tags bumped by one call get one fresh version each, even
				// from equal versions.
				for _, tag := range tags {
					if err := rdb.Set(bg, s.keys.tag(tag).version, "12345", 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
				bump(t, s, tags...)
				bumped := make([]uint64, len(tags))
				if err := s.Versions(bg, tags, bumped); err != nil {
					t.Fatal(err)
				}
				distinct(t, "bumped by one call", append(bumped, 12345, 12346))
				// So does a Release.
				lease, err := s.Bump(bg, tags, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Release(bg, tags, lease); err != nil {
					t.Fatal(err)
				}
				released := make([]uint64, len(tags))
				if err := s.Versions(bg, tags, released); err != nil {
					t.Fatal(err)
				}
				distinct(t, "released by one call", append(released, bumped...))
			})
		})
	}
}

// TestRestartLostTail restarts a private Redis from a snapshot taken
// between two bumps: the version reads as it was after the first, and the
// next bump must not hand out the second bump's version again.
func TestRestartLostTail(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer rdb.Close()
	s, err := New(rdb, Config{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v0 := versionOf(t, s, "users")
	bump(t, s, "users")
	v1 := versionOf(t, s, "users")
	if err := srv.admin().Save(bg).Err(); err != nil {
		t.Fatal(err)
	}
	bump(t, s, "users")
	v2 := versionOf(t, s, "users")
	srv.kill() // SIGKILL: the second bump is not in the snapshot
	srv.start()
	// The first call after the restart reports the new master (the plugin
	// would bump the global tag); the next ones serve.
	if err := s.Versions(bg, []string{"users"}, make([]uint64, 1)); !errors.Is(err, errMasterChanged) {
		t.Fatalf("first call after the restart: %v; want a changed master", err)
	}
	if v := versionOf(t, s, "users"); v != v1 {
		t.Fatalf("after the restart the version is %d; want %d, the snapshot's (the test relies on it)", v, v1)
	}
	bump(t, s, "users")
	if v3 := versionOf(t, s, "users"); v3 == 0 || v3 == v0 || v3 == v1 || v3 == v2 {
		t.Fatalf("the bump after the restart gave %d; versions handed out before: %d, %d, %d", v3, v0, v1, v2)
	}
}

func versionOf(t *testing.T, s *Store, tag string) uint64 {
	t.Helper()
	v := make([]uint64, 1)
	if err := s.Versions(bg, []string{tag}, v); err != nil {
		t.Fatal(err)
	}
	return v[0]
}

func bump(t *testing.T, s *Store, tags ...string) {
	t.Helper()
	if _, err := s.Bump(bg, tags, 0); err != nil {
		t.Fatal(err)
	}
}

func distinct(t *testing.T, what string, vs []uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	for _, v := range vs {
		if v == 0 || v >= 1<<63 || seen[v] {
			t.Fatalf("versions %s: %v; want distinct values in [1, 2^63)", what, vs)
		}
		seen[v] = true
	}
}
