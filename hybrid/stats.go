package hybrid

import "sync/atomic"

// stats are the counters behind Cache.Stats.
type stats struct {
	l2Errors        atomic.Uint64
	l2Timeouts      atomic.Uint64
	l2Corrupt       atomic.Uint64
	recovered       atomic.Uint64
	recoveryDropped atomic.Uint64
}

// Stats are counters of what the cache absorbed rather than returned.
type Stats struct {
	// L2Errors counts errors of the distributed tier (logged, not returned).
	L2Errors uint64
	// L2Timeouts counts distributed reads cut by the L2 timeouts or the
	// caller's context: they count as misses.
	L2Timeouts uint64
	// L2Corrupt counts distributed entries that could not be decoded or
	// held another type: they count as misses.
	L2Corrupt uint64
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
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	c.recovery.mu.Lock()
	pending := len(c.recovery.items)
	c.recovery.mu.Unlock()
	return Stats{
		L2Errors:        c.stats.l2Errors.Load(),
		L2Timeouts:      c.stats.l2Timeouts.Load(),
		L2Corrupt:       c.stats.l2Corrupt.Load(),
		Recovered:       c.stats.recovered.Load(),
		RecoveryDropped: c.stats.recoveryDropped.Load(),
		RecoveryPending: pending,
		L2CircuitOpen:   c.breaker.open(),
	}
}
