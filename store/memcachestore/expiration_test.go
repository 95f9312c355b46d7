package memcachestore

import (
	"math"
	"testing"
	"time"
)

func TestExpiration(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	const month = 30 * 24 * time.Hour
	for _, tt := range []struct {
		d     time.Duration
		extra int64
		want  int32
	}{
		{0, 0, 0},
		{-time.Second, 1, 0},
		{time.Nanosecond, 0, 1},
		{50 * time.Millisecond, 1, 2},
		{time.Second, 0, 1},
		{1500 * time.Millisecond, 0, 2},
		{month, 0, int32(month / time.Second)},
		{month + time.Second, 0, 1_700_000_000 + int32(month/time.Second) + 1},
		{month, 1, 1_700_000_000 + int32(month/time.Second) + 1},
		{100 * 365 * 24 * time.Hour, 0, math.MaxInt32},
		{time.Duration(math.MaxInt64), 0, math.MaxInt32},
	} {
		if got := expiration(tt.d, clock, tt.extra); got != tt.want {
			t.Errorf("expiration(%v, +%d) = %d, want %d", tt.d, tt.extra, got, tt.want)
		}
	}
}

func TestKeyShape(t *testing.T) {
	t.Parallel()
	s := &Store{prefix: DefaultPrefix}
	for _, name := range []string{"", "users", "#users", "a b", string(make([]byte, 300)), "é"} {
		for _, k := range []string{s.key(kindEntry, name), s.recordKey(name), s.leaseKey(name, 1)} {
			if len(k) > maxKey || !legal(k) {
				t.Errorf("key %q for %q: illegal", k, name)
			}
		}
	}
	if s.recordKey("users") != "gc:v:users" || s.recordKey("#users") == "gc:v:#users" {
		t.Errorf("keys: %q %q", s.recordKey("users"), s.recordKey("#users"))
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	r := record{version: 1 << 62, leases: []uint64{1, math.MaxUint64}}
	got, ok := parseRecord(r.bytes())
	if !ok || got.version != r.version || len(got.leases) != 2 || got.leases[0] != 1 || got.leases[1] != math.MaxUint64 {
		t.Fatalf("round trip of %q: %+v %v", r.bytes(), got, ok)
	}
	for _, bad := range []string{"", "0", "x", "1 ", "1 2", "1 0000000000000000", "-1", "1  0000000000000001", "18446744073709551616"} {
		if _, ok := parseRecord([]byte(bad)); ok {
			t.Errorf("parseRecord(%q) accepted", bad)
		}
	}
}
