package hybrid_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/backplanetest"
	"github.com/strata-cache/strata/internal/redistest"
)

// recorder collects events as short strings ("hit l1 k") for comparison.
type recorder struct {
	mu  sync.Mutex
	got []string
	ev  []any // the events themselves
}

func (r *recorder) add(e any, s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

// take returns the events recorded so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got, r.ev = nil, nil
	return got
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.got, s)
}

func (r *recorder) events() *hybrid.Events {
	return &hybrid.Events{
		Hit:  func(e hybrid.HitEvent) { r.add(e, fmt.Sprint("hit ", e.Tier, " ", e.Key)) },
		Miss: func(e hybrid.MissEvent) { r.add(e, fmt.Sprint("miss ", e.Tier, " ", e.Key)) },
		FactoryCall: func(e hybrid.FactoryCallEvent) {
			s := fmt.Sprint("factory ", e.Key)
			if e.Err != nil {
				s += " err"
			}
			if e.Eager {
				s += " eager"
			}
			r.add(e, s)
		},
		FailSafe:     func(e hybrid.FailSafeEvent) { r.add(e, fmt.Sprint("failsafe ", e.Key, " ", e.Reason)) },
		EagerRefresh: func(e hybrid.EagerRefreshEvent) { r.add(e, "eager "+e.Key) },
		L2Error: func(e hybrid.L2ErrorEvent) {
			r.add(e, fmt.Sprint("l2error ", e.Op, " ", e.Key, " ", e.Class))
		},
		CircuitBreaker: func(e hybrid.CircuitBreakerEvent) {
			r.add(e, fmt.Sprint("breaker open=", e.Open))
		},
		BackplaneMessage: func(e hybrid.BackplaneMessageEvent) {
			s := fmt.Sprint("bp ", e.Direction, " ", e.Kind, " ", e.Key)
			if e.Err != nil {
				s += " err"
			}
			r.add(e, s)
		},
		BackplaneGap: func(e hybrid.BackplaneGapEvent) { r.add(e, "gap "+e.Cache) },
	}
}

func wantEvents(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got events %q, want %q", what, got, want)
	}
}

func TestEventsHitsMissesFactory(t *testing.T) {
	t.Parallel()
	var r recorder
	c := newCache(t, hybrid.Options{Name: "users", Events: r.events()})
	ctx := context.Background()
	var k counter

	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
	wantEvents(t, "first GetOrSet", r.take(), "miss l1 k", "factory k")
	hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
	wantEvents(t, "second GetOrSet", r.take(), "hit l1 k")
	mustGet[string](t, c, "k")
	wantEvents(t, "TryGet of a held key", r.take(), "hit l1 k")
	mustGet[string](t, c, "absent")
	wantEvents(t, "TryGet of an absent key", r.take(), "miss l1 absent")
	mustGet[string](t, c, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	wantEvents(t, "TryGet skipping L1", r.take())

	hybrid.GetOrSet(ctx, c, "bad", k.factory("", errDB))
	wantEvents(t, "failing factory", r.take(), "miss l1 bad", "factory bad err")
}

func TestEventsCarryCacheNameAndDuration(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var got []hybrid.FactoryCallEvent
		var mu sync.Mutex
		ev := &hybrid.Events{FactoryCall: func(e hybrid.FactoryCallEvent) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		}}
		c := newCache(t, hybrid.Options{Name: "orders", Events: ev})
		defer c.Close()
		hybrid.GetOrSet(context.Background(), c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[int]) (int, error) {
			time.Sleep(250 * time.Millisecond)
			return 1, nil
		})
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0].Cache != "orders" || got[0].Key != "k" || got[0].Duration != 250*time.Millisecond || got[0].Err != nil {
			t.Fatalf("got %+v, want one call of orders/k lasting 250ms without error", got)
		}
	})
}

func TestEventsFailSafe(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		c := newCache(t, hybrid.Options{Events: r.events(), Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond,
		}})
		defer c.Close()
		ctx := context.Background()
		var k counter
		hybrid.GetOrSet(ctx, c, "k", k.factory("old", nil))
		hybrid.GetOrSet(ctx, c, "slow", k.factory("old", nil))
		r.take()
		time.Sleep(2 * time.Second)

		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)); err != nil || v != "old" {
			t.Fatalf("fail-safe: got %q, %v", v, err)
		}
		synctest.Wait() // the event follows the delivery
		wantEvents(t, "factory error", r.take(), "miss l1 k", "factory k err", "failsafe k factory_error")

		slow := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(time.Second)
			return "new", nil
		}
		if v, err := hybrid.GetOrSet(ctx, c, "slow", slow); err != nil || v != "old" {
			t.Fatalf("soft timeout: got %q, %v", v, err)
		}
		synctest.Wait()
		wantEvents(t, "soft timeout", r.take(), "miss l1 slow", "failsafe slow factory_timeout")
		time.Sleep(time.Second) // the factory completes in the background
		synctest.Wait()
		wantEvents(t, "background completion", r.take(), "factory slow")
	})
}

func TestEventsEagerRefresh(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		c := newCache(t, hybrid.Options{Events: r.events(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5,
		}})
		defer c.Close()
		ctx := context.Background()
		var k counter
		hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
		r.take()
		time.Sleep(6 * time.Second)
		hybrid.GetOrSet(ctx, c, "k", k.factory("v2", nil))
		synctest.Wait()
		got := r.take()
		// The refresh runs in the background: its factory call may come
		// before or after the hit that started it.
		slices.Sort(got)
		wantEvents(t, "hit past the threshold", got, "eager k", "factory k eager", "hit l1 k")
	})
}

func TestEventsBackplane(t *testing.T) {
	t.Parallel()
	hub, l2 := backplane.NewMemoryHub(), &flakyL2{}
	var r1, r2 recorder
	n1 := newCache(t, hybrid.Options{Name: "app", Events: r1.events(), L2: l2, Backplane: hub.Backplane("ch")})
	newCache(t, hybrid.Options{Name: "app", Events: r2.events(), L2: l2, Backplane: hub.Backplane("ch")})
	ctx := context.Background()
	if err := hybrid.Set(ctx, n1, "k", "v"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "node 1 after Set", r1.take(), "bp sent set k")
	redistest.Eventually(t, "node 2 to receive the message", func() bool { return r2.has("bp received set k") })
	n1.Remove(ctx, "k")
	wantEvents(t, "node 1 after Remove", r1.take(), "bp sent remove k")
	redistest.Eventually(t, "node 2 to receive the removal", func() bool { return r2.has("bp received remove k") })
	backplanetest.SimulateGap(hub, "ch")
	redistest.Eventually(t, "node 2 to see the gap", func() bool { return r2.has("gap app") })
}

// flakyL2 is a distributed tier in memory that fails with a connection
// error while down is set, and blocks until its context ends while slow is.
type flakyL2 struct {
	mu         sync.Mutex
	m          map[string][]byte
	down, slow atomic.Bool
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func (f *flakyL2) fault(ctx context.Context) error {
	if f.slow.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.down.Load() {
		return errRefused
	}
	return nil
}

func (f *flakyL2) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key], nil
}

func (f *flakyL2) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := f.fault(ctx); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string][]byte)
	}
	f.m[key] = value
	return true, nil
}

func (f *flakyL2) Delete(ctx context.Context, key string) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
	return nil
}

func TestEventsL2AndBreaker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l2 := &flakyL2{}
		var r recorder
		o := hybrid.Options{Events: r.events(), L2: l2, Logger: quietLogger(), L2CircuitBreakerDuration: 10 * time.Second}
		writer := newCache(t, hybrid.Options{L2: l2, Logger: quietLogger()})
		defer writer.Close()
		c := newCache(t, o)
		defer c.Close()
		ctx := context.Background()
		hybrid.Set(ctx, writer, "k", "v")

		mustGet[string](t, c, "k")
		wantEvents(t, "TryGet of a key in L2", r.take(), "miss l1 k", "hit l2 k")
		mustGet[string](t, c, "absent")
		wantEvents(t, "TryGet of an absent key", r.take(), "miss l1 absent", "miss l2 absent")
		var k counter
		hybrid.GetOrSet(ctx, c, "new", k.factory("v", nil))
		wantEvents(t, "GetOrSet of an absent key", r.take(), "miss l1 new", "miss l2 new", "factory new")

		l2.down.Store(true)
		mustGet[string](t, c, "x")
		wantEvents(t, "L2 down", r.take(), "miss l1 x", "l2error get x transient", "breaker open=true", "miss l2 x")
		mustGet[string](t, c, "x")
		wantEvents(t, "breaker open", r.take(), "miss l1 x", "miss l2 x")

		l2.down.Store(false)
		time.Sleep(time.Second) // the next probe
		mustGet[string](t, c, "x")
		wantEvents(t, "probe succeeds", r.take(), "miss l1 x", "breaker open=false", "miss l2 x")

		// The breaker's duration runs out without a success in between:
		// closed, then opened again.
		l2.down.Store(true)
		mustGet[string](t, c, "y")
		r.take()
		time.Sleep(10 * time.Second)
		mustGet[string](t, c, "y")
		wantEvents(t, "failure after the duration", r.take(),
			"miss l1 y", "breaker open=false", "l2error get y transient", "breaker open=true", "miss l2 y")
		l2.down.Store(false)
		time.Sleep(10 * time.Second)
		mustGet[string](t, c, "y")
		r.take()

		l2.slow.Store(true)
		mustGet[string](t, c, "z", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.L2HardTimeout = time.Second }))
		wantEvents(t, "L2 timeout", r.take(), "miss l1 z", "l2error get z timeout", "miss l2 z")
		l2.slow.Store(false)
	})
}

func TestEventsRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	var r recorder
	writer := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{})
	n := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{}, func(o *hybrid.Options) {
		o.Events = r.events()
		o.L2CircuitBreakerDuration = time.Hour
	})
	if err := hybrid.Set(ctx, writer, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, n, "k"); !ok || v != "v" {
		t.Fatalf("got %q, %v; want v from L2", v, ok)
	}
	wantEvents(t, "read from Redis", r.take(), "miss l1 k", "hit l2 k")

	srv.Kill(t)
	mustGet[string](t, n, "x")
	wantEvents(t, "Redis killed", r.take(), "miss l1 x", "l2error get x transient", "breaker open=true", "miss l2 x")
}

func TestEventsPanickingHook(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	boom := func() { panic("boom") }
	ev := &hybrid.Events{
		Hit:              func(hybrid.HitEvent) { boom() },
		Miss:             func(hybrid.MissEvent) { boom() },
		FactoryCall:      func(hybrid.FactoryCallEvent) { boom() },
		FailSafe:         func(hybrid.FailSafeEvent) { boom() },
		BackplaneMessage: func(hybrid.BackplaneMessageEvent) { boom() },
	}
	c := newCache(t, hybrid.Options{Events: ev, Logger: logger, Backplane: backplane.NewMemoryHub().Backplane("ch"),
		Entry: hybrid.EntryOptions{FailSafe: true}})
	ctx := context.Background()
	var k counter
	for range 3 {
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil)); err != nil || v != "v" {
			t.Fatalf("GetOrSet: got %q, %v", v, err)
		}
	}
	if err := hybrid.Set(ctx, c, "k", "w"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	c.Expire(ctx, "k")
	if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB)); err != nil || v != "w" {
		t.Fatalf("fail-safe: got %q, %v", v, err)
	}
	if v, ok := mustGet[string](t, c, "k"); !ok || v != "w" {
		t.Fatalf("TryGet: got %q, %v", v, ok)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "event hook panicked"); n != 1 {
		t.Fatalf("logged %d hook panics, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Fatalf("the log does not show the panic's value:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Callbacks never run under the cache's locks: a callback that calls back
// into the cache for the same key (which takes the memory tier's write
// lock and the stampede protection's shard lock of that key) completes.
func TestEventsReenterCache(t *testing.T) {
	t.Parallel()
	var c *hybrid.Cache
	var depth atomic.Int32
	var calls atomic.Int64
	reenter := func(key string) {
		if depth.Add(1) == 1 && !strings.HasPrefix(key, "__") {
			calls.Add(1)
			ctx := context.Background()
			hybrid.Set(ctx, c, key, "from hook")
			hybrid.TryGet[string](ctx, c, key)
			hybrid.GetOrSet(ctx, c, key+"-other", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				return "x", nil
			})
		}
		depth.Add(-1)
	}
	ev := &hybrid.Events{
		Hit:              func(e hybrid.HitEvent) { reenter(e.Key) },
		Miss:             func(e hybrid.MissEvent) { reenter(e.Key) },
		FactoryCall:      func(e hybrid.FactoryCallEvent) { reenter(e.Key) },
		FailSafe:         func(e hybrid.FailSafeEvent) { reenter(e.Key) },
		EagerRefresh:     func(e hybrid.EagerRefreshEvent) { reenter(e.Key) },
		BackplaneMessage: func(e hybrid.BackplaneMessageEvent) { reenter(e.Key) },
	}
	hub := backplane.NewMemoryHub()
	c = newCache(t, hybrid.Options{Events: ev, Backplane: hub.Backplane("ch"), Entry: hybrid.EntryOptions{FailSafe: true}})
	other := newCache(t, hybrid.Options{Backplane: hub.Backplane("ch")})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		var k counter
		hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
		hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil))
		c.Expire(ctx, "k")
		hybrid.GetOrSet(ctx, c, "k", k.factory("", errDB))
		hybrid.Set(ctx, other, "k", "remote")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: a callback ran under a lock of the cache")
	}
	if calls.Load() == 0 {
		t.Fatal("no callback ran")
	}
}

func TestEventsAllNil(t *testing.T) {
	t.Parallel()
	c := newCache(t, hybrid.Options{Events: &hybrid.Events{}})
	ctx := context.Background()
	var k counter
	if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("v", nil)); err != nil || v != "v" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestEventsCopiedByNew(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	ev := &hybrid.Events{Hit: func(hybrid.HitEvent) { hits.Add(1) }}
	c := newCache(t, hybrid.Options{Events: ev})
	ev.Hit = func(hybrid.HitEvent) { panic("changed after New") }
	ctx := context.Background()
	hybrid.Set(ctx, c, "k", 1)
	mustGet[int](t, c, "k")
	if hits.Load() != 1 {
		t.Fatalf("hits: got %d, want 1", hits.Load())
	}
}

func TestEventEnumsString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{hybrid.TierL1.String(), "l1"},
		{hybrid.TierL2.String(), "l2"},
		{hybrid.FailSafeFactoryError.String(), "factory_error"},
		{hybrid.FailSafeFactoryTimeout.String(), "factory_timeout"},
		{hybrid.L2ErrorTransient.String(), "transient"},
		{hybrid.L2ErrorConfig.String(), "config"},
		{hybrid.L2ErrorOther.String(), "other"},
		{hybrid.L2ErrorTimeout.String(), "timeout"},
		{hybrid.DirectionSent.String(), "sent"},
		{hybrid.DirectionReceived.String(), "received"},
		{hybrid.Tier(0).String(), "unknown"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestMemoryOnlyBackplaneAnnouncesSet: without a distributed tier, a Set
// and a factory result are announced too (docs/backplane.md), so the other
// instances drop their copies.
func TestMemoryOnlyBackplaneAnnouncesSet(t *testing.T) {
	t.Parallel()
	hub := backplane.NewMemoryHub()
	a := newCache(t, hybrid.Options{Name: "app", Backplane: hub.Backplane("ch")})
	b := newCache(t, hybrid.Options{Name: "app", Backplane: hub.Backplane("ch")})
	ctx := context.Background()
	if err := hybrid.Set(ctx, b, "k", "old"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "k", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.GetOrSet(ctx, a, "f", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	if got := a.Stats().BackplanePublished; got != 2 {
		t.Fatalf("BackplanePublished = %d, want 2 (the Set and the factory result)", got)
	}
	redistest.Eventually(t, "node b to drop its old copy", func() bool {
		v, ok := mustGet[string](t, b, "k")
		return !ok || v != "old"
	})
}
