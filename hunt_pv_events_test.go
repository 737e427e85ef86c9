package strata_test

// Events and Stats of a provider's caches over Redis (docs/observability.md
// "Counting"): every GetOrSet and TryGet is exactly one L1 hit or miss; a
// read that asks L2 adds exactly one L2 hit or miss; each factory run is
// one FactoryCall; each stale value served is one FailSafe; each backplane
// message is one sent event on its publisher and one received event on
// each other process, on the cache it belongs to only. The events of
// Settings.Events and the counters of Stats agree.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// pvTally counts the events of a provider per cache.
type pvTally struct {
	mu sync.Mutex
	n  map[string]*hybrid.Stats // per cache, in Stats' own fields
	// bad collects events that break a documented rule.
	bad []string
}

func newPVTally() *pvTally { return &pvTally{n: map[string]*hybrid.Stats{}} }

func (t *pvTally) of(cache string) *hybrid.Stats {
	s := t.n[cache]
	if s == nil {
		s = &hybrid.Stats{}
		t.n[cache] = s
	}
	return s
}

func (t *pvTally) add(cache string, f func(*hybrid.Stats)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.of(cache))
}

func (t *pvTally) get(cache string) hybrid.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return *t.of(cache)
}

func (t *pvTally) events() *hybrid.Events {
	return &hybrid.Events{
		Hit: func(e hybrid.HitEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) {
				if e.Tier == hybrid.TierL1 {
					s.L1Hits++
				} else {
					s.L2Hits++
				}
			})
		},
		Miss: func(e hybrid.MissEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) {
				if e.Tier == hybrid.TierL1 {
					s.L1Misses++
				} else {
					s.L2Misses++
				}
			})
		},
		FactoryCall: func(e hybrid.FactoryCallEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) {
				s.FactoryCalls++
				if e.Err != nil {
					s.FactoryErrors++
				}
			})
		},
		FailSafe: func(e hybrid.FailSafeEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) { s.FailSafeActivations++ })
		},
		BackplaneMessage: func(e hybrid.BackplaneMessageEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) {
				switch {
				case e.Direction == hybrid.DirectionReceived:
					s.BackplaneReceived++
				case e.Err != nil:
					s.BackplaneErrors++
				default:
					s.BackplanePublished++
				}
			})
		},
		L2Error: func(e hybrid.L2ErrorEvent) {
			t.add(e.Cache, func(s *hybrid.Stats) { s.L2Errors++ })
		},
	}
}

// pvCounted is the part of Stats the tally mirrors.
func pvCounted(s hybrid.Stats) hybrid.Stats {
	return hybrid.Stats{
		L1Hits: s.L1Hits, L1Misses: s.L1Misses, L2Hits: s.L2Hits, L2Misses: s.L2Misses,
		FactoryCalls: s.FactoryCalls, FactoryErrors: s.FactoryErrors, FailSafeActivations: s.FailSafeActivations,
		BackplanePublished: s.BackplanePublished, BackplaneReceived: s.BackplaneReceived, BackplaneErrors: s.BackplaneErrors,
		L2Errors: s.L2Errors,
	}
}

// pvExpect fails the test unless both the tally of c and c.Stats() are
// want.
func pvExpect(t *testing.T, step string, tally *pvTally, c *hybrid.Cache, want hybrid.Stats) {
	t.Helper()
	if got := pvCounted(c.Stats()); got != want {
		t.Fatalf("%s: Stats of %q:\n got %+v\nwant %+v", step, c.Name(), got, want)
	}
	if got := tally.get(c.Name()); got != want {
		t.Fatalf("%s: events of %q:\n got %+v\nwant %+v", step, c.Name(), got, want)
	}
}

// pvDeterministic turns off what would add factory calls or timing of its
// own: jitter, eager refresh, the soft timeout, background L2 writes.
func pvDeterministic(s *strata.CacheSettings) {
	s.Entry.JitterMaxDuration = 0
	s.Entry.EagerRefreshThreshold = 0
	s.Entry.FactorySoftTimeout = 0
	s.Entry.BackgroundL2Operations = false
	s.WaitForInitialBackplaneSubscribe = 10 * time.Second
}

func TestHuntPVEventsAndStatsCountOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	t1, t2 := newPVTally(), newPVTally()
	p1 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet, Events: t1.events()})
	p2 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet, Events: t2.events()})
	u1, o1 := pvRegister(t, p1, "users", pvDeterministic), pvRegister(t, p1, "orders", pvDeterministic)
	u2, o2 := pvRegister(t, p2, "users", pvDeterministic), pvRegister(t, p2, "orders", pvDeterministic)
	calls := 0
	load := func(v string) hybrid.Factory[string] {
		return func(context.Context, *hybrid.FactoryContext[string]) (string, error) { calls++; return v, nil }
	}
	get := func(c *hybrid.Cache, key string, f hybrid.Factory[string], want string) {
		t.Helper()
		v, err := hybrid.GetOrSet(ctx, c, key, f)
		if err != nil || v != want {
			t.Fatalf("GetOrSet(%s/%s) = %q, %v; want %q", c.Name(), key, v, err, want)
		}
	}

	// Process 1: a cold GetOrSet, then two hits.
	get(u1, "k", load("v1"), "v1")
	pvExpect(t, "cold GetOrSet", t1, u1, hybrid.Stats{L1Misses: 1, L2Misses: 1, FactoryCalls: 1, BackplanePublished: 1})
	get(u1, "k", load("never"), "v1")
	if _, ok, err := hybrid.TryGet[string](ctx, u1, "k"); !ok || err != nil {
		t.Fatalf("TryGet: %v, %v", ok, err)
	}
	pvExpect(t, "two hits", t1, u1, hybrid.Stats{L1Hits: 2, L1Misses: 1, L2Misses: 1, FactoryCalls: 1, BackplanePublished: 1})
	if calls != 1 {
		t.Fatalf("factory calls = %d, want 1", calls)
	}

	// Process 2 heard that load's message (it held no copy: still one
	// message applied), then reads the value from Redis: no factory.
	redistest.Eventually(t, "process 2 to apply k's message", func() bool { return u2.Stats().BackplaneReceived == 1 })
	get(u2, "k", load("never"), "v1")
	get(u2, "b", load("b0"), "b0") // a copy for the barrier below
	pvExpect(t, "process 2 reads", t2, u2, hybrid.Stats{L1Misses: 2, L2Hits: 1, L2Misses: 1, FactoryCalls: 1, BackplanePublished: 1, BackplaneReceived: 1})
	// Process 1 heard process 2's factory result for "b" (it held no copy).
	redistest.Eventually(t, "process 1 to apply b's message", func() bool { return u1.Stats().BackplaneReceived == 1 })

	// A Set in process 1, then a barrier message after it: process 2
	// applies each exactly once, on "users" only.
	if err := hybrid.Set(ctx, u1, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, u1, "b", "b1"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, u2, "b", "b1") // one more L1 hit per poll: counted below
	waitValue(t, u2, "k", "v2")
	s2 := u2.Stats()
	if s2.BackplaneReceived != 3 || t2.get("users").BackplaneReceived != 3 {
		t.Fatalf("process 2 applied %d messages (%d events), want 3", s2.BackplaneReceived, t2.get("users").BackplaneReceived)
	}
	pvExpect(t, "Sets in process 1", t1, u1, hybrid.Stats{L1Hits: 2, L1Misses: 1, L2Misses: 1, FactoryCalls: 1, BackplanePublished: 3, BackplaneReceived: 1})
	if got := s2.L1Hits + s2.L1Misses; got < 4 {
		t.Fatalf("process 2 reads = %d", got)
	}
	if pvCounted(s2) != t2.get("users") {
		t.Fatalf("process 2: Stats %+v, events %+v", pvCounted(s2), t2.get("users"))
	}
	// "orders" saw none of it, in either process.
	for _, c := range []*hybrid.Cache{o1, o2} {
		if s := pvCounted(c.Stats()); s != (hybrid.Stats{}) {
			t.Fatalf("orders in a process counted %+v", s)
		}
	}
	if t1.get("orders") != (hybrid.Stats{}) || t2.get("orders") != (hybrid.Stats{}) {
		t.Fatalf("events named orders: %+v, %+v", t1.get("orders"), t2.get("orders"))
	}
}

// Fail-safe through the provider: the stale value is served once with one
// FailSafe event and one failed FactoryCall; the throttled copy answers
// the next call as a hit without a factory call or a second activation.
func TestHuntPVFailSafeCountsOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	tally := newPVTally()
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet, Events: tally.events()})
	const d = 150 * time.Millisecond
	c := pvRegister(t, p, "fs", pvDeterministic, func(s *strata.CacheSettings) {
		s.DisableBackplane = true
		s.Entry.Duration = d
		s.Entry.FailSafe = true
		s.Entry.FailSafeThrottleDuration = time.Hour
	})
	errDB := errors.New("db down")
	failing := func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "", errDB }
	v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "good", nil })
	if err != nil || v != "good" {
		t.Fatal(v, err)
	}
	stored := time.Now()
	pvExpect(t, "load", tally, c, hybrid.Stats{L1Misses: 1, L2Misses: 1, FactoryCalls: 1})
	// The entry's duration passes (a condition on the clock, not a stand-in
	// for one).
	redistest.Eventually(t, "the entry's duration to pass", func() bool { return time.Since(stored) > d+20*time.Millisecond })

	v, err = hybrid.GetOrSet(ctx, c, "k", failing)
	if err != nil || v != "good" {
		t.Fatalf("GetOrSet with the factory failing = %q, %v; want the stale value", v, err)
	}
	pvExpect(t, "fail-safe", tally, c, hybrid.Stats{L1Misses: 2, L2Misses: 2, FactoryCalls: 2, FactoryErrors: 1, FailSafeActivations: 1})
	v, err = hybrid.GetOrSet(ctx, c, "k", failing)
	if err != nil || v != "good" {
		t.Fatalf("GetOrSet within the throttle = %q, %v", v, err)
	}
	pvExpect(t, "throttled", tally, c, hybrid.Stats{L1Hits: 1, L1Misses: 2, L2Misses: 2, FactoryCalls: 2, FactoryErrors: 1, FailSafeActivations: 1})
}

// A factory that outlives the soft timeout with a stale value, then
// fails in the background: one FactoryTimeout (soft, fail-safe,
// background), one FailSafe activation (reason timeout), and when the
// background run ends one failed FactoryCall and no second activation
// (docs/observability.md: "a factory that fails after a soft timeout
// already served the stale value logs background factory failed
// instead").
func TestHuntPVSoftTimeoutCountsOnce(t *testing.T) {
	ctx := context.Background()
	tally := newPVTally()
	var mu sync.Mutex
	var timeouts []hybrid.FactoryTimeoutEvent
	var reasons []hybrid.FailSafeReason
	ev := tally.events()
	ev.FactoryTimeout = func(e hybrid.FactoryTimeoutEvent) { mu.Lock(); timeouts = append(timeouts, e); mu.Unlock() }
	fs := ev.FailSafe
	ev.FailSafe = func(e hybrid.FailSafeEvent) {
		mu.Lock()
		reasons = append(reasons, e.Reason)
		mu.Unlock()
		fs(e)
	}
	p := newProvider(t, strata.Settings{Logger: quiet, Events: ev}) // production defaults, memory only
	const d = 150 * time.Millisecond
	c := pvRegister(t, p, "soft", func(s *strata.CacheSettings) {
		s.Entry.Duration = d
		s.Entry.JitterMaxDuration = 0
		s.Entry.EagerRefreshThreshold = 0
		s.Entry.FactorySoftTimeout = 20 * time.Millisecond
		s.Entry.FactoryHardTimeout = 0
	})
	v, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "old", nil })
	if err != nil || v != "old" {
		t.Fatal(v, err)
	}
	stored := time.Now()
	redistest.Eventually(t, "the entry's duration to pass", func() bool { return time.Since(stored) > d+20*time.Millisecond })
	release := make(chan struct{})
	v, err = hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		<-release
		return "", errors.New("db down")
	})
	if err != nil || v != "old" {
		t.Fatalf("GetOrSet at the soft timeout = %q, %v; want the stale value", v, err)
	}
	close(release)
	redistest.Eventually(t, "the background factory to end", func() bool { return c.Stats().FactoryCalls == 2 })
	// A later read: the throttled stale copy, no new factory run.
	v, err = hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "new", nil })
	if err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	if s.FailSafeActivations != 1 || s.FactoryTimeouts != 1 || s.FactoryCalls != 2 || s.FactoryErrors != 1 {
		t.Fatalf("Stats after one soft timeout and a failed background run (then read %q): %+v", v, s)
	}
	if got := tally.get("soft"); got != pvCounted(s) {
		t.Fatalf("events %+v, Stats %+v", got, pvCounted(s))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(timeouts) != 1 || timeouts[0].Kind != hybrid.TimeoutSoft || !timeouts[0].FailSafe || !timeouts[0].Background {
		t.Fatalf("FactoryTimeout events: %+v", timeouts)
	}
	if len(reasons) != 1 || reasons[0] != hybrid.FailSafeFactoryTimeout {
		t.Fatalf("FailSafe reasons: %v", reasons)
	}
}
