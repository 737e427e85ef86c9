package hybrid

import "sync/atomic"

// stats are the counters behind Cache.Stats.
type stats struct {
	l2Errors        atomic.Uint64
	l2Timeouts      atomic.Uint64
	l2Corrupt       atomic.Uint64
	l2Refused       atomic.Uint64
	configErrors    atomic.Uint64
	recovered       atomic.Uint64
	recoveryDropped atomic.Uint64
	bpPublished     atomic.Uint64
	bpReceived      atomic.Uint64
	bpErrors        atomic.Uint64
	bpGaps          atomic.Uint64
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
	// L2Refused counts writes the distributed tier refused because it held
	// a newer change (newest wins); they are not announced.
	L2Refused uint64
	// ConfigErrors counts errors that need a person, not a retry: a missing
	// ACL permission (for example NOPERM on PUBLISH), a wrong password, a
	// key of another Redis type. They are logged at Error (at most once a
	// minute), never queued for recovery, and never open the breaker.
	ConfigErrors uint64
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
		L2Refused:       c.stats.l2Refused.Load(),
		ConfigErrors:    c.stats.configErrors.Load(),
		Recovered:       c.stats.recovered.Load(),
		RecoveryDropped: c.stats.recoveryDropped.Load(),
		RecoveryPending: pending,
		L2CircuitOpen:   c.breaker.isOpen(),

		BackplanePublished: c.stats.bpPublished.Load(),
		BackplaneReceived:  c.stats.bpReceived.Load(),
		BackplaneErrors:    c.stats.bpErrors.Load(),
		BackplaneGaps:      c.stats.bpGaps.Load(),
	}
}
