package hybrid_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// A hung distributed tier never fails a cold GetOrSet that the factory can
// answer (SPEC: an L2 error never fails a GetOrSet that can be answered
// another way), also when the L2 hard timeout is longer than the factory
// hard timeout, as in strata.ProductionDefaults (2 s and 1.5 s; scaled
// down here): the load's reads of the tier end in time to leave the
// factory half of FactoryHardTimeout. Each case has a cache of its own,
// since the first timeout opens the circuit breaker and later reads skip
// the tier.
func TestHungL2LeavesTheFactoryTime(t *testing.T) {
	entry := hybrid.EntryOptions{Duration: time.Minute, FailSafe: true, FailSafeMaxDuration: time.Hour,
		FactorySoftTimeout: 20 * time.Millisecond, FactoryHardTimeout: 600 * time.Millisecond,
		L2SoftTimeout: 400 * time.Millisecond, L2HardTimeout: time.Minute, BackgroundL2Operations: true}
	ctx := context.Background()
	sync := func(c *hybrid.Cache) (string, error) {
		return hybrid.GetOrSet(ctx, c, "cold", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return "from-db", nil
		}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false }))
	}
	for _, read := range []struct {
		name string
		get  func(c *hybrid.Cache) (string, error)
	}{
		{"GetOrSetSyncWrite", sync},
		{"GetOrSet", func(c *hybrid.Cache) (string, error) {
			return hybrid.GetOrSet(ctx, c, "cold", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				return "from-db", nil
			})
		}},
		{"GetOrSetMany", func(c *hybrid.Cache) (string, error) {
			res, err := hybrid.GetOrSetMany(ctx, c, []string{"cold"}, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
				return map[string]string{"cold": "from-db"}, nil
			})
			if err != nil {
				return "", err
			}
			return res[0].Value, res[0].Err
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			proxy := srv.Proxy(t)
			c := node(t, srv.FastClient(t, proxy.Addr()), entry)
			proxy.Pause()
			t.Cleanup(proxy.Resume)
			began := time.Now()
			v, err := read.get(c)
			if err != nil || v != "from-db" {
				t.Fatalf("%s = %q, %v after %v; want the factory's value", read.name, v, err, time.Since(began))
			}
		})
	}
}

// TestHungL2SyncWriteIsNoFactoryTimeout: with synchronous L2 writes, a
// load's write to a hung tier may outlast the callers' factory timers
// although the factory answered at once. The callers then get the
// factory's value, which memory holds already, as a plain result: not
// ErrFactoryTimeout (as they did without fail-safe), and not a fail-safe
// activation counted as a factory timeout (as they did with it).
func TestHungL2SyncWriteIsNoFactoryTimeout(t *testing.T) {
	ctx := context.Background()
	reads := map[string]func(c *hybrid.Cache, calls *atomic.Int32) (string, error){
		"GetOrSet": func(c *hybrid.Cache, calls *atomic.Int32) (string, error) {
			return hybrid.GetOrSet(ctx, c, "cold", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				calls.Add(1)
				return "from-db", nil
			})
		},
		"GetOrSetMany": func(c *hybrid.Cache, calls *atomic.Int32) (string, error) {
			res, err := hybrid.GetOrSetMany(ctx, c, []string{"cold"}, func(context.Context, *hybrid.BatchContext[string]) (map[string]string, error) {
				calls.Add(1)
				return map[string]string{"cold": "from-db"}, nil
			})
			if err != nil {
				return "", err
			}
			return res[0].Value, res[0].Err
		},
	}
	for name, read := range reads {
		for _, failSafe := range []bool{false, true} {
			t.Run(fmt.Sprint(name, "/failsafe=", failSafe), func(t *testing.T) {
				t.Parallel()
				entry := hybrid.EntryOptions{Duration: time.Minute, FailSafe: failSafe, FailSafeMaxDuration: time.Hour,
					FactoryHardTimeout: 400 * time.Millisecond, L2HardTimeout: time.Minute}
				srv := redistest.Start(t)
				proxy := srv.Proxy(t)
				c := node(t, srv.FastClient(t, proxy.Addr()), entry)
				proxy.Pause()
				t.Cleanup(proxy.Resume)
				var calls atomic.Int32
				v, err := read(c, &calls)
				if err != nil || v != "from-db" {
					t.Fatalf("%s = %q, %v; want the factory's value", name, v, err)
				}
				st := c.Stats()
				if calls.Load() != 1 || st.FactoryTimeouts != 0 || st.FailSafeActivations != 0 {
					t.Errorf("factory calls %d, FactoryTimeouts %d, FailSafeActivations %d; want 1, 0, 0", calls.Load(), st.FactoryTimeouts, st.FailSafeActivations)
				}
			})
		}
	}
}
