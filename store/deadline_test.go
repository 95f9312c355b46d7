package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/gormcache/gormcache/store"
)

func TestCallerGaveUp(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	expired := func(parent context.Context, own bool) context.Context {
		var ctx context.Context
		var cancel context.CancelFunc
		if own {
			ctx, cancel = store.WithTimeout(parent, time.Millisecond)
		} else {
			ctx, cancel = context.WithTimeout(parent, time.Millisecond)
		}
		t.Cleanup(cancel)
		<-ctx.Done()
		return ctx
	}
	canceled, cancel := context.WithCancel(bg)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"live", bg, false},
		{"cancelled", canceled, true},
		{"application's deadline", expired(bg, false), true},
		{"cache's deadline", expired(bg, true), false},
		{"cache's deadline under a live application deadline", func() context.Context {
			app, cancel := context.WithTimeout(bg, time.Hour)
			t.Cleanup(cancel)
			return expired(app, true)
		}(), false},
		{"cache's deadline under a cancelled context", expired(canceled, true), true},
	} {
		if got := store.CallerGaveUp(tc.ctx); got != tc.want {
			t.Errorf("%s: CallerGaveUp = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A passed deadline whose timer has not fired yet is already decided.
	ctx, cancel := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	if !store.CallerGaveUp(ctx) {
		t.Error("past application deadline: CallerGaveUp = false")
	}
}
