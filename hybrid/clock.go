package hybrid

import (
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
