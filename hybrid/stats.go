package hybrid

import (
	"context"
	"sync/atomic"
	"unsafe"
)

// stats are the counters behind Cache.Stats.
type stats struct {
	l1Hits          hotCounter // the hit path: striped
	l1Misses        atomic.Uint64
	l2Hits          atomic.Uint64
	l2Misses        atomic.Uint64
	factoryCalls    atomic.Uint64
	factoryErrors   atomic.Uint64
	factoryTimeouts atomic.Uint64
	failSafe        atomic.Uint64
	staleServed     atomic.Uint64
	eagerRefreshes  atomic.Uint64
	l2Errors        atomic.Uint64
	l2Timeouts      atomic.Uint64
	l2Corrupt       atomic.Uint64
	l2Refused       atomic.Uint64
	configErrors    atomic.Uint64
	recoveryQueued  atomic.Uint64
	recovered       atomic.Uint64
	recoveryDropped atomic.Uint64
	bpPublished     atomic.Uint64
	bpReceived      atomic.Uint64
	bpErrors        atomic.Uint64
	bpGaps          atomic.Uint64
	bpValues        atomic.Uint64
}

// hotShards is the number of stripes of a hotCounter.
const hotShards = 16

// hotCounter is a counter written on the hit path, striped over
// cache-line-padded shards so that hits running on different cores do not
// all write one cache line. A goroutine picks its shard from the address
// of its own stack (a hash of it): stable for a goroutine, different for
// goroutines whose stacks differ, and free to compute. Add is one atomic
// add on an uncontended line; Load sums the shards.
type hotCounter struct {
	shards [hotShards]struct {
		n atomic.Uint64
		_ [56]byte // one shard per 64-byte line
	}
}

func (h *hotCounter) add() {
	var probe byte
	// A goroutine's stack spans at least 2 KiB: hash the bits above.
	s := uint64(uintptr(unsafe.Pointer(&probe))>>11) * 0x9E3779B97F4A7C15
	h.shards[s>>60].n.Add(1)
}

func (h *hotCounter) load() uint64 {
	var n uint64
	for i := range h.shards {
		n += h.shards[i].n.Load()
	}
	return n
}

// Stats are counters of what the cache did and absorbed. They are counted
// whether or not Events are set, and read without any SDK; every counter
// only grows, except RecoveryPending and L2CircuitOpen (the current state).
type Stats struct {
	// L1Hits counts GetOrSet and TryGet calls (and keys of their batch
	// forms) answered with a fresh value from the memory tier.
	L1Hits uint64
	// L1Misses counts GetOrSet and TryGet calls that found no fresh value
	// in the memory tier (not counted with SkipL1Read). L1Hits + L1Misses
	// is the number of reads; each read is exactly one of them.
	L1Misses uint64
	// L2Hits counts reads of the distributed tier (by a load or TryGet)
	// that found a fresh entry.
	L2Hits uint64
	// L2Misses counts reads of the distributed tier that found no fresh
	// entry, including those skipped by the open circuit breaker, timed out
	// or failed.
	L2Misses uint64
	// FactoryCalls counts factory runs that returned or panicked, eager
	// refreshes included; one run of a BatchFactory is one call, whatever
	// the number of its keys.
	FactoryCalls uint64
	// FactoryErrors counts the factory runs among FactoryCalls that
	// returned an error or panicked, or (a BatchFactory) failed a key with
	// BatchContext.Fail.
	FactoryErrors uint64
	// FactoryTimeouts counts callers that stopped waiting for a factory at
	// FactorySoftTimeout or FactoryHardTimeout (the factory goes on in the
	// background unless DisableBackgroundCompletion is set).
	FactoryTimeouts uint64
	// FailSafeActivations counts stale values served because the factory
	// failed or timed out.
	FailSafeActivations uint64
	// StaleServed counts stale values returned by TryGet with
	// AllowStaleOnRead.
	StaleServed uint64
	// EagerRefreshes counts background refreshes started by a hit past
	// EagerRefreshThreshold.
	EagerRefreshes uint64

	// L2Errors counts errors of the distributed tier (logged, not returned).
	L2Errors uint64
	// L2Timeouts counts distributed reads cut by the L2 timeouts or the
	// caller's context: they count as misses.
	L2Timeouts uint64
	// L2Corrupt counts distributed entries that could not be decoded or
	// held another type: they count as misses.
	L2Corrupt uint64
	// L2Refused counts writes the distributed tier refused because it held
	// a newer change (newest wins); they are not announced.
	L2Refused uint64
	// ConfigErrors counts errors that need a person, not a retry: a missing
	// ACL permission (for example NOPERM on PUBLISH), a wrong password, a
	// key of another Redis type. They are logged at Error (at most once a
	// minute), never queued for recovery, and never open the breaker.
	ConfigErrors uint64
	// RecoveryQueued counts changes queued for auto-recovery (a newer
	// change of the same key replaces a queued one and counts again).
	RecoveryQueued uint64
	// Recovered counts queued changes replayed to the distributed tier.
	Recovered uint64
	// RecoveryDropped counts changes dropped because the auto-recovery
	// queue was full.
	RecoveryDropped uint64
	// RecoveryPending is the number of changes waiting for the distributed
	// tier to come back.
	RecoveryPending int
	// L2CircuitOpen reports whether the distributed tier is being skipped.
	L2CircuitOpen bool
	// BackplanePublished counts notifications sent to the other instances.
	BackplanePublished uint64
	// BackplaneReceived counts notifications from the other instances,
	// counted once applied to the memory tier.
	BackplaneReceived uint64
	// BackplaneErrors counts failed publishes (queued for auto-recovery).
	BackplaneErrors uint64
	// BackplaneGaps counts the times messages may have been lost (a
	// reconnect, a full queue): entries from before are verified before use.
	BackplaneGaps uint64
	// BackplaneValues counts received Set messages whose entry replaced
	// the local copy (Options.BackplaneValueMaxSize), sparing a read of
	// the distributed tier.
	BackplaneValues uint64
}

// Stats returns a snapshot of the cache's counters. The counters are read
// one after the other, not at one instant: under load, two of them may
// disagree by the operations that ran in between.
func (c *Cache) Stats() Stats {
	c.recovery.mu.Lock()
	pending := len(c.recovery.items)
	c.recovery.mu.Unlock()
	s := &c.stats
	return Stats{
		L1Hits:              s.l1Hits.load(),
		L1Misses:            s.l1Misses.Load(),
		L2Hits:              s.l2Hits.Load(),
		L2Misses:            s.l2Misses.Load(),
		FactoryCalls:        s.factoryCalls.Load(),
		FactoryErrors:       s.factoryErrors.Load(),
		FactoryTimeouts:     s.factoryTimeouts.Load(),
		FailSafeActivations: s.failSafe.Load(),
		StaleServed:         s.staleServed.Load(),
		EagerRefreshes:      s.eagerRefreshes.Load(),

		L2Errors:        s.l2Errors.Load(),
		L2Timeouts:      s.l2Timeouts.Load(),
		L2Corrupt:       s.l2Corrupt.Load(),
		L2Refused:       s.l2Refused.Load(),
		ConfigErrors:    s.configErrors.Load(),
		RecoveryQueued:  s.recoveryQueued.Load(),
		Recovered:       s.recovered.Load(),
		RecoveryDropped: s.recoveryDropped.Load(),
		RecoveryPending: pending,
		L2CircuitOpen:   c.breaker.isOpen(),

		BackplanePublished: s.bpPublished.Load(),
		BackplaneReceived:  s.bpReceived.Load(),
		BackplaneErrors:    s.bpErrors.Load(),
		BackplaneGaps:      s.bpGaps.Load(),
		BackplaneValues:    s.bpValues.Load(),
	}
}

// hit counts a fresh value found in tier t and reports it.
func (c *Cache) hit(ctx context.Context, key string, t Tier) {
	if t == TierL1 {
		c.stats.l1Hits.add()
	} else {
		c.stats.l2Hits.Add(1)
	}
	if c.ev != nil {
		c.emitHit(ctx, key, t)
	}
}

// miss counts a tier without a fresh value and reports it.
func (c *Cache) miss(ctx context.Context, key string, t Tier) {
	if t == TierL1 {
		c.stats.l1Misses.Add(1)
	} else {
		c.stats.l2Misses.Add(1)
	}
	if c.ev != nil {
		c.emitMiss(ctx, key, t)
	}
}
