package hybrid_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// Eager refresh from a batch hit: only the keys past their threshold are
// refreshed, in one background batch; a failed refresh keeps the entries
// (no refresh on every hit), and they expire as written.
func TestHuntBatchEagerRefreshOnlyDueKeysAndFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		var mu sync.Mutex
		var asked [][]string
		var fail atomic.Bool
		gen := "v1"
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, slices.Clone(bc.Keys()))
			if fail.Load() {
				return nil, errDB
			}
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = gen + "-" + k
			}
			return out, nil
		}
		mustMany(t, c, []string{"old1", "old2"}, f)
		time.Sleep(6 * time.Second) // old1, old2 past their threshold
		mustMany(t, c, []string{"young"}, f)
		mu.Lock()
		gen = "v2"
		mu.Unlock()
		fail.Store(true)
		res := mustMany(t, c, []string{"young", "old1", "old2"}, f)
		wantValue(t, res[1], "old1 (hit, refresh in the background)", "v1-old1")
		synctest.Wait()
		mu.Lock()
		if len(asked) != 3 || !slices.Equal(asked[2], []string{"old1", "old2"}) {
			t.Fatalf("factory asked %q; want the third call for [old1 old2] only", asked)
		}
		mu.Unlock()
		// Failed: the entries stay as they were, no new refresh on the next hits.
		for range 3 {
			res = mustMany(t, c, []string{"old1", "old2"}, f)
			wantValue(t, res[0], "old1 (kept after a failed refresh)", "v1-old1")
		}
		synctest.Wait()
		mu.Lock()
		if len(asked) != 3 {
			t.Fatalf("factory asked %d times, want 3 (a failed refresh is not retried on every hit)", len(asked))
		}
		mu.Unlock()
		time.Sleep(5 * time.Second) // old1, old2 expired (written at 0, 10s)
		fail.Store(false)
		res = mustMany(t, c, []string{"old1", "young"}, f)
		wantValue(t, res[0], "old1 (reloaded at expiry)", "v2-old1")
		wantValue(t, res[1], "young (hit)", "v1-young")
	})
}

// A GetOrSet and a GetOrSetMany of a key whose entry expired while a batch
// eager refresh of it ran join that refresh: one factory call in all.
func TestHuntBatchEagerRefreshJoinedAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
			Duration: 10 * time.Second, EagerRefreshThreshold: 0.5}})
		ctx := context.Background()
		var calls atomic.Int64
		release := make(chan struct{})
		f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			if calls.Add(1) == 2 {
				<-release
			}
			out := map[string]string{}
			for _, k := range bc.Keys() {
				out[k] = "gen" + string(rune('0'+calls.Load())) + "-" + k
			}
			return out, nil
		}
		mustMany(t, c, []string{"k"}, f)
		time.Sleep(6 * time.Second)
		res := mustMany(t, c, []string{"k"}, f) // starts the eager refresh, which blocks
		wantValue(t, res[0], "k (hit)", "gen1-k")
		time.Sleep(5 * time.Second) // the entry expired; the refresh still runs
		got := make(chan string, 2)
		go func() {
			v, err := hybrid.GetOrSet(ctx, c, "k", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
				calls.Add(100)
				return "single", nil
			})
			if err != nil {
				v = err.Error()
			}
			got <- v
		}()
		go func() {
			res, err := hybrid.GetOrSetMany(ctx, c, []string{"k"}, f)
			switch {
			case err != nil:
				got <- err.Error()
			case res[0].Err != nil:
				got <- res[0].Err.Error()
			default:
				got <- res[0].Value
			}
		}()
		synctest.Wait() // both wait on the refresh
		close(release)
		for range 2 {
			if v := <-got; v != "gen2-k" {
				t.Fatalf("a caller got %q, want the refresh's gen2-k", v)
			}
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("factory calls = %d, want 2 (the load and the refresh)", n)
		}
	})
}
