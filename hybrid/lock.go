package hybrid

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Cluster-wide stampede protection (EntryOptions.DistributedLock). Within
// a process, one load per key runs at a time (flight). Across processes, a
// load that found nothing fresh in the distributed tier takes a short lock
// of the key there before it calls the factory: one step that reads the
// entry again and takes the lock if it is free (Locker.GetOrLock). The
// holder runs the factory, writes the distributed tier, then releases the
// lock; it renews the lease while the factory runs. The others poll the
// same step until the holder's value is there (the answer, without a
// factory call), the lock is theirs (the holder failed, or its lease ran
// out: it died), or DistributedLockTimeout has passed (they run the
// factory themselves). The lock is an efficiency, never a dependency: when
// the distributed tier fails or its circuit breaker is open, a load runs
// as without it (one factory call per process).

// Locker is a distributed tier that can hold a short lock per key, for
// cluster-wide stampede protection (EntryOptions.DistributedLock).
// RedisL2 implements it. Keys arrive prefixed, as for L2.
type Locker interface {
	// GetOrLock reads key and, in the same atomic step, tries to take the
	// lock named lock for token with the given lease. It returns the value
	// at key (nil if none) and whether the lock was taken; a lock held by
	// another token is not.
	GetOrLock(ctx context.Context, key, lock, token string, lease time.Duration) (value []byte, locked bool, err error)
	// ExtendLock renews the lease of the lock if token holds it; held is
	// false when it does not (any more).
	ExtendLock(ctx context.Context, key, lock, token string, lease time.Duration) (held bool, err error)
	// Unlock releases the lock if token holds it.
	Unlock(ctx context.Context, key, lock, token string) error
}

// Defaults of the distributed lock, where EntryOptions' fields are zero.
const (
	// DefaultDistributedLockLease is the lease of a key's lock when
	// EntryOptions.DistributedLockLease is zero. The holder renews it every
	// third of the lease while its factory runs; a holder that dies holds
	// the key at most this long.
	DefaultDistributedLockLease = 2 * time.Second
	// DefaultDistributedLockTimeout is how long a load waits for another
	// process's lock when EntryOptions.DistributedLockTimeout is zero.
	DefaultDistributedLockTimeout = 5 * time.Second
)

// The polling of a waiter: the first retry after lockPollMin, each next
// one twice as late, at most lockPollMax apart.
const (
	lockPollMin = 2 * time.Millisecond
	lockPollMax = 50 * time.Millisecond
)

// lockPrefix names the lock of a key in the distributed tier:
// "<prefix>__strata:lock:<key>" (plus a hash tag that puts it in the key's
// cluster slot, added by the Locker).
const lockPrefix = reservedPrefix + "lock:"

var lockTokens atomic.Uint64 // tells this process's lock attempts apart

// locks reports whether a load with o takes the distributed lock. Asked
// of a distributed tier that has none (not a Locker), it says so in the
// log, once.
func (c *Cache) locks(o *EntryOptions) bool {
	if !o.DistributedLock {
		return false
	}
	if c.locker == nil {
		if c.l2 != nil && c.noLockerWarned.CompareAndSwap(false, true) {
			c.log.Warn("DistributedLock is ignored: the distributed tier has no lock (hybrid.Locker); each process loads on its own")
		}
		return false
	}
	return !o.SkipL2Read && !o.SkipL2Write
}

func lockLease(o *EntryOptions) time.Duration {
	if o.DistributedLockLease > 0 {
		return max(o.DistributedLockLease, 3*time.Millisecond)
	}
	return DefaultDistributedLockLease
}

func lockTimeout(o *EntryOptions) time.Duration {
	if o.DistributedLockTimeout > 0 {
		return o.DistributedLockTimeout
	}
	return DefaultDistributedLockTimeout
}

// heldLock is a lock this process holds, renewed in the background until
// release.
type heldLock struct {
	c           *Cache
	key         string // unprefixed, for logs
	pkey, name  string
	token       string
	ctx         context.Context // the load's, for the values of release's call
	o           *EntryOptions
	stop, ended chan struct{}
}

// lockOutcome is what distributedLock found.
type lockOutcome uint8

const (
	lockLocal  lockOutcome = iota // no lock: run the factory as without one
	lockHeld                      // the lock is this load's: run the factory, then release
	lockAnswer                    // another process's value answered
	lockBusy                      // an eager refresh that another process runs: skip it
)

// distributedLock is the cluster-wide step of a load, between the
// distributed tier's miss and the factory: it waits for another process's
// load, or takes the key's lock (see the comment at the top of lock.go).
// It returns the fresh entry that answered (lockAnswer), the lock
// (lockHeld), or neither; stale is the newest usable stale value. For an
// eager refresh (eager non-nil) it does not wait: a lock held elsewhere
// means that process refreshes (lockBusy).
func distributedLock[T any](ctx context.Context, c *Cache, key string, o *EntryOptions, stale, eager *entry) (_ lockOutcome, fresh, _ *entry, _ *heldLock, err error) {
	pkey, name := c.prefix+key, c.prefix+lockPrefix+key
	token := c.id + "-" + strconv.FormatUint(lockTokens.Add(1), 36)
	lease := lockLease(o)
	deadline := time.Now().Add(lockTimeout(o))
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for wait := lockPollMin; ; wait = min(2*wait, lockPollMax) {
		if !c.breaker.allow() {
			return lockLocal, nil, stale, nil, nil
		}
		start := stamp()
		ictx, cancel := context.WithTimeout(ctx, l2Timeout(o))
		began := nowNano()
		b, locked, err := c.locker.GetOrLock(ictx, pkey, name, token, lease)
		cancel()
		if c.ev != nil {
			c.emitL2Call(ctx, "lock", key, time.Duration(nowNano()-began), err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return lockLocal, nil, stale, nil, ctx.Err() // the cache is closing
			}
			c.l2Failed(ctx, "lock", key, err)
			return lockLocal, nil, stale, nil, nil
		}
		c.breaker.succeeded()
		var h *heldLock
		if locked {
			h = c.hold(ctx, key, pkey, name, token, lease, o)
		}
		if b != nil {
			if l2e := decodeL2[T](c, key, b, o, start); l2e != nil {
				if fresh, stale = c.mergeL2(ctx, key, o, l2e, stale, eager); fresh != nil {
					if h != nil {
						h.release()
					}
					if c.tr != nil {
						annotate(ctx, slog.String(AttrTier, TierL2.String()), slog.Bool(AttrHit, true))
					}
					return lockAnswer, fresh, stale, nil, nil
				}
			}
		}
		switch {
		case h != nil:
			return lockHeld, nil, stale, h, nil
		case eager != nil:
			return lockBusy, nil, stale, nil, nil
		case !time.Now().Before(deadline):
			c.log.Warn("distributed lock timeout: running the factory without it", c.keyAttr(key),
				slog.Duration("waited", lockTimeout(o)))
			return lockLocal, nil, stale, nil, nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done(): // the load's context: the cache is closing
			return lockLocal, nil, stale, nil, ctx.Err()
		}
	}
}

// hold starts renewing a lock this load took, every third of its lease,
// until release.
func (c *Cache) hold(ctx context.Context, key, pkey, name, token string, lease time.Duration, o *EntryOptions) *heldLock {
	h := &heldLock{c: c, key: key, pkey: pkey, name: name, token: token, ctx: ctx, o: o,
		stop: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(h.ended)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lease/3)
			held, err := c.locker.ExtendLock(rctx, pkey, name, token, lease)
			cancel()
			switch {
			case err != nil:
				c.log.Warn("distributed lock not renewed", c.keyAttr(key), c.errAttr(key, err))
			case !held:
				c.log.Warn("distributed lock lost while the factory runs", c.keyAttr(key))
				return
			}
		}
	}()
	return h
}

// release stops the renewal and releases the lock. A load calls it after
// its write to the distributed tier, so that a process that takes the lock
// next finds the value.
func (h *heldLock) release() {
	close(h.stop)
	<-h.ended
	c := h.c
	ctx, cancel := c.ioContext(h.ctx, h.o)
	defer cancel()
	began := nowNano()
	err := c.locker.Unlock(ctx, h.pkey, h.name, h.token)
	if c.ev != nil {
		c.emitL2Call(h.ctx, "unlock", h.key, time.Duration(nowNano()-began), err)
	}
	if err != nil {
		c.log.Warn("distributed lock not released: it ends with its lease", c.keyAttr(h.key), c.errAttr(h.key, err))
	}
}

// GetOrLock reads key and, in the same script, takes the lock named lock
// for token if it is free: one round trip. On a cluster the lock's key
// carries a hash tag that puts it in key's slot.
func (r *RedisL2) GetOrLock(ctx context.Context, key, lock, token string, lease time.Duration) ([]byte, bool, error) {
	return r.s.GetOrLock(ctx, key, lock, token, lease)
}

// ExtendLock renews the lease of key's lock if token holds it.
func (r *RedisL2) ExtendLock(ctx context.Context, key, lock, token string, lease time.Duration) (bool, error) {
	return r.s.ExtendLock(ctx, key, lock, token, lease)
}

// Unlock releases key's lock if token holds it.
func (r *RedisL2) Unlock(ctx context.Context, key, lock, token string) error {
	return r.s.Unlock(ctx, key, lock, token)
}

var _ Locker = (*RedisL2)(nil)
