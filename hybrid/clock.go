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
// tick while the cache has enough hits for that to pay (hitClockMinHits a
// tick: a tick costs about what that many clock reads do), and parks after
// hitClockIdleTicks ticks with fewer. While it is parked, hits read the
// precise time, and hitClockWakeReads such reads wake it if they came at
// that rate or faster: a cache with few hits, or none, costs nothing. So the time a hit sees is at most
// a tick old, plus how late the goroutine is scheduled. The hit path takes
// the precise time for an entry within margin of its expiry, so that a
// late tick serves nothing past its expiry unless it is more than margin
// late (and inside a testing/synctest bubble, where the goroutine runs
// every tick before time moves on, never).
type hitClock struct {
	now          atomic.Int64
	parked       atomic.Bool
	preciseReads atomic.Uint32 // reads while parked, since windowStart
	windowStart  atomic.Int64  // unix ns: when preciseReads began counting
	tick         time.Duration
	margin       int64         // hitClockMarginTicks ticks, at least hitClockMinMargin, in ns
	hits         func() uint64 // the cache's hit count
	wake         chan struct{} // capacity 1
}

const (
	// hitClockMinHits is the fewest hits in a tick that keep the clock
	// running.
	hitClockMinHits = 64
	// hitClockIdleTicks is how many ticks in a row with fewer park it.
	hitClockIdleTicks = 4
	// hitClockWakeReads is how many reads of the precise time, while the
	// clock is parked, wake it if they took less than
	// hitClockWakeReads/hitClockMinHits ticks (else counting starts again).
	hitClockWakeReads = 1024
	// hitClockMarginTicks is how many ticks before its expiry an entry is
	// checked against the precise clock, and hitClockMinMargin the least
	// time: a goroutine can be scheduled a few milliseconds late on a busy
	// machine, and reading the precise clock for the hits of the last
	// 50 ms of an entry costs nothing that matters.
	hitClockMarginTicks = 4
	hitClockMinMargin   = 50 * time.Millisecond
	// minHitClockResolution is the finest Options.HitClockResolution
	// honoured.
	minHitClockResolution = 100 * time.Microsecond
)

func newHitClock(tick time.Duration, hits func() uint64) *hitClock {
	tick = max(tick, minHitClockResolution)
	k := &hitClock{tick: tick, margin: int64(max(scaleDur(tick, hitClockMarginTicks), hitClockMinMargin)), hits: hits, wake: make(chan struct{}, 1)}
	k.windowStart.Store(nowNano())
	k.parked.Store(true)
	return k
}

// read returns the time for a hit's checks, in unix nanoseconds.
func (k *hitClock) read() int64 {
	if k.parked.Load() {
		// The time is read before the goroutine may wake: the time it
		// stores then is no earlier than this one.
		now := nowNano()
		if k.preciseReads.Add(1) == hitClockWakeReads {
			k.preciseReads.Store(0)
			start := k.windowStart.Swap(now)
			if now-start < int64(k.tick)*(hitClockWakeReads/hitClockMinHits) {
				select {
				case k.wake <- struct{}{}:
				default:
				}
			}
		}
		return now
	}
	return k.now.Load()
}

// run keeps the time until done is closed.
func (k *hitClock) run(done <-chan struct{}) {
	t := time.NewTicker(k.tick)
	t.Stop()
	for {
		// Parked: hits read the precise time until enough of them wake
		// the clock.
		select {
		case <-done:
			return
		case <-k.wake:
		}
		k.now.Store(nowNano())
		k.parked.Store(false)
		last := k.hits()
		t.Reset(k.tick)
		for idle := 0; idle < hitClockIdleTicks; {
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			k.now.Store(nowNano())
			n := k.hits()
			if n-last >= hitClockMinHits {
				idle = 0
			} else {
				idle++
			}
			last = n
		}
		t.Stop()
		// (A hit between the last tick and this store used a time at
		// most a tick old.)
		k.preciseReads.Store(0)
		k.windowStart.Store(nowNano())
		k.parked.Store(true)
	}
}
