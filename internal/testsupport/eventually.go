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
	deadline := time.Now().Add(Within)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, Within)
		}
		time.Sleep(pause)
	}
}
