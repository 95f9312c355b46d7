package core

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyBuckets is the number of buckets of a Latency: bucket i counts
// calls that took less than 2^i µs (bucket 0: under 1 µs), the last one
// every slower call (over about 1 s).
const LatencyBuckets = 22

// Latency is a fixed-bucket histogram of store call durations, recorded by
// Calls while it is on. Observe is a few atomic operations, no lock and no
// allocation.
type Latency struct {
	on      atomic.Bool
	buckets [LatencyBuckets]atomic.Uint64
}

// SetOn starts or stops the recording.
func (l *Latency) SetOn(on bool) { l.on.Store(on) }

// On reports whether calls are recorded.
func (l *Latency) On() bool { return l.on.Load() }

// Observe counts one call that took d.
func (l *Latency) Observe(d time.Duration) {
	i := bits.Len64(uint64(d.Microseconds()))
	if d < 0 {
		i = 0
	}
	if i >= LatencyBuckets {
		i = LatencyBuckets - 1
	}
	l.buckets[i].Add(1)
}

// Counts returns the count of each bucket.
func (l *Latency) Counts() [LatencyBuckets]uint64 {
	var c [LatencyBuckets]uint64
	for i := range l.buckets {
		c[i] = l.buckets[i].Load()
	}
	return c
}

// LatencyBound returns the upper bound of bucket i (the last bucket has
// none: it returns the largest time.Duration).
func LatencyBound(i int) time.Duration {
	if i >= LatencyBuckets-1 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(1<<uint(i)) * time.Microsecond
}
