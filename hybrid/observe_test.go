package hybrid_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

type reqKey struct{}

// reqCtx is a caller's context carrying a value a hook can look for.
func reqCtx(id string) context.Context { return context.WithValue(context.Background(), reqKey{}, id) }

func reqOf(ctx context.Context) string {
	if ctx == nil {
		return "<nil>"
	}
	s, _ := ctx.Value(reqKey{}).(string)
	return s
}

// ctxRecorder records, per event, the request id of its Ctx.
type ctxRecorder struct {
	mu  sync.Mutex
	got []string
}

func (r *ctxRecorder) add(what string, ctx context.Context) {
	r.mu.Lock()
	r.got = append(r.got, what+"@"+reqOf(ctx))
	r.mu.Unlock()
}

func (r *ctxRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func (r *ctxRecorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.got, s)
}

func (r *ctxRecorder) events() *hybrid.Events {
	return &hybrid.Events{
		Hit:          func(e hybrid.HitEvent) { r.add("hit "+e.Tier.String(), e.Ctx) },
		Miss:         func(e hybrid.MissEvent) { r.add("miss "+e.Tier.String(), e.Ctx) },
		FactoryCall:  func(e hybrid.FactoryCallEvent) { r.add("factory", e.Ctx) },
		FailSafe:     func(e hybrid.FailSafeEvent) { r.add("failsafe "+e.Reason.String(), e.Ctx) },
		EagerRefresh: func(e hybrid.EagerRefreshEvent) { r.add("eager", e.Ctx) },
		L2Error:      func(e hybrid.L2ErrorEvent) { r.add("l2error "+e.Op+" "+e.Class.String(), e.Ctx) },
		BackplaneMessage: func(e hybrid.BackplaneMessageEvent) {
			r.add("bp "+e.Direction.String()+" "+e.Kind.String(), e.Ctx)
		},
		StaleServed: func(e hybrid.StaleServedEvent) { r.add("stale "+e.Key, e.Ctx) },
		FactoryTimeout: func(e hybrid.FactoryTimeoutEvent) {
			r.add(fmt.Sprintf("timeout %s %s failsafe=%v background=%v", e.Key, e.Kind, e.FailSafe, e.Background), e.Ctx)
		},
		Recovery: func(e hybrid.RecoveryEvent) { r.add("recovery "+e.Action.String()+" "+e.Key, e.Ctx) },
	}
}

// TestEventsCarryCallerContext: every event of an operation with a caller
// carries the caller's ctx; background work without one carries a non-nil
// context.
func TestEventsCarryCallerContext(t *testing.T) {
	t.Parallel()
	hub, l2 := backplane.NewMemoryHub(), &flakyL2{}
	var r ctxRecorder
	c := newCache(t, hybrid.Options{Name: "app", Events: r.events(), L2: l2, Backplane: hub.Backplane("ch"),
		Logger: quietLogger(), L2CircuitBreakerDuration: time.Hour})
	// other's Set messages without their entry: c's read after one goes to L2.
	other := newCache(t, hybrid.Options{Name: "app", L2: l2, Backplane: hub.Backplane("ch"), Logger: quietLogger(),
		DisableBackplaneValues: true})
	var k counter

	hybrid.GetOrSet(reqCtx("r1"), c, "k", k.factory("v", nil))
	wantEvents(t, "GetOrSet miss", r.take(), "miss l1@r1", "miss l2@r1", "factory@r1", "bp sent set@r1")
	hybrid.GetOrSet(reqCtx("r2"), c, "k", k.factory("v", nil))
	wantEvents(t, "GetOrSet hit", r.take(), "hit l1@r2")
	hybrid.Set(reqCtx("r3"), other, "k", "w")
	redistest.Eventually(t, "the message of the other node", func() bool { return r.has("bp received set@") })
	r.take()
	mustGetCtx[string](t, reqCtx("r4"), c, "k")
	wantEvents(t, "TryGet from L2", r.take(), "miss l1@r4", "hit l2@r4")

	l2.down.Store(true)
	mustGetCtx[string](t, reqCtx("r5"), c, "x")
	wantEvents(t, "L2 down", r.take(), "miss l1@r5", "l2error get transient@r5", "miss l2@r5")
	hybrid.Set(reqCtx("r6"), c, "y", "v")
	wantEvents(t, "Set with L2 down", r.take(), "recovery queued y@r6")
}

func mustGetCtx[T any](t *testing.T, ctx context.Context, c *hybrid.Cache, key string, opts ...hybrid.Option) (T, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[T](ctx, c, key, opts...)
	if err != nil {
		t.Fatalf("TryGet(%q): %v", key, err)
	}
	return v, ok
}

// TestEventsStaleTimeoutEager: StaleServed, FactoryTimeout (soft with a
// fallback, hard without), FailSafe and EagerRefresh, each with the
// caller's ctx, and the counters of Stats that go with them.
func TestEventsStaleTimeoutEager(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var r ctxRecorder
		c := newCache(t, hybrid.Options{Events: r.events(), Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FailSafeMaxDuration: time.Hour,
			FactorySoftTimeout: 100 * time.Millisecond, FactoryHardTimeout: time.Second,
		}})
		defer c.Close()
		var k counter
		hybrid.GetOrSet(reqCtx("a"), c, "k", k.factory("old", nil))
		r.take()
		time.Sleep(2 * time.Second) // k is stale now

		v, ok, err := hybrid.TryGet[string](reqCtx("b"), c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))
		if err != nil || !ok || v != "old" {
			t.Fatalf("TryGet with AllowStaleOnRead: %q, %v, %v", v, ok, err)
		}
		wantEvents(t, "stale read", r.take(), "miss l1@b", "stale k@b")

		slow := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(3 * time.Second)
			return "new", nil
		}
		if v, err := hybrid.GetOrSet(reqCtx("c"), c, "k", slow); err != nil || v != "old" {
			t.Fatalf("soft timeout: %q, %v", v, err)
		}
		wantEvents(t, "soft timeout", r.take(), "miss l1@c", "failsafe factory_timeout@c",
			"timeout k soft failsafe=true background=true@c")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		wantEvents(t, "background completion", r.take(), "factory@c")

		if _, err := hybrid.GetOrSet(reqCtx("d"), c, "fresh-key", slow); err == nil {
			t.Fatal("hard timeout without a fallback: no error")
		}
		wantEvents(t, "hard timeout", r.take(), "miss l1@d", "timeout fresh-key hard failsafe=false background=true@d")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		r.take()

		s := c.Stats()
		want := hybrid.Stats{L1Misses: 4, FactoryCalls: 3, FactoryTimeouts: 2, FailSafeActivations: 1, StaleServed: 1}
		if s != want {
			t.Fatalf("Stats:\n got %+v\nwant %+v", s, want)
		}
	})
}

func TestEventsEagerRefreshContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var r ctxRecorder
		c := newCache(t, hybrid.Options{Events: r.events(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5,
		}})
		defer c.Close()
		var k counter
		hybrid.GetOrSet(reqCtx("a"), c, "k", k.factory("v", nil))
		r.take()
		time.Sleep(6 * time.Second)
		hybrid.GetOrSet(reqCtx("b"), c, "k", k.factory("v2", nil))
		synctest.Wait()
		got := r.take()
		slices.Sort(got)
		wantEvents(t, "eager refresh", got, "eager@b", "factory@b", "hit l1@b")
		if s := c.Stats(); s.EagerRefreshes != 1 || s.FactoryCalls != 2 || s.L1Hits != 1 || s.L1Misses != 1 {
			t.Fatalf("Stats: %+v", s)
		}
	})
}

// TestEventsRecovery: a change queued while the tier is down, replayed
// when it is back, then the queue drained; a change dropped when the queue
// is full. Logs: the breaker's duration readable, its closing and the
// drain logged.
func TestEventsRecovery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l2 := &flakyL2{}
		var r ctxRecorder
		var logs bytes.Buffer
		var logMu sync.Mutex
		c := newCache(t, hybrid.Options{Events: r.events(), L2: l2, AutoRecoveryMaxItems: 1,
			L2CircuitBreakerDuration: 30 * time.Second,
			Logger:                   slog.New(slog.NewTextHandler(lockedWriter{w: &logs, mu: &logMu}, nil))})
		defer c.Close()
		l2.down.Store(true)
		hybrid.Set(reqCtx("a"), c, "k1", "v")
		hybrid.Set(reqCtx("b"), c, "k2", "v")
		wantEvents(t, "L2 down", r.take(), "l2error set transient@a", "recovery queued k1@a", "recovery dropped k2@b")
		l2.down.Store(false)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		wantEvents(t, "L2 back", r.take(), "recovery replayed k1@a", "recovery drained @")
		s := c.Stats()
		if s.RecoveryQueued != 1 || s.RecoveryDropped != 1 || s.Recovered != 1 || s.RecoveryPending != 0 || s.L2Errors != 1 {
			t.Fatalf("Stats: %+v", s)
		}
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		for _, want := range []string{
			`msg="l2 unavailable, circuit breaker open" cache=default op=set key=k1 for=30s`,
			`level=INFO msg="l2 available again, circuit breaker closed"`,
			`level=INFO msg="auto-recovery queue drained" cache=default replayed=1`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("logs lack %q:\n%s", want, out)
			}
		}
	})
}

// TestStatsCountReads: every read is one L1 hit or miss, and an L2 read one
// L2 hit or miss; concurrent hits are all counted (the striped counter
// loses none).
func TestStatsCountReads(t *testing.T) {
	t.Parallel()
	l2 := &flakyL2{}
	writer := newCache(t, hybrid.Options{L2: l2, Logger: quietLogger()})
	c := newCache(t, hybrid.Options{L2: l2, Logger: quietLogger()})
	ctx := context.Background()
	var k counter
	hybrid.Set(ctx, writer, "inl2", "v")
	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))    // L1 miss, L2 miss, factory
	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))    // L1 hit
	mustGet[string](t, c, "inl2")                        // L1 miss, L2 hit
	mustGet[string](t, c, "inl2")                        // L1 hit
	mustGet[string](t, c, "absent")                      // L1 miss, L2 miss
	hybrid.GetOrSet(ctx, c, "bad", k.factory("", errDB)) // L1 miss, L2 miss, factory error
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, ok, _ := hybrid.TryGet[string](ctx, c, "k"); !ok {
					t.Error("miss")
					return
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	want := hybrid.Stats{L1Hits: 2 + goroutines*each, L1Misses: 4, L2Hits: 1, L2Misses: 3, FactoryCalls: 2, FactoryErrors: 1}
	if s != want {
		t.Fatalf("Stats:\n got %+v\nwant %+v", s, want)
	}
}

// TestEventsL2Call: every call to the distributed tier is reported with
// its duration, its error and the caller's ctx.
func TestEventsL2Call(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l2 := &flakyL2{}
		var mu sync.Mutex
		var got []string
		ev := &hybrid.Events{L2Call: func(e hybrid.L2CallEvent) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s %s %v err=%v @%s", e.Op, e.Key, e.Duration, e.Err != nil, reqOf(e.Ctx)))
			mu.Unlock()
		}}
		c := newCache(t, hybrid.Options{Events: ev, L2: l2, Logger: quietLogger(), DisableL2CircuitBreaker: true})
		defer c.Close()
		var k counter
		hybrid.GetOrSet(reqCtx("a"), c, "k", k.factory("v", nil))
		l2.slow.Store(true)
		mustGetCtx[string](t, reqCtx("b"), c, "x", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.L2HardTimeout = time.Second }))
		l2.slow.Store(false)
		l2.down.Store(true)
		c.Remove(reqCtx("c"), "k")
		mu.Lock()
		defer mu.Unlock()
		wantEvents(t, "L2 calls", got, "get k 0s err=false @a", "set k 0s err=false @a",
			"get x 1s err=true @b", "remove k 0s err=true @c")
	})
}

// TestStatsCountBatches: batch reads count per key, as single reads; a
// batch factory run is one factory call.
func TestStatsCountBatches(t *testing.T) {
	t.Parallel()
	l2 := &flakyL2{}
	writer := newCache(t, hybrid.Options{L2: l2, Logger: quietLogger()})
	c := newCache(t, hybrid.Options{L2: l2, Logger: quietLogger()})
	ctx := context.Background()
	hybrid.Set(ctx, writer, "inl2", "v")
	hybrid.Set(ctx, c, "inl1", "v")
	before := c.Stats()
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		m := map[string]string{}
		for _, k := range bc.Keys() {
			m[k] = "loaded"
		}
		return m, nil
	}
	if _, err := hybrid.GetOrSetMany(ctx, c, []string{"inl1", "inl2", "new1", "new2"}, f); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.TryGetMany[string](ctx, c, []string{"inl1", "absent"}); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	s.L1Hits -= before.L1Hits
	want := hybrid.Stats{L1Hits: 2, L1Misses: 4, L2Hits: 1, L2Misses: 3, FactoryCalls: 1}
	if s != want {
		t.Fatalf("Stats:\n got %+v\nwant %+v", s, want)
	}
}
