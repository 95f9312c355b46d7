package core

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Buckets keep the values' order, and a read's cover holds one of the
// tags of every value at or past its boundary's bucket, and none of a
// value before it.
func TestRangeCover(t *testing.T) {
	edges := []int64{math.MinInt64, math.MinInt64 + 1, -1 << 40, -17, -9, -8, -7, -1, 0, 1, 7, 8, 9, 15, 16, 17, 1000, 15887, 16384, 1 << 40, math.MaxInt64 - 1, math.MaxInt64}
	r := rand.New(rand.NewPCG(1, 2))
	vals := slices.Clone(edges)
	for range 300 {
		vals = append(vals, r.Int64()>>r.IntN(64), -(r.Int64() >> r.IntN(64)))
	}
	slices.Sort(vals)
	for i := 1; i < len(vals); i++ {
		if RangeBucket(vals[i-1]) > RangeBucket(vals[i]) {
			t.Fatalf("bucket(%d) = %d > bucket(%d) = %d", vals[i-1], RangeBucket(vals[i-1]), vals[i], RangeBucket(vals[i]))
		}
	}
	if RangeBucket(math.MinInt64) != 0 || RangeBucket(math.MaxInt64) != rangeBuckets-1 {
		t.Fatalf("extremes in buckets %d and %d", RangeBucket(math.MinInt64), RangeBucket(math.MaxInt64))
	}
	for _, bound := range vals {
		b := RangeBucket(bound)
		for _, desc := range []bool{true, false} {
			cover := RangeCover(nil, "t", "c", b, desc)
			if len(cover) > 23 {
				t.Fatalf("cover of %d has %d tags", bound, len(cover))
			}
			for _, v := range vals {
				hit := false
				for _, tag := range RangeTags(nil, "t", "c", v) {
					hit = hit || slices.Contains(cover, tag)
				}
				past := desc && RangeBucket(v) >= b || !desc && RangeBucket(v) <= b
				if hit != past {
					t.Fatalf("bound %d (bucket %d, desc %v): value %d (bucket %d) covered %v", bound, b, desc, v, RangeBucket(v), hit)
				}
			}
		}
	}
	if RangeColumn("t", "c") == RangeNull("t", "c") || slices.Contains(RangeTags(nil, "t", "c", 0), RangeColumn("t", "c")) {
		t.Fatal("range tags collide")
	}
}

// A quoted column name may hold '=': the member tag of its value is found
// all the same.
func TestMemberTagOfQuotedColumn(t *testing.T) {
	if m := MemberTag(Row("t", "a=b", "i7")); m != Row("t", "a=b", "mi7") {
		t.Fatalf("member tag of a=b's 7: %q", m)
	}
	if m := MemberTag(Row("t", "a=b", "r0.5")); m != "" {
		t.Fatalf("a range tag has a member tag: %q", m)
	}
}
