package viewcache

import (
	"context"
	"sync"
	"time"
)

// A scope collects, for one page request being rendered, what the
// plugin's Recorder cannot see: the dependencies of what was served from
// this package's own entries inside it (a fragment, or an inner Page
// nested in a Middleware), whose queries did not run. Scopes nest as
// recorders do: a dependency is added to every scope of the context.
type scope struct {
	mu       sync.Mutex
	versions map[string]uint64
	changed  bool          // a tag was seen at two versions
	noStore  Reason        // a reason the enclosing response must not be stored
	ttlCap   time.Duration // the shortest TTL of what was served inside (0: none)
}

type scopeKey struct{}

type scopes struct{ list []*scope }

// withScope returns ctx with a new scope added.
func withScope(ctx context.Context) (context.Context, *scope) {
	s := &scope{}
	var parent []*scope
	if ps, ok := ctx.Value(scopeKey{}).(*scopes); ok {
		parent = ps.list
	}
	list := append(append([]*scope(nil), parent...), s)
	return context.WithValue(ctx, scopeKey{}, &scopes{list: list}), s
}

func scopesOf(ctx context.Context) []*scope {
	if ctx == nil {
		return nil
	}
	if ps, ok := ctx.Value(scopeKey{}).(*scopes); ok {
		return ps.list
	}
	return nil
}

// depend records in every scope of ctx that something served there
// depends on tags at versions, for ttl (0: no bound).
func depend(ctx context.Context, tags []string, versions []uint64, ttl time.Duration) {
	for _, s := range scopesOf(ctx) {
		s.add(tags, versions, ttl)
	}
}

// refuse makes every scope of ctx unstorable for reason.
func refuse(ctx context.Context, reason Reason) {
	for _, s := range scopesOf(ctx) {
		s.mu.Lock()
		if s.noStore == "" {
			s.noStore = reason
		}
		s.mu.Unlock()
	}
}

func (s *scope) add(tags []string, versions []uint64, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.versions == nil {
		s.versions = make(map[string]uint64, len(tags))
	}
	for i, t := range tags {
		if v, seen := s.versions[t]; seen && v != versions[i] {
			s.changed = true
		} else if !seen {
			s.versions[t] = versions[i]
		}
	}
	if ttl > 0 && (s.ttlCap == 0 || ttl < s.ttlCap) {
		s.ttlCap = ttl
	}
}

// merge adds tags at versions to acc (tag → version), and reports whether
// a tag already there had another version.
func merge(acc map[string]uint64, tags []string, versions []uint64) (changed bool) {
	for i, t := range tags {
		if v, seen := acc[t]; seen && v != versions[i] {
			changed = true
		} else if !seen {
			acc[t] = versions[i]
		}
	}
	return changed
}
