package breaker

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gormcache/gormcache/store"
)

// TestBreaker walks a breaker through its states on synctest's clock.
func TestBreaker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := New(3, time.Second)
		allow := func(step string, wantProbe, wantOK bool) bool {
			t.Helper()
			probe, ok := b.Allow()
			if probe != wantProbe || ok != wantOK {
				t.Fatalf("%s: Allow() = probe %v, ok %v; want %v, %v", step, probe, ok, wantProbe, wantOK)
			}
			return probe
		}

		// Closed: failures below the threshold, a success resets the count.
		b.Failure(allow("closed", false, true))
		b.Failure(allow("closed", false, true))
		b.Success(allow("closed", false, true))
		for range 3 {
			b.Failure(allow("closed", false, true))
		}
		if !b.Open() || b.Opens() != 1 {
			t.Fatalf("after 3 failures: open %v, opens %d; want open once", b.Open(), b.Opens())
		}

		// Open: refused until the cool-down has passed.
		allow("open", false, false)
		time.Sleep(time.Second - time.Nanosecond)
		allow("open", false, false)
		time.Sleep(time.Nanosecond)

		// Half-open: one probe at a time; an abandoned probe lets the next
		// call probe, a failed one opens for another cool-down.
		b.Abandon(allow("probe", true, true))
		p := allow("probe", true, true)
		allow("while probing", false, false)
		b.Failure(p)
		if !b.Open() || b.Opens() != 1 {
			t.Fatalf("after a failed probe: open %v, opens %d; want still open, counted once", b.Open(), b.Opens())
		}
		allow("reopened", false, false)
		time.Sleep(time.Second)

		// A successful probe closes it.
		b.Success(allow("probe", true, true))
		if b.Open() {
			t.Fatal("open after a successful probe")
		}
		b.Failure(allow("closed again", false, true))
		if b.Open() {
			t.Fatal("one failure after closing opened it: the count was not reset")
		}
	})
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	if b := New(0, 0); b.Failures() != DefaultFailures || b.Cooldown() != DefaultCooldown {
		t.Errorf("New(0, 0) = %d failures, %v; want the defaults", b.Failures(), b.Cooldown())
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	if f, c, err := WithDefaults(0, 0); f != DefaultFailures || c != DefaultCooldown || err != nil {
		t.Errorf("WithDefaults(0, 0) = %d, %v, %v; want the defaults", f, c, err)
	}
	if f, c, err := WithDefaults(3, time.Minute); f != 3 || c != time.Minute || err != nil {
		t.Errorf("WithDefaults(3, 1m) = %d, %v, %v", f, c, err)
	}
	for _, bad := range []struct {
		failures int
		cooldown time.Duration
	}{{-1, 0}, {0, -time.Second}} {
		if _, _, err := WithDefaults(bad.failures, bad.cooldown); !errors.Is(err, store.ErrInvalidConfig) {
			t.Errorf("WithDefaults(%d, %v): err = %v, want ErrInvalidConfig", bad.failures, bad.cooldown, err)
		}
	}
}
