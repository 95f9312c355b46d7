package core

import "slices"

// A Stamp is what a cached value is judged by when it is read: the
// versions of its tags as they were read before the work that made it
// (so that a write committing during the work leaves it stale at once),
// when it was made, and when it expires.
type Stamp struct {
	// Versions are the versions of the value's tags, in the order of its
	// tags, read before the value was computed.
	Versions []uint64
	// Created is when the value was stored, in unix nanoseconds (0 when
	// the cache does not keep it).
	Created int64
	// Deadline is when the value expires, in unix nanoseconds (0: never).
	Deadline int64
}

// Expired reports whether the stamp's deadline has passed at now (unix
// nanoseconds).
func (s *Stamp) Expired(now int64) bool { return s.Deadline != 0 && now >= s.Deadline }

// Fresh reports whether a value with this stamp may be served for current,
// the versions of the same tags read now (see [Fresh]).
func (s *Stamp) Fresh(current []uint64) bool { return Fresh(s.Versions, current) }

// Fresh reports whether a value stamped with stamp may be served when the
// versions of its tags read now are current: every current version is
// known and equal to the stamp's. A current version of 0 means unknown or
// held (a write in flight, a tag the store cannot be trusted for, see
// [Invalidator.Judge]): never fresh, whatever the stamp holds.
func Fresh(stamp, current []uint64) bool { return FreshExcept(stamp, current, -1, 0) }

// FreshExcept is [Fresh] for a value that does not depend on the tag at
// index skip (a row-level read's table tag): there its stamp holds ignored
// (the tag's [LooseVersion]) instead of a version, and matches any current
// version, 0 included. skip < 0: none.
func FreshExcept(stamp, current []uint64, skip int, ignored uint64) bool {
	if len(stamp) != len(current) {
		return false
	}
	for i := range stamp {
		if !FreshAt(stamp, current, i, skip, ignored) {
			return false
		}
	}
	return true
}

// FreshAt is the rule of [FreshExcept] for the tag at index i (the tag
// that made a value stale is one at which it is false). stamp and current
// must be longer than i.
func FreshAt(stamp, current []uint64, i, skip int, ignored uint64) bool {
	return current[i] != 0 && stamp[i] == current[i] || i == skip && stamp[i] == ignored
}

// Known reports whether every version is known: none is 0 (unknown or
// held), so that a value stamped with them may be stored.
func Known(versions []uint64) bool { return !slices.Contains(versions, 0) }
