package benchsuite

import (
	"slices"
	"testing"
)

// TestIdealReadOnly: without writes, the ideal cache sends each distinct
// query once.
func TestIdealReadOnly(t *testing.T) {
	t.Parallel()
	const n = 5000
	_, posts := workloadData()
	keys := map[idealKey]bool{}
	for i := range n {
		req := requestAt(7, 0, i)
		switch req.op {
		case opPost:
			keys[idealKey{opPost, int32(req.id)}] = true
			keys[idealKey{opPreloadUser, int32(posts[req.id-1].UserID)}] = true
		case opTop:
			keys[idealKey{opTop, 0}] = true
		default:
			keys[idealKey{req.op, int32(req.id)}] = true
		}
	}
	res := simulateIdeal(7, 0, n)
	if got := total(res.Queries[:]); got != int64(len(keys)) || res.Reads != n {
		t.Errorf("%d queries for %d reads, want %d and %d", got, res.Reads, len(keys), n)
	}
}

// TestIdealTop: the top 10 the simulation keeps up to date is the top 10
// of the visits, recomputed from scratch, after every visit.
func TestIdealTop(t *testing.T) {
	t.Parallel()
	users, _ := workloadData()
	s := &ideal{visits: make([]int64, len(users)+1)}
	for _, u := range users {
		s.visits[u.ID] = u.Visits
	}
	order := func() []int { // the first 10 of every user sorted, by insertion
		var top []int
		for u := 1; u <= len(users); u++ {
			i := len(top)
			for i > 0 && s.above(u, top[i-1]) {
				i--
			}
			if i < 10 {
				top = slices.Insert(top, i, u)[:min(len(top)+1, 10)]
			}
		}
		return top
	}
	s.top = order()
	// Visits to the 11th and 12th users (until they pass the 9th and 10th,
	// and beyond), and to the first.
	for i := range 18_000 {
		u := []int{11, 12, 1}[i%3]
		s.visits[u]++
		in := s.raise(u)
		want := order()
		if !slices.Equal(s.top, want) || in != slices.Contains(want, u) {
			t.Fatalf("after visit %d (user %d): top %v (in: %v), want %v", i, u, s.top, in, want)
		}
	}
	if !slices.Contains(s.top, 11) || !slices.Contains(s.top, 12) {
		t.Errorf("users 11 and 12 never entered the top 10: %v", s.top)
	}
}
