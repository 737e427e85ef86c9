package hybrid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// TestHuntRedisRemoveDuringLoadKeepsOldValueOutOfL2: node 1 loads a key
// with a slow factory; the key is removed (on node 1) while the factory
// runs. The load's older value must not reach Redis: node 2, which never
// held the key, calls its own factory afterwards.
func TestHuntRedisRemoveDuringLoadKeepsOldValueOutOfL2(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute}
	n1 := node(t, srv.FastClient(t, ""), e)
	n2 := node(t, srv.FastClient(t, ""), e)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		hybrid.GetOrSet(ctx, n1, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			close(started)
			<-release
			return "old", nil
		})
	}()
	<-started
	if err := n1.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	n1.Close() // waits for n1's background writes
	fcWantGetOrSet(t, n2, "k", fusionValue("new"), "new")
}

// TestHuntRedisSetDuringBackgroundCompletion: a factory times out (hard
// timeout, background completion) on node 1; a Set of the key on node 1
// follows; then the factory completes. Its older value loses in memory and
// in Redis (docs/timeouts.md: "a newer Set meanwhile wins"): node 2 reads
// the Set's value.
func TestHuntRedisSetDuringBackgroundCompletion(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute}
	n1 := node(t, srv.FastClient(t, ""), e)
	n2 := node(t, srv.FastClient(t, ""), e)
	ctx := context.Background()
	release, finished := make(chan struct{}), make(chan struct{})
	slow := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		defer close(finished)
		<-release
		return "late", nil
	}
	_, err := hybrid.GetOrSet(ctx, n1, "k", slow, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.FactoryHardTimeout = 50 * time.Millisecond }))
	if !errors.Is(err, hybrid.ErrFactoryTimeout) {
		t.Fatalf("err = %v, want ErrFactoryTimeout", err)
	}
	if err := hybrid.Set(ctx, n1, "k", "set"); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-finished
	n1.Close() // waits for the background completion and its writes
	fcWantGetOrSet(t, n2, "k", fusionValue("factory"), "set")
}

// TestHuntRedisBackgroundCompletionReachesOtherNode: the factory times out
// on node 1 (no stale value: ErrFactoryTimeout) and completes in the
// background: its value is stored in Redis too, so node 2 gets it without
// calling its own factory.
func TestHuntRedisBackgroundCompletionReachesOtherNode(t *testing.T) {
	srv := redistest.Start(t)
	e := hybrid.EntryOptions{Duration: time.Minute, FactoryHardTimeout: 50 * time.Millisecond}
	n1 := node(t, srv.FastClient(t, ""), e)
	n2 := node(t, srv.FastClient(t, ""), e)
	ctx := context.Background()
	release := make(chan struct{})
	slow := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		<-release
		return "late", nil
	}
	if _, err := hybrid.GetOrSet(ctx, n1, "k", slow); !errors.Is(err, hybrid.ErrFactoryTimeout) {
		t.Fatalf("err = %v, want ErrFactoryTimeout", err)
	}
	close(release)
	n1.Close() // waits for the background completion
	fcWantGetOrSet(t, n2, "k", fusionValue("n2"), "late")
}
