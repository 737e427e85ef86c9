package hybrid_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// L2SoftTimeout bounds how long a load that has a stale value waits for a
// hung distributed tier in all: for the invalidation records it has not
// read yet (the cache's Clear record, the entry's tags) and for the entry
// itself, not a hard timeout for the records and then a soft one. The node
// here has only written its entries, so it has never read the records.
// The hard timeout is a minute: the loads must end long before it, with the
// stale values; loads after the first do not ask for the records again
// while the tier does not answer; a batch does not wait a timeout per key.
func TestL2SoftTimeoutCoversRecordReads(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	c := hungWithStale(t, keys, 100*time.Millisecond)
	ctx := context.Background()
	fail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "", errDB }
	withinSoft(t, func() error {
		for _, k := range keys[:3] {
			v, err := hybrid.GetOrSet(ctx, c, k, fail)
			if err != nil || v != "old-"+k {
				return fmt.Errorf("GetOrSet(%s) = %q, %v; want the stale value", k, v, err)
			}
		}
		return staleMany(c, keys[3:], nil)
	})
}

// The same when a batch is the first read of the hung tier: its keys share
// one budget for the records and their entries, as a single key does, so
// the batch waits the soft timeout once, not once for the records and
// again for the entries. (A generous bound: 1.8 soft timeouts.)
func TestL2SoftTimeoutCoversRecordReadsBatch(t *testing.T) {
	keys := []string{"a", "b", "c"}
	const soft = time.Second
	stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
	for _, read := range []struct {
		name string
		opts []hybrid.Option
	}{{"GetOrSetMany", nil}, {"TryGetMany", []hybrid.Option{stale}}} {
		t.Run(read.name, func(t *testing.T) {
			t.Parallel()
			c := hungWithStale(t, keys, soft)
			withinSoft(t, func() error {
				began := time.Now()
				if err := staleMany(c, keys, read.opts); err != nil {
					return err
				}
				if took := time.Since(began); took > soft*18/10 {
					return fmt.Errorf("%s took %v: the soft timeout (%v) twice, for the records and then the entries", read.name, took, soft)
				}
				return nil
			})
		})
	}
}

// hungWithStale returns a node whose memory holds expired copies "old-"+k
// of keys, each with a tag "t-"+k, and whose distributed tier hangs (a
// paused proxy). The node has only written its entries, so it has never
// read the invalidation records. L2SoftTimeout is soft, the hard timeout a
// minute.
func hungWithStale(t *testing.T, keys []string, soft time.Duration) *hybrid.Cache {
	t.Helper()
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	entry := hybrid.EntryOptions{Duration: 50 * time.Millisecond, FailSafe: true, FailSafeMaxDuration: time.Hour,
		L2SoftTimeout: soft, L2HardTimeout: time.Minute}
	c := node(t, srv.FastClient(t, proxy.Addr()), entry)
	for _, k := range keys {
		if err := hybrid.Set(context.Background(), c, k, "old-"+k, hybrid.WithTags("t-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	redistest.Eventually(t, "the entries to expire", func() bool {
		_, ok := mustGet[string](t, c, keys[len(keys)-1])
		return !ok
	})
	proxy.Pause()
	t.Cleanup(proxy.Resume)
	return c
}

// staleMany reads keys with a batch: GetOrSetMany (a failing factory) when
// opts is nil, else TryGetMany with opts. Each must answer "old-"+k.
func staleMany(c *hybrid.Cache, keys []string, opts []hybrid.Option) error {
	ctx := context.Background()
	var res []hybrid.Result[string]
	var err error
	name := "TryGetMany"
	if opts == nil {
		name = "GetOrSetMany"
		res, err = hybrid.GetOrSetMany(ctx, c, keys, func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) {
			return nil, errDB
		})
	} else {
		res, err = hybrid.TryGetMany[string](ctx, c, keys, opts...)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	for i, k := range keys {
		if res[i].Err != nil || res[i].Value != "old-"+k {
			return fmt.Errorf("%s(%s) = %q, %v; want the stale value", name, k, res[i].Value, res[i].Err)
		}
	}
	return nil
}

// withinSoft runs reads, which must end long before the L2 hard timeout.
func withinSoft(t *testing.T, reads func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- reads() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second): // the hard timeout is a minute, the client's read timeout 10 s
		t.Fatal("the reads waited for the L2 hard timeout: the soft timeout did not bound the record reads")
	}
}

// TryGet without AllowStaleOnRead cannot answer with the stale copy it
// holds: its read of a slow distributed tier gets the hard timeout, not
// the soft one, and finds the newer entry there. TryGetMany the same.
func TestTryGetSoftTimeoutOnlyWithAllowStale(t *testing.T) {
	for _, read := range []struct {
		name string
		get  func(t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) (string, bool)
	}{
		{"TryGet", mustGet[string]},
		{"TryGetMany", func(t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) (string, bool) {
			t.Helper()
			res, err := hybrid.TryGetMany[string](context.Background(), c, []string{key}, opts...)
			if err != nil || res[0].Err != nil {
				t.Fatalf("TryGetMany(%q): %v, %v", key, err, res[0].Err)
			}
			return res[0].Value, res[0].Found
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			srv := redistest.Start(t)
			proxy := srv.Proxy(t)
			entry := hybrid.EntryOptions{Duration: 50 * time.Millisecond, FailSafe: true, FailSafeMaxDuration: time.Hour,
				L2SoftTimeout: 20 * time.Millisecond, L2HardTimeout: 10 * time.Second}
			a := node(t, srv.FastClient(t, proxy.Addr()), entry)
			b := node(t, srv.FastClient(t, ""), entry)
			ctx := context.Background()
			// staleCopy leaves a holding an expired copy of key (old) and
			// Redis a newer, fresh entry (newer) that a has not heard of.
			staleCopy := func(key, old, newer string) {
				if err := hybrid.Set(ctx, a, key, old); err != nil {
					t.Fatal(err)
				}
				redistest.Eventually(t, "a's copy of "+key+" to expire", func() bool {
					_, ok := mustGet[string](t, a, key)
					return !ok
				})
				if err := hybrid.Set(ctx, b, key, newer, hybrid.WithDuration(time.Hour)); err != nil {
					t.Fatal(err) // in Redis; a has no backplane to hear of it
				}
			}
			staleCopy("k", "old", "new")
			proxy.SetLatency(200 * time.Millisecond) // slower than the soft timeout
			if v, ok := read.get(t, a, "k"); !ok || v != "new" {
				t.Fatalf("%s = %q, %v; want the newer entry from Redis (the hard timeout applies)", read.name, v, ok)
			}
			// With AllowStaleOnRead the soft timeout applies: the stale copy answers.
			proxy.SetLatency(0)
			staleCopy("j", "j-old", "j-newer")
			proxy.SetLatency(200 * time.Millisecond)
			stale := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })
			if v, ok := read.get(t, a, "j", stale); !ok || v != "j-old" {
				t.Fatalf("%s with AllowStaleOnRead = %q, %v; want the stale j-old at the soft timeout", read.name, v, ok)
			}
		})
	}
}
