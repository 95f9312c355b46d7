package benchsuite

import (
	"slices"
)

// The ideal cache of the workload benchmark, computed by simulation rather
// than measured: it sends a query to the database only the first time that
// query (SQL and arguments) is read, and the first time after a write that
// changed its result; every other read is answered without the database.
//
// The simulation replays requests 0…n-1 of the sequence in index order,
// keeps the data the queries depend on (each user's visits, each post's
// author, each user's posts in id order, the 10 most visited users), and
// tracks, per query key, whether its result is fresh: a read of a key that
// is not fresh costs one query and makes it fresh; a write makes stale
// exactly the keys whose result it changes:
//
//   - visits + 1 of user u: the user-by-id read of u, the Preload query of u
//     (SELECT * FROM users WHERE id = u, a query of its own), and the top-10
//     read if u is among the 10 most visited after the increment (its row,
//     with its visits, is in that result; visits only grow, so it was not in
//     it before only if it has just entered it);
//   - a new post by u: u's latest-posts and post-count reads (the new post
//     has the highest id, so it always enters u's 10 latest), and a read of
//     the new post's id (which could now return it);
//   - a new title of post p: the read of p (with its Preload), and the
//     latest-posts read of p's author if p is among their 10 latest.
//
// A post read is two queries, as GORM sends them (the post, then its user
// by the post's user_id); the ideal sends each only when it is not fresh.
// The real runs are concurrent, so their reads and writes interleave a
// little differently from the index order; over thousands of requests the
// difference is noise.
type ideal struct {
	fresh     map[idealKey]bool
	visits    []int64 // by user id
	author    []int32 // by post id
	userPosts [][]int32
	top       []int // the 10 most visited user ids, most first (ties: lower id first)
	res       idealResult
}

// idealKey is a query and its argument.
type idealKey struct {
	op op
	id int32
}

// idealResult is what the ideal cache sent for n requests.
type idealResult struct {
	Requests, Reads int
	Queries         [numOps]int64 // by request kind
	ReadsBy         [numOps]int64
	Lookups         int64 // queries answered (fresh) or sent
}

// QueriesPerRead is the database queries per read.
func (r idealResult) QueriesPerRead() float64 { return perRead(r.Queries[:], r.Reads) }

func simulateIdeal(seed uint64, writePct float64, n int) idealResult {
	users, posts := workloadData()
	s := &ideal{
		fresh:     map[idealKey]bool{},
		visits:    make([]int64, len(users)+1),
		author:    make([]int32, len(posts)+1, len(posts)+n+1),
		userPosts: make([][]int32, len(users)+1),
	}
	for _, u := range users {
		s.visits[u.ID] = u.Visits
	}
	for _, p := range posts { // in id order
		s.author[p.ID] = int32(p.UserID)
		s.userPosts[p.UserID] = append(s.userPosts[p.UserID], int32(p.ID))
	}
	ids := make([]int, len(users))
	for i := range ids {
		ids[i] = i + 1
	}
	slices.SortFunc(ids, func(a, b int) int {
		if s.above(a, b) {
			return -1
		}
		return 1
	})
	s.top = ids[:10]
	for i := range n {
		s.apply(requestAt(seed, writePct, i))
	}
	s.res.Requests = n
	return s.res
}

// above reports whether user a comes before user b in the top-10 order.
func (s *ideal) above(a, b int) bool {
	return s.visits[a] > s.visits[b] || s.visits[a] == s.visits[b] && a < b
}

func (s *ideal) read(req op, k idealKey) {
	s.res.Lookups++
	if !s.fresh[k] {
		s.res.Queries[req]++
		s.fresh[k] = true
	}
}

func (s *ideal) stale(k idealKey) { delete(s.fresh, k) }

func (s *ideal) apply(req request) {
	id := int32(req.id)
	if req.op.isRead() {
		s.res.Reads++
		s.res.ReadsBy[req.op]++
	}
	switch req.op {
	case opUser, opLatest, opCount:
		s.read(req.op, idealKey{req.op, id})
	case opTop:
		s.read(req.op, idealKey{opTop, 0})
	case opPost:
		s.read(req.op, idealKey{opPost, id})
		s.read(req.op, idealKey{opPreloadUser, s.author[id]})
	case opVisit:
		s.visits[id]++
		s.stale(idealKey{opUser, id})
		s.stale(idealKey{opPreloadUser, id})
		if s.raise(req.id) {
			s.stale(idealKey{opTop, 0})
		}
	case opNewPost:
		p := int32(len(s.author))
		s.author = append(s.author, id)
		s.userPosts[id] = append(s.userPosts[id], p)
		s.stale(idealKey{opLatest, id})
		s.stale(idealKey{opCount, id})
		s.stale(idealKey{opPost, p})
	case opTitle:
		s.stale(idealKey{opPost, id})
		u := s.author[id]
		ps := s.userPosts[u]
		if i, _ := slices.BinarySearch(ps, id); len(ps)-i <= 10 {
			s.stale(idealKey{opLatest, u})
		}
	}
}

// raise moves user u, whose visits have just grown, up the top 10, and
// reports whether it is in it. Only u's own increment can bring it in:
// everyone else's visits only grow too.
func (s *ideal) raise(u int) bool {
	i := slices.Index(s.top, u)
	if i < 0 {
		last := len(s.top) - 1
		if !s.above(u, s.top[last]) {
			return false
		}
		s.top[last], i = u, last
	}
	for ; i > 0 && s.above(s.top[i], s.top[i-1]); i-- {
		s.top[i], s.top[i-1] = s.top[i-1], s.top[i]
	}
	return true
}
