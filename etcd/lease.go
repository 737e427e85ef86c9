package etcd

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease buckets: a key that must live ttl gets the lease of the bucket its
// deadline (now + ttl) falls in. A bucket is width wide, width being ttl/16
// rounded up to a power of two seconds, between 1 s and 1 h; buckets end on
// multiples of their width, so buckets of different widths share ends and
// leases. A key lives less than width (1/16 to 1/8 of its ttl, between 1 s
// and 1 h) plus 2 s longer than asked, and never shorter: the lease's TTL
// runs to the bucket's end plus a second, rounded up to whole seconds.
const (
	minBucket    = time.Second
	maxBucket    = time.Hour
	bucketShare  = 16
	leaseMargin  = time.Second
	sweepEvery   = 64                   // grants between two sweeps of expired leases
	maxLeaseTTLs = int64(9_000_000_000) // etcd's maximum lease TTL, seconds
	// maxLeaseLife caps the lifetime asked of a lease: an entry "forever"
	// (a duration near math.MaxInt64) lives a century, and its deadline
	// stays within the nanoseconds an int64 counts from 1970.
	maxLeaseLife = 100 * 365 * 24 * time.Hour
)

// bucketWidth returns the width of the buckets of keys with lifetime ttl.
func bucketWidth(ttl time.Duration) time.Duration {
	w := minBucket
	for w < ttl/bucketShare && w < maxBucket {
		w *= 2
	}
	return min(w, maxBucket)
}

// leases hands out the shared leases of one L2, one per bucket end.
type leases struct {
	mu     sync.Mutex
	byEnd  map[int64]*leaseSlot // bucket end, unix seconds
	grants int
}

// leaseSlot is one bucket's lease. ready is closed once the grant is over;
// id, err, expires and abandoned are written once before that and only read
// after it.
type leaseSlot struct {
	ready   chan struct{}
	id      clientv3.LeaseID
	err     error
	expires time.Time
	// abandoned is set when the grant ended with its caller's context: the
	// waiters grant again, each on its own context.
	abandoned bool
}

// get returns the lease for a key that must live ttl from now, granting it
// if the bucket has none. Concurrent writers of one bucket share one grant,
// made on the context of the writer that started it; each writer waits on
// its own ctx. A grant that ends because its writer's context ended fails
// only that writer: the others grant again (one at a time). get returns
// ctx's error when ctx ends first, and the grant's error otherwise.
func (l *leases) get(ctx context.Context, c *clientv3.Client, ttl time.Duration) (clientv3.LeaseID, error) {
	ttl = min(ttl, maxLeaseLife)
	w := bucketWidth(ttl)
	for {
		now := time.Now()
		deadline := now.Add(ttl)
		end := (deadline.UnixNano() + int64(w) - 1) / int64(w) * int64(w) / int64(time.Second)
		s, grant := l.slot(end, deadline, now)
		if grant {
			secs := min(maxLeaseTTLs, (end*int64(time.Second)-now.UnixNano()+int64(leaseMargin)+int64(time.Second)-1)/int64(time.Second))
			return l.grant(ctx, c, end, s, now, secs)
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		switch {
		case s.abandoned:
			continue // its writer went away: grant again
		case s.err != nil:
			return 0, s.err
		}
		return s.id, nil
	}
}

// slot returns the slot of the bucket ending at end for a key that must
// live until deadline. grant is true when the slot is new and the caller
// must grant its lease (see grant).
func (l *leases) slot(end int64, deadline, now time.Time) (s *leaseSlot, grant bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byEnd == nil {
		l.byEnd = make(map[int64]*leaseSlot)
	}
	if cur := l.byEnd[end]; cur != nil {
		select {
		case <-cur.ready:
			if cur.err == nil && !cur.abandoned && cur.expires.After(deadline) {
				return cur, false
			}
			// failed, abandoned or expired: grant again
		default:
			return cur, false // being granted: wait for it
		}
	}
	s = &leaseSlot{ready: make(chan struct{})}
	l.byEnd[end] = s
	l.grants++
	if l.grants%sweepEvery == 0 {
		l.sweepLocked(now)
	}
	return s, true
}

// grant grants the lease of slot s (bucket end) for secs seconds on ctx and
// hands the result to every waiter, in this one place: a failed grant is
// forgotten, so that the next write grants again; one that ended with
// ctx is marked abandoned, so that the waiters grant again rather than
// fail with another caller's cancellation.
func (l *leases) grant(ctx context.Context, c *clientv3.Client, end int64, s *leaseSlot, now time.Time, secs int64) (clientv3.LeaseID, error) {
	resp, err := c.Grant(ctx, secs)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		s.abandoned = true
		err = ctx.Err()
	case err != nil:
		s.err = err
	default:
		s.id = resp.ID
		s.expires = now.Add(time.Duration(resp.TTL) * time.Second)
	}
	if err != nil && l.byEnd[end] == s {
		delete(l.byEnd, end)
	}
	close(s.ready)
	return s.id, err
}

// forget drops the slot holding id.
func (l *leases) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for end, s := range l.byEnd {
		select {
		case <-s.ready:
			if s.id == id {
				delete(l.byEnd, end)
			}
		default:
		}
	}
}

// sweepLocked removes the slots whose lease has expired.
func (l *leases) sweepLocked(now time.Time) {
	for end, s := range l.byEnd {
		select {
		case <-s.ready:
			if s.err != nil || !s.expires.After(now) {
				delete(l.byEnd, end)
			}
		default:
		}
	}
}

// count returns the number of leases currently held (for tests and stats).
func (l *leases) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byEnd)
}
