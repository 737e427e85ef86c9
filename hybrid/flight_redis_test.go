package hybrid_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// A load detached from its caller (factory timeouts) on a cache with a
// distributed tier runs on a background worker: the semantics are those of
// a load on its own goroutine. Many keys at once each load once; a factory's
// panic reaches the caller that started the load, and the key is not
// poisoned; the callers of one key share one load; Close waits for the
// loads (goleak checks that no worker is left).
func TestDetachedLoadOnWorker(t *testing.T) {
	srv := redistest.Start(t)
	entry := hybrid.EntryOptions{Duration: time.Minute, FactorySoftTimeout: time.Minute, FactoryHardTimeout: 2 * time.Minute}
	c := node(t, srv.Client(t), entry)
	ctx := context.Background()

	// Many cold keys at once, more than there are workers (64).
	var loads atomic.Int64
	var wg sync.WaitGroup
	for g := range 100 {
		wg.Go(func() {
			for i := range 5 {
				key := "cold-" + string(rune('a'+g%26)) + string(rune('a'+g/26)) + string(rune('0'+i))
				v, err := hybrid.GetOrSet(ctx, c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
					loads.Add(1)
					return key, nil
				})
				if err != nil || v != key {
					t.Errorf("GetOrSet(%s) = %q, %v", key, v, err)
				}
			}
		})
	}
	wg.Wait()
	if n := loads.Load(); n != 500 {
		t.Fatalf("%d loads for 500 cold keys", n)
	}

	// One key, many callers: one load, shared.
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	var shared atomic.Int64
	slow := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		shared.Add(1)
		once.Do(func() { close(entered) })
		<-release
		return "slow", nil
	}
	results := make(chan string, 10)
	wg.Go(func() {
		v, _ := hybrid.GetOrSet(ctx, c, "shared", slow)
		results <- v
	})
	<-entered // the load runs and holds the key: the callers below join it
	for range 9 {
		wg.Go(func() {
			v, _ := hybrid.GetOrSet(ctx, c, "shared", slow)
			results <- v
		})
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "slow" {
			t.Errorf("a caller of the shared load got %q", v)
		}
	}
	if n := shared.Load(); n != 1 {
		t.Errorf("%d loads of one key by 10 callers, want 1", n)
	}

	// A factory that panics: its caller panics with the value.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the factory's panic", r)
			}
		}()
		_, _ = hybrid.GetOrSet(ctx, c, "panicky", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			panic("boom")
		})
		t.Error("GetOrSet returned after its factory panicked")
	}()
	v, err := hybrid.GetOrSet(ctx, c, "panicky", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "fine", nil })
	if err != nil || v != "fine" {
		t.Fatalf("after the panic: %q, %v; want fine", v, err)
	}

	// Close waits for a load running on a worker.
	running := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		_, err := hybrid.GetOrSet(ctx, c, "at-close", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			close(running)
			<-ctx.Done() // cancelled by Close
			close(finished)
			return "", ctx.Err()
		})
		if err == nil {
			t.Error("a load cancelled by Close succeeded")
		}
	}()
	<-running
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before the load on a worker ended")
	}
	if _, err := hybrid.GetOrSet(ctx, c, "after-close", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "x", nil }); !errors.Is(err, hybrid.ErrClosed) {
		t.Errorf("GetOrSet after Close: %v; want ErrClosed", err)
	}
}

// nodeAfterGap returns a node over Redis with a backplane whose
// subscription has just reconnected (a gap): its hit path cannot vouch for
// an entry until it has read the cache's Clear record again, so reads take
// the slow path, where loads are shared.
func nodeAfterGap(t *testing.T) *hybrid.Cache {
	t.Helper()
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	bp, err := backplane.NewRedis(srv.FastClient(t, px.Addr()), backplane.RedisOptions{Channel: backplane.ChannelName("", "app:"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := node(t, srv.Client(t), hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) {
		o.Backplane, o.WaitForInitialBackplaneSubscribe = bp, 10*time.Second
	})
	px.ResetAll() // a gap: the subscription reconnects
	redistest.Eventually(t, "the backplane gap", func() bool { return c.Stats().BackplaneGaps > 0 })
	return c
}

// getOrSetBeside runs a GetOrSet of key (its factory returns "a new load")
// while an older load of key waits for release, and returns its value. If
// the GetOrSet joined the older load, it gets that load's value once
// release is closed after 10 s. It closes release.
func getOrSetBeside(c *hybrid.Cache, key string, release chan struct{}) string {
	got := make(chan string, 1)
	go func() {
		v, _ := hybrid.GetOrSet(context.Background(), c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "a new load", nil
		})
		got <- v
	}()
	var v string
	select {
	case v = <-got:
	case <-time.After(10 * time.Second): // it joined the older load, which waits for release
	}
	close(release)
	if v == "" {
		v = <-got
	}
	return v
}

// A GetOrSet that begins after this process's Set of the key returned does
// not join a load of the key that began before the Set (it would get that
// load's older value): Set releases the key's flight for later callers.
// Here the hit path cannot vouch for the Set's entry (after a backplane
// gap the node reads the cache's Clear record again first), so the caller
// takes the slow path, where the older load is running.
func TestGetOrSetAfterSetDoesNotJoinOlderLoad(t *testing.T) {
	c := nodeAfterGap(t)
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	slow := make(chan string, 1)
	go func() {
		v, _ := hybrid.GetOrSet(ctx, c, "j", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			close(entered)
			<-release
			return "from the older load", nil
		})
		slow <- v
	}()
	<-entered
	if err := hybrid.Set(ctx, c, "j", "y"); err != nil {
		t.Fatal(err)
	}
	if v := getOrSetBeside(c, "j", release); v != "y" {
		t.Fatalf("GetOrSet after Set(y) returned %q; want y", v)
	}
	<-slow
}

// As TestGetOrSetAfterSetDoesNotJoinOlderLoad, with a batch's load as the
// older one: a write releases the batch's claim of the key too.
func TestGetOrSetAfterSetDoesNotJoinOlderBatch(t *testing.T) {
	c := nodeAfterGap(t)
	ctx := context.Background()
	for _, write := range []struct {
		name string
		do   func(key string) error
		want string
	}{
		{"Set", func(key string) error { return hybrid.Set(ctx, c, key, "y") }, "y"},
		{"SetMany", func(key string) error { return hybrid.SetMany(ctx, c, map[string]string{key: "y"}) }, "y"},
		{"Remove", func(key string) error { return c.Remove(ctx, key) }, "a new load"},
		{"RemoveMany", func(key string) error { return c.RemoveMany(ctx, []string{key}) }, "a new load"},
	} {
		t.Run(write.name, func(t *testing.T) {
			key := "j-" + write.name
			entered, release := make(chan struct{}), make(chan struct{})
			slow := make(chan error, 1)
			go func() {
				_, err := hybrid.GetOrSetMany(ctx, c, []string{key, "other-" + key}, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
					close(entered)
					<-release
					out := map[string]string{}
					for _, k := range bc.Keys() {
						out[k] = "from the older batch"
					}
					return out, nil
				})
				slow <- err
			}()
			<-entered
			if err := write.do(key); err != nil {
				t.Fatal(err)
			}
			if v := getOrSetBeside(c, key, release); v != write.want {
				t.Fatalf("GetOrSet after %s returned %q; want %q", write.name, v, write.want)
			}
			if err := <-slow; err != nil {
				t.Fatal(err)
			}
		})
	}
}
