package hybrid

import (
	"context"
	"errors"
	"testing"
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

// The hit clock starts parked, ticks while read, parks again when no hit
// reads it, and a read while parked is the precise time.
func TestHitClockParksAndWakes(t *testing.T) {
	k := newHitClock(time.Millisecond)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() { k.run(done); close(ended) }()
	defer func() { close(done); <-ended }()

	before := nowNano()
	if got := k.read(); got < before {
		t.Fatalf("a read while parked = %d, want the precise time (>= %d)", got, before)
	}
	awaitClock(t, "the clock to wake", func() bool { return !k.parked.Load() })
	// Reading keeps it awake; the time it gives is recent.
	for range 20 {
		if lag := nowNano() - k.read(); lag > int64(time.Second) {
			t.Fatalf("the clock lags %v", time.Duration(lag))
		}
		time.Sleep(time.Millisecond) // hits spread over ticks
	}
	awaitClock(t, "the clock to park without hits", func() bool { return k.parked.Load() })
	if got := k.read(); got < nowNano()-int64(time.Second) {
		t.Fatal("a read after parking is not the precise time")
	}
}

// With HitClockResolution, an entry expires on the hit path no earlier
// than its expiry and at most a little later; bad values are refused.
func TestHitClockResolution(t *testing.T) {
	if _, err := New(Options{HitClockResolution: -time.Millisecond}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("New with a negative HitClockResolution = %v, want ErrInvalidOptions", err)
	}
	c, err := New(Options{HitClockResolution: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
