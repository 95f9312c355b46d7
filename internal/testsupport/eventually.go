package testsupport

import (
	"testing"
	"time"
)

// Within is how long [Eventually] waits.
const Within = 10 * time.Second

// Eventually fails t unless cond holds within [Within]; what names the
// condition in the failure. It polls cond every few milliseconds.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, what, Within, cond)
}

// EventuallyWithin is [Eventually] with a deadline of d: for what a busy
// machine may take long to bring about (a server restarted, a stream
// caught up).
func EventuallyWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(pause)
	}
}
