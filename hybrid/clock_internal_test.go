package hybrid

import (
	"cmp"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// awaitClock polls cond (a condition of the clock's goroutine) for up to 5s.
func awaitClock(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition of another goroutine
	}
}

// The hit clock starts parked; reads of the precise time wake it; it
// ticks while the cache has enough hits and parks again when it has not.
func TestHitClockParksAndWakes(t *testing.T) {
	var hits atomic.Uint64
	k := runHitClock(t, &hits)

	before := nowNano()
	if got := k.read(); got < before {
		t.Fatalf("a read while parked = %d, want the precise time (>= %d)", got, before)
	}
	for range hitClockWakeReads - 2 {
		k.read()
	}
	if k.parked.Load() == false || len(k.wake) != 0 {
		t.Fatalf("the clock woke after %d reads; want %d", hitClockWakeReads-1, hitClockWakeReads)
	}
	k.read()
	awaitClock(t, "the clock to wake", func() bool { return !k.parked.Load() })
	// Enough hits keep it awake; the time it gives is recent.
	for range 20 {
		hits.Add(10 * hitClockMinHits)
		if lag := nowNano() - k.read(); lag > int64(time.Second) {
			t.Fatalf("the clock lags %v", time.Duration(lag))
		}
		time.Sleep(time.Millisecond) // hits spread over ticks
	}
	// Too few hits park it: a few reads do not count.
	for range 10 {
		k.read()
	}
	awaitClock(t, "the clock to park without enough hits", func() bool { return k.parked.Load() })
	if got := k.read(); got < nowNano()-int64(time.Second) {
		t.Fatal("a read after parking is not the precise time")
	}
}

// With the hit clock (the default), an entry expires on the hit path no
// earlier than its expiry and at most a little later; bad values are
// refused.
func TestHitClockResolution(t *testing.T) {
	if _, err := New(Options{HitClockResolution: -time.Millisecond}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("New with a negative HitClockResolution = %v, want ErrInvalidOptions", err)
	}
	for _, o := range []Options{{}, {HitClockResolution: 5 * time.Millisecond}} {
		hitClockExpiry(t, o)
	}
}

func hitClockExpiry(t *testing.T, o Options) {
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.clock == nil || c.clock.tick != cmp.Or(o.HitClockResolution, DefaultHitClockResolution) {
		t.Fatalf("clock = %+v, want one of resolution %v", c.clock, o.HitClockResolution)
	}
	ctx := context.Background()
	const d = 50 * time.Millisecond
	if err := Set(ctx, c, "k", "v", WithDuration(d)); err != nil {
		t.Fatal(err)
	}
	e := c.l1.get("k")
	for {
		_, ok, err := TryGet[string](ctx, c, "k")
		now := nowNano()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if now < e.freshUntil {
				t.Fatalf("a miss %v before the entry's expiry", time.Duration(e.freshUntil-now))
			}
			break
		}
		if late := now - e.freshUntil; late > int64(time.Second) {
			t.Fatalf("served as fresh %v past its expiry", time.Duration(late))
		}
		time.Sleep(100 * time.Microsecond) // hits spread over ticks
	}
}

// runHitClock starts a hit clock of 1 ms that counts hits, whose
// goroutine ends with the test.
func runHitClock(t *testing.T, hits *atomic.Uint64) *hitClock {
	k := newHitClock(time.Millisecond, hits.Load)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() { k.run(done); close(ended) }()
	t.Cleanup(func() { close(done); <-ended })
	return k
}

// PreciseHitClock turns the hit clock off: no clock, no goroutine.
func TestPreciseHitClock(t *testing.T) {
	c, err := New(Options{PreciseHitClock: true, HitClockResolution: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.clock != nil {
		t.Fatal("PreciseHitClock: the cache has a hit clock")
	}
}

// An entry within the margin of its expiry is checked against the precise
// clock, however late the hit clock's goroutine is: here it is stopped
// (marked awake, never woken) at a time of our choosing.
func TestHitClockMarginReadsPreciseTime(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := Set(ctx, c, "k", "v", WithDuration(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	e := c.l1.get("k")
	for nowNano() <= e.freshUntil {
		time.Sleep(time.Millisecond) // until the entry has expired by the precise clock
	}
	k := c.clock
	k.parked.Store(false) // reads now take k.now; the goroutine stays parked
	// A clock further behind than the margin is believed: the mechanism
	// at work (and the bound the docs give).
	k.now.Store(e.freshUntil - k.margin - int64(time.Millisecond))
	if _, ok, err := TryGet[string](ctx, c, "k"); err != nil || !ok {
		t.Fatalf("TryGet with the clock %v behind = %v, %v; want the hit clock's answer, a hit", time.Duration(k.margin), ok, err)
	}
	// Within the margin: the precise time decides.
	k.now.Store(e.freshUntil - k.margin/2)
	if _, ok, err := TryGet[string](ctx, c, "k"); err != nil || ok {
		t.Fatalf("TryGet of an expired entry, the clock within the margin = %v, %v; want a miss", ok, err)
	}
}

// In a testing/synctest bubble, a hit at the very instant an entry expires
// misses, whatever the order in which the bubble runs the test and the
// clock's goroutine at that instant.
func TestHitClockExpiryInBubble(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			c, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if err := Set(ctx, c, "k", "v", WithDuration(time.Second)); err != nil {
				t.Fatal(err)
			}
			// Enough hits at each step to wake the clock and keep it
			// ticking, so that the last ones read its time.
			for _, step := range []time.Duration{0, 500 * time.Millisecond, 498 * time.Millisecond, time.Millisecond} {
				time.Sleep(step)
				for range hitClockWakeReads + hitClockMinHits {
					if _, ok, _ := TryGet[string](ctx, c, "k"); !ok {
						t.Fatal("a miss before the expiry")
					}
				}
			}
			time.Sleep(time.Millisecond) // now the expiry, to the nanosecond
			if c.clock.parked.Load() {
				t.Fatal("the clock is parked: the hit would read the precise time, and this test would prove nothing")
			}
			if _, ok, _ := TryGet[string](ctx, c, "k"); ok {
				t.Fatal("a hit at the instant of expiry")
			}
		})
	}
}

// An Expire is seen by the next hit however far behind the hit clock is
// (read your writes does not depend on when its goroutine runs).
func TestExpireSeenWithHitClockBehind(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := Set(ctx, c, "k", "v", WithDuration(time.Hour), WithFailSafe(true)); err != nil {
		t.Fatal(err)
	}
	k := c.clock
	k.parked.Store(false) // reads now take k.now; the goroutine stays parked
	k.now.Store(nowNano() - int64(time.Minute))
	if err := c.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := TryGet[string](ctx, c, "k"); err != nil || ok {
		t.Fatalf("TryGet after Expire, the hit clock a minute behind = %v, %v; want a miss", ok, err)
	}
	if v, ok, err := TryGet[string](ctx, c, "k", WithOptions(func(o *EntryOptions) { o.AllowStaleOnRead = true })); err != nil || !ok || v != "v" {
		t.Fatalf("TryGet of the expired copy with AllowStaleOnRead = %q, %v, %v; want the stale value", v, ok, err)
	}
}

// Reads of the precise time that come slower than the clock's threshold
// (here, spread over a second) do not wake it; the count starts again, and
// reads that come fast enough do.
func TestHitClockStaysParkedForSlowReads(t *testing.T) {
	var hits atomic.Uint64
	k := runHitClock(t, &hits)

	k.windowStart.Store(nowNano() - int64(time.Second)) // as if the reads had taken a second
	for range hitClockWakeReads {
		k.read()
	}
	if !k.parked.Load() || len(k.wake) != 0 {
		t.Fatal("reads at about one a millisecond woke the clock")
	}
	for range hitClockWakeReads {
		k.read()
	}
	awaitClock(t, "fast reads to wake the clock", func() bool { return !k.parked.Load() })
}
