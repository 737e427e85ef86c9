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
// leases. A key lives at most width (about 6% of its ttl, at least 1 s)
// longer than asked, and never shorter: the lease's TTL runs to the
// bucket's end plus a second.
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

// leaseSlot is one bucket's lease; ready is closed once id or err is set.
type leaseSlot struct {
	ready   chan struct{}
	id      clientv3.LeaseID
	err     error
	expires time.Time
}

// get returns the lease for a key that must live ttl from now, granting it
// if the bucket has none. Concurrent writers of one bucket share one grant.
func (l *leases) get(ctx context.Context, c *clientv3.Client, ttl time.Duration) (clientv3.LeaseID, error) {
	now := time.Now()
	ttl = min(ttl, maxLeaseLife)
	w := bucketWidth(ttl)
	deadline := now.Add(ttl)
	end := (deadline.UnixNano() + int64(w) - 1) / int64(w) * int64(w) / int64(time.Second)
	l.mu.Lock()
	if l.byEnd == nil {
		l.byEnd = make(map[int64]*leaseSlot)
	}
	s := l.byEnd[end]
	if s != nil {
		select {
		case <-s.ready:
			if s.err != nil || !s.expires.After(deadline) {
				s = nil // failed or revoked: grant again
			}
		default:
		}
	}
	if s == nil {
		s = &leaseSlot{ready: make(chan struct{})}
		l.byEnd[end] = s
		l.grants++
		if l.grants%sweepEvery == 0 {
			l.sweepLocked(now)
		}
		l.mu.Unlock()
		secs := min(maxLeaseTTLs, (end*int64(time.Second)-now.UnixNano()+int64(leaseMargin)+int64(time.Second)-1)/int64(time.Second))
		resp, err := c.Grant(ctx, secs)
		if err != nil {
			s.err = err
		} else {
			s.id = resp.ID
			s.expires = now.Add(time.Duration(resp.TTL) * time.Second)
		}
		close(s.ready)
		if err != nil {
			l.drop(end, s)
		}
		return s.id, err
	}
	l.mu.Unlock()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.id, nil
}

// drop forgets the lease of a bucket (failed grant, lease not found), so
// that the next write grants a new one.
func (l *leases) drop(end int64, s *leaseSlot) {
	l.mu.Lock()
	if l.byEnd[end] == s {
		delete(l.byEnd, end)
	}
	l.mu.Unlock()
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
