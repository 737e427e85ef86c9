package hybrid

import (
	"context"
	"log/slog"
)

// Fail-safe: when the factory fails or times out, the newest stale value
// (memory or the distributed tier) answers instead, with a nil error, and
// is kept in memory as fresh for FailSafeThrottleDuration so that a
// failing source is not called on every request. Nothing goes to the
// distributed tier or the backplane. The stale value itself is chosen by
// the load (memoryAgain, mergeL2); this file serves it.

// fallbackFor is what a caller that timed out waiting for the factory
// serves: the usable stale value of key in memory (the load stores the
// distributed tier's stale entry there before it calls the factory), kept
// as fresh for the throttle. ok is false without fail-safe or without a
// usable stale value of type T. ctx is the caller's (its span, the
// FailSafe event).
func fallbackFor[T any](ctx context.Context, c *Cache, key string, o *EntryOptions) (v T, ok bool) {
	if !o.FailSafe {
		return v, false
	}
	e := c.l1.get(key)
	if e == nil || !e.usableStale(nowNano()) || c.checkEntry(e, c.inv.Load(), false) == invalidGone {
		return v, false
	}
	if v, ok = valueOf[T](e); !ok {
		return v, false
	}
	c.serveStale(ctx, key, e, o, FailSafeFactoryTimeout, nil)
	return v, true
}

// serveStale keeps the stale entry as fresh in memory for the throttle
// duration, and logs and reports the fail-safe activation (on the span of
// ctx's operation and in the FailSafe event). The copy passes
// invalidations made before now (Clear, RemoveByTag) for the throttle's
// length, or the throttle would not hold after them. An entry that is
// already fresh (the throttled copy of another caller, a Set meanwhile, an
// eager refresh that timed out) is served as it is, silently.
//
// cause is the factory's error it stands in for (nil for a timeout): the
// log line carries it, the error being swallowed.
func (c *Cache) serveStale(ctx context.Context, key string, stale *entry, o *EntryOptions, why FailSafeReason, cause error) {
	if c.tr != nil {
		annotate(ctx, slog.Bool(AttrStale, true), slog.String(AttrFailSafe, why.String()))
	}
	now := nowNano()
	if stale.fresh(now) && c.valid(stale) {
		return
	}
	x := stale.clone()
	x.withVTS(stamp())
	x.freshUntil = after(now, o.FailSafeThrottleDuration)
	x.physUntil = max(x.physUntil, x.freshUntil)
	x.noEager()
	// Nor does a hit slide it: an extension would move freshUntil to the
	// sliding window's (cutting the throttle short, or to a time already
	// past once the sliding limit is), and write the stale value to the
	// distributed tier as fresh.
	x.setSlide(sliding{})
	if !o.SkipL1Write {
		c.l1.set(x) // (a call that skips memory writes gets no throttle)
	}
	c.stats.failSafe.Add(1)
	if cause != nil {
		c.log.Warn("fail-safe activated", c.keyAttr(key), slog.String("reason", why.logText()), c.errAttr(key, cause))
	} else {
		c.log.Warn("fail-safe activated", c.keyAttr(key), slog.String("reason", why.logText()))
	}
	if c.ev != nil {
		c.emitFailSafe(ctx, key, why)
	}
}
