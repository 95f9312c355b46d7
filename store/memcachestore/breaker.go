package memcachestore

import (
	"fmt"

	"github.com/gormcache/gormcache/store"
)

// The breaker counts consecutive failures. At the threshold it opens: calls
// fail at once until openUntil. The first call after that is let through as a
// probe (the others still fail at once, for another cool-down): its success
// closes the breaker, its failure keeps the count at the threshold and so
// opens it again.

// allow reports whether a call may go to the server.
func (s *Store) allow() error {
	until := s.openUntil.Load()
	if until == 0 {
		return nil
	}
	now := s.now().UnixNano()
	if now >= until && s.openUntil.CompareAndSwap(until, now+s.cooldown) {
		return nil // the probe
	}
	s.rejected.Add(1)
	return fmt.Errorf("memcachestore: circuit breaker open: %w", store.ErrUnavailable)
}

func (s *Store) succeeded() {
	if s.fails.Load() != 0 {
		s.fails.Store(0)
	}
	if s.openUntil.Load() != 0 {
		s.openUntil.Store(0)
	}
}

func (s *Store) failed() {
	s.errors.Add(1)
	if s.threshold < 0 {
		return
	}
	if s.fails.Add(1) >= s.threshold {
		if s.openUntil.Swap(s.now().UnixNano()+s.cooldown) == 0 {
			s.trips.Add(1)
		}
	}
}
