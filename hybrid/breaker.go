package hybrid

import (
	"sync/atomic"
	"time"
)

// breakerProbeInterval is how often an open breaker lets one call through
// to find out whether the tier is back (half-open).
const breakerProbeInterval = time.Second

// breaker skips the distributed tier for a while after a transient error.
// While open it lets one call a second through as a probe: a success
// closes it at once, so a short outage does not cost the whole duration.
//
// With changed set (the CircuitBreaker event), open tracks the state last
// reported, so that opened and closed alternate: a trip reports opened
// unless already reported; a success, or the first call let through after
// the duration ran out, reports closed unless already reported.
type breaker struct {
	d       time.Duration // 0: disabled
	until   atomic.Int64  // unix ns; 0 = closed
	probe   atomic.Int64  // unix ns: when the next probe may go through
	changed func(open bool)
	open    atomic.Bool // the state last reported to changed
}

// report tells changed about a new state, once per change.
func (b *breaker) report(open bool) {
	if b.changed != nil && b.open.Load() != open && b.open.CompareAndSwap(!open, open) {
		b.changed(open)
	}
}

func (b *breaker) interval() time.Duration { return min(breakerProbeInterval, b.d) }

// isOpen reports whether calls are being skipped.
func (b *breaker) isOpen() bool {
	u := b.until.Load()
	return u != 0 && nowNano() < u
}

// allow reports whether a call may go to the tier: the breaker is closed,
// or this call is the probe.
func (b *breaker) allow() bool {
	u := b.until.Load()
	if u == 0 {
		return true
	}
	now := nowNano()
	if now >= u {
		b.report(false)
		return true
	}
	p := b.probe.Load()
	return now >= p && b.probe.CompareAndSwap(p, now+int64(b.interval()))
}

// trip opens the breaker; it reports whether it was closed before.
func (b *breaker) trip() bool {
	if b.d <= 0 {
		return false
	}
	wasClosed := !b.isOpen()
	now := nowNano()
	b.probe.Store(now + int64(b.interval()))
	b.until.Store(now + int64(b.d))
	b.report(true)
	return wasClosed
}

func (b *breaker) succeeded() {
	b.until.Store(0)
	b.report(false)
}

// remaining is how long until a call may go through (the next probe).
func (b *breaker) remaining() time.Duration {
	if !b.isOpen() {
		return 0
	}
	return max(0, time.Duration(b.probe.Load()-nowNano()))
}

// rateLimit allows one event a minute.
type rateLimit struct{ last atomic.Int64 }

func (r *rateLimit) allow() bool {
	now := nowNano()
	last := r.last.Load()
	return (last == 0 || now-last >= int64(time.Minute)) && r.last.CompareAndSwap(last, now)
}
