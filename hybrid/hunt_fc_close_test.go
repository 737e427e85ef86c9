package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntCloseEndsWaitingCallers: callers waiting on a load (one that
// leads on its own goroutine, one joining with a factory timeout) when
// the cache closes: the factory's context is cancelled, Close returns once
// the factory does, every caller returns with an error (the cancellation
// or ErrClosed), nothing is stored, and later calls get ErrClosed.
func TestHuntCloseEndsWaitingCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := hybrid.New(hybrid.Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		honours := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}
		errs := make(chan error, 2)
		go func() { // no ctx to cancel, no timeouts: the load runs here
			_, err := hybrid.GetOrSet(ctx, c, "k", honours)
			errs <- err
		}()
		synctest.Wait()
		go func() {
			_, err := hybrid.GetOrSet(ctx, c, "k", honours, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FactoryHardTimeout = time.Hour }))
			errs <- err
		}()
		synctest.Wait()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for range 2 {
			if err := <-errs; !errors.Is(err, hybrid.ErrClosed) && !errors.Is(err, context.Canceled) {
				t.Fatalf("a caller waiting at Close: err = %v, want ErrClosed or context.Canceled", err)
			}
		}
		if _, err := hybrid.GetOrSet(ctx, c, "k", fusionValue("v")); !errors.Is(err, hybrid.ErrClosed) {
			t.Fatalf("GetOrSet after Close: %v", err)
		}
		if _, _, err := hybrid.TryGet[string](ctx, c, "k"); !errors.Is(err, hybrid.ErrClosed) {
			t.Fatalf("TryGet after Close: %v", err)
		}
		if err := c.Expire(ctx, "k"); !errors.Is(err, hybrid.ErrClosed) {
			t.Fatalf("Expire after Close: %v", err)
		}
	})
}

// TestHuntCloseCancelsEagerRefresh: Close cancels a running eager refresh
// (docs/eager-refresh.md: "it is cancelled on Close") and waits for it.
func TestHuntCloseCancelsEagerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := hybrid.New(hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		if err != nil {
			t.Fatal(err)
		}
		fcWantGetOrSet(t, c, "k", fusionValue("a"), "a")
		time.Sleep(6 * time.Second)
		cancelled := make(chan struct{})
		fcWantGetOrSet(t, c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			<-ctx.Done()
			close(cancelled)
			return "", ctx.Err()
		}, "a")
		synctest.Wait()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-cancelled:
		default:
			t.Fatal("Close returned before the eager refresh's factory saw its cancellation")
		}
	})
}

// TestHuntCloseWithFailSafeStale: a caller waits on a load with a stale
// fail-safe value when the cache closes; the factory honours its
// cancellation. The caller gets the stale value or an error, never a zero
// value with a nil error.
func TestHuntCloseWithFailSafeStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := hybrid.New(hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		type res struct {
			v   string
			err error
		}
		got := make(chan res, 1)
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
				<-ctx.Done()
				return "", ctx.Err()
			})
			got <- res{v, err}
		}()
		synctest.Wait()
		c.Close()
		r := <-got
		if r.err == nil && r.v != "old" {
			t.Fatalf("GetOrSet at Close = %q, nil; want the stale value or an error", r.v)
		}
	})
}
