package memcachestore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gormcache/gormcache/store"
)

// maxAttempts bounds the cas retries of one tag update.
const maxAttempts = 100

// record is a decoded tag record: "<version>[ <lease hex>]...".
type record struct {
	version uint64
	leases  []uint64
}

func parseRecord(b []byte) (record, bool) {
	fields := strings.Split(string(b), " ")
	v, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || v == 0 {
		return record{}, false
	}
	r := record{version: v}
	if len(fields) > 1 {
		r.leases = make([]uint64, 0, len(fields)-1)
	}
	for _, f := range fields[1:] {
		l, err := strconv.ParseUint(f, 16, 64)
		if err != nil || l == 0 || len(f) != 16 {
			return record{}, false
		}
		r.leases = append(r.leases, l)
	}
	return r, true
}

func (r record) bytes() []byte {
	b := make([]byte, 0, 20+17*len(r.leases))
	b = strconv.AppendUint(b, r.version, 10)
	for _, l := range r.leases {
		b = append(b, ' ')
		b = append(b, leaseHex(l)...)
	}
	return b
}

// randomVersion returns a fresh random version in [1, 2^63) other than
// old: never 0 (held or unknown), and drawn anew for every bump, so that a
// version handed out once is not handed out again (except with probability
// about 2^-63 for a pair), whatever memcached forgot or which server the tag
// lived on. Versions are compared for equality only.
func randomVersion(old uint64) uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint64(b[:]) >> 1; v != 0 && v != old {
			return v
		}
	}
}

// newLease returns a random non-zero lease id.
func newLease() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if l := binary.LittleEndian.Uint64(b[:]); l != 0 {
			return l
		}
	}
}

// read fills versions for tags, and returns the entry under entryKey (unless
// it is ""), with one GetMulti when no record is missing or lists a lease.
func (s *Store) read(entryKey string, tags []string, versions []uint64) ([]byte, error) {
	keys := make([]string, 0, len(tags)+1)
	if entryKey != "" {
		keys = append(keys, entryKey)
	}
	for _, t := range tags {
		keys = append(keys, s.recordKey(t))
	}
	items, err := s.mc.GetMulti(keys)
	if err = s.check("get", err); err != nil {
		return nil, err
	}
	var value []byte
	if it := items[entryKey]; entryKey != "" && it != nil {
		value = it.Value
		if value == nil {
			value = []byte{}
		}
	}
	recs := make([]record, len(tags))
	var missing []int
	for i, t := range tags {
		it := items[s.recordKey(t)]
		if it == nil {
			missing = append(missing, i)
			continue
		}
		r, ok := parseRecord(it.Value)
		if !ok {
			missing = append(missing, i) // repaired below, by a bump
			continue
		}
		recs[i] = r
	}
	if len(missing) > 0 {
		err := parallel(len(missing), func(j int) error {
			i := missing[j]
			r, err := s.createTag(tags[i])
			recs[i] = r
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if err := s.applyHolds(tags, recs); err != nil {
		return nil, err
	}
	for i := range recs {
		versions[i] = recs[i].version
	}
	return value, nil
}

// applyHolds sets the version of every record that lists a live lease to 0,
// with one GetMulti of the listed lease keys.
func (s *Store) applyHolds(tags []string, recs []record) error {
	var keys []string
	for i, r := range recs {
		for _, l := range r.leases {
			keys = append(keys, s.leaseKey(tags[i], l))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	live, err := s.mc.GetMulti(keys)
	if err = s.check("get leases", err); err != nil {
		return err
	}
	for i, r := range recs {
		for _, l := range r.leases {
			if live[s.leaseKey(tags[i], l)] != nil {
				recs[i].version = 0
				break
			}
		}
	}
	return nil
}

// createTag gives a tag without a (valid) record its first version: add
// with a random version, or, when another client won the add, its record.
func (s *Store) createTag(tag string) (record, error) {
	key := s.recordKey(tag)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		r := record{version: randomVersion(0)}
		err := s.mc.Add(&memcache.Item{Key: key, Value: r.bytes()})
		if err = s.check("add", err); err == nil {
			s.created.Add(1)
			return r, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return record{}, err
		}
		s.conflicts.Add(1)
		it, err := s.mc.Get(key)
		if err = s.check("get", err); errors.Is(err, memcache.ErrCacheMiss) {
			continue // gone again: add again
		} else if err != nil {
			return record{}, err
		}
		if r, ok := parseRecord(it.Value); ok {
			return r, nil
		}
		// Garbage under our key: replace it with a fresh record.
		v, leases, err := s.bumpTag(tag, 0, 0, nil)
		return record{version: v, leases: leases}, err
	}
	return record{}, fmt.Errorf("memcachestore: tag %q: no stable record after %d attempts: %w", tag, maxAttempts, store.ErrUnavailable)
}

// bumpTag gives tag a new version with cas (add when the record is
// missing): a fresh random version, the leases whose keys are gone pruned,
// drop removed and add (when non-zero) added. It returns the new version and
// leases. The first attempt takes the record from records when it is not nil
// (a record absent from it is missing). A bump that loses maxAttempts races
// fails with store.ErrUnavailable: the caller must treat the tag as not
// bumped.
func (s *Store) bumpTag(tag string, add, drop uint64, records map[string]*memcache.Item) (uint64, []uint64, error) {
	key := s.recordKey(tag)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 3 {
			backoff(attempt)
		}
		var it *memcache.Item
		var err error
		if attempt == 0 && records != nil {
			if it = records[key]; it == nil {
				err = memcache.ErrCacheMiss
			}
		} else {
			it, err = s.mc.Get(key)
			err = s.check("get", err)
		}
		if errors.Is(err, memcache.ErrCacheMiss) {
			r := record{version: randomVersion(0)}
			if add != 0 {
				r.leases = []uint64{add}
			}
			err := s.check("add", s.mc.Add(&memcache.Item{Key: key, Value: r.bytes()}))
			if err == nil {
				s.created.Add(1)
				return r.version, r.leases, nil
			}
			if !errors.Is(err, memcache.ErrNotStored) {
				return 0, nil, err
			}
			s.conflicts.Add(1)
			continue
		} else if err != nil {
			return 0, nil, err
		}
		r, ok := parseRecord(it.Value)
		if !ok {
			r = record{} // damaged: start again, without leases
		}
		r.version = randomVersion(r.version)
		if r.leases, err = s.liveLeases(tag, r.leases, drop); err != nil {
			return 0, nil, err
		}
		if add != 0 {
			r.leases = append(r.leases, add)
		}
		it.Value = r.bytes()
		it.Expiration = 0
		err = s.check("cas", s.mc.CompareAndSwap(it))
		switch {
		case err == nil:
			return r.version, r.leases, nil
		case errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrNotStored),
			errors.Is(err, memcache.ErrCacheMiss):
			s.conflicts.Add(1)
			continue
		default:
			return 0, nil, err
		}
	}
	// Not a server failure (it answered every call), so the breaker is left
	// alone; but the tag is not bumped, and the caller must know it.
	return 0, nil, fmt.Errorf("memcachestore: tag %q: bump lost %d cas races: %w", tag, maxAttempts, store.ErrUnavailable)
}

// records reads the records of tags in one round trip.
func (s *Store) records(tags []string) (map[string]*memcache.Item, error) {
	if len(tags) == 1 {
		key := s.recordKey(tags[0])
		it, err := s.mc.Get(key)
		if err = s.check("get", err); errors.Is(err, memcache.ErrCacheMiss) {
			return map[string]*memcache.Item{}, nil
		} else if err != nil {
			return nil, err
		}
		return map[string]*memcache.Item{key: it}, nil
	}
	keys := make([]string, len(tags))
	for i, t := range tags {
		keys[i] = s.recordKey(t)
	}
	items, err := s.mc.GetMulti(keys)
	if err = s.check("get", err); err != nil {
		return nil, err
	}
	return items, nil
}

// liveLeases returns the leases other than drop whose keys still exist.
func (s *Store) liveLeases(tag string, leases []uint64, drop uint64) ([]uint64, error) {
	keys := make([]string, 0, len(leases))
	for _, l := range leases {
		if l != drop {
			keys = append(keys, s.leaseKey(tag, l))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	live, err := s.mc.GetMulti(keys)
	if err = s.check("get leases", err); err != nil {
		return nil, err
	}
	kept := leases[:0]
	for _, l := range leases {
		if l != drop && live[s.leaseKey(tag, l)] != nil {
			kept = append(kept, l)
		}
	}
	return kept, nil
}

// backoff sleeps a little, more after more conflicts, with jitter, so that
// bumpers of one hot tag do not keep colliding.
func backoff(attempt int) {
	var b [2]byte
	_, _ = rand.Read(b[:])
	max := time.Duration(min(attempt, 20)) * 100 * time.Microsecond
	time.Sleep(time.Duration(binary.LittleEndian.Uint16(b[:]))*max/65536 + 10*time.Microsecond)
}

// distinct returns tags without repeats (in place when there are none).
func distinct(tags []string) []string {
	for i := 1; i < len(tags); i++ {
		for j := 0; j < i; j++ {
			if tags[i] == tags[j] {
				return distinctCopy(tags)
			}
		}
		if i > 64 {
			return distinctCopy(tags)
		}
	}
	return tags
}

func distinctCopy(tags []string) []string {
	seen := make(map[string]bool, len(tags))
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
