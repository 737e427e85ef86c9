package hybrid

import (
	"math"
	"sync/atomic"
	"time"
)

// clockBase anchors nowNano: the wall time at start plus the monotonic
// time elapsed since.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

// nowNano is the clock for expiry checks, in unix nanoseconds. It reads
// only the monotonic clock (time.Now reads two clocks, and a clock read is
// the largest cost of a hit on some virtual machines); inside a
// testing/synctest bubble time.Since uses the bubble's clock.
func nowNano() int64 { return clockBaseUnix + int64(time.Since(clockBase)) }

// after returns the time d after t (unix nanoseconds), saturated at
// math.MaxInt64: a duration near math.MaxInt64 means "practically
// forever", never a time that wrapped around into the past.
func after(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// addDur returns a + b for non-negative durations, saturated at
// math.MaxInt64.
func addDur(a, b time.Duration) time.Duration {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// scaleDur returns d times f (f in [0, 1] or more), saturated at
// math.MaxInt64 (a float64 beyond int64's range does not convert).
func scaleDur(d time.Duration, f float64) time.Duration {
	x := float64(d) * f
	if x >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(x)
}

var lastStamp atomic.Int64

// stamp is the clock for timestamps (creation, removal, invalidation): the
// wall clock, but strictly increasing within the process, so that a change
// made after another always carries a later timestamp even if the wall
// clock steps back or two calls read the same instant.
func stamp() int64 {
	for {
		last := lastStamp.Load()
		now := time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if lastStamp.CompareAndSwap(last, now) {
			return now
		}
	}
}

// hitClock is the clock of the hit path (Options.HitClockResolution): an
// atomic load instead of a clock read. A goroutine stores the time every
// tick while hits read it, and parks after a few ticks without one; a read
// while it is parked takes the precise time and wakes it. So the time a
// hit sees is at most a tick old, plus how late the goroutine is
// scheduled, and an idle cache costs nothing. The hit path takes the
// precise time for an entry within margin of its expiry, so that a late
// tick serves nothing past its expiry unless it is more than margin late
// (and inside a testing/synctest bubble, where the goroutine runs every
// tick before time moves on, never).
type hitClock struct {
	now    atomic.Int64
	used   atomic.Bool // a hit read now since the last tick
	parked atomic.Bool
	tick   time.Duration
	margin int64         // hitClockMarginTicks ticks, in ns
	wake   chan struct{} // capacity 1
}

// hitClockIdleTicks is how many ticks without a hit park the clock.
const hitClockIdleTicks = 4

// hitClockMarginTicks is how many ticks before its expiry an entry is
// checked against the precise clock.
const hitClockMarginTicks = 4

// minHitClockResolution is the finest Options.HitClockResolution honoured.
const minHitClockResolution = 100 * time.Microsecond

func newHitClock(tick time.Duration) *hitClock {
	tick = max(tick, minHitClockResolution)
	k := &hitClock{tick: tick, margin: int64(scaleDur(tick, hitClockMarginTicks)), wake: make(chan struct{}, 1)}
	k.parked.Store(true)
	return k
}

// read returns the time for a hit's checks, in unix nanoseconds.
func (k *hitClock) read() int64 {
	if k.parked.Load() {
		// The time is read before the goroutine is woken: the time it
		// stores then is no earlier than this one.
		now := nowNano()
		select {
		case k.wake <- struct{}{}:
		default:
		}
		return now
	}
	if !k.used.Load() {
		k.used.Store(true) // once per tick at most: the line stays shared
	}
	return k.now.Load()
}

// run keeps the time until done is closed.
func (k *hitClock) run(done <-chan struct{}) {
	t := time.NewTicker(k.tick)
	t.Stop()
	for {
		// Parked: hits read the precise time until one wakes the clock.
		select {
		case <-done:
			return
		case <-k.wake:
		}
		k.now.Store(nowNano())
		k.parked.Store(false)
		t.Reset(k.tick)
		for idle := 0; idle < hitClockIdleTicks; {
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			k.now.Store(nowNano())
			if k.used.Swap(false) {
				idle = 0
			} else {
				idle++
			}
		}
		t.Stop()
		// (A hit between the last tick and this store used a time at
		// most a tick old.)
		k.parked.Store(true)
	}
}
