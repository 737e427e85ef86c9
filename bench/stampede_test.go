package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// stampedeCallers is the number of goroutines that ask for one cold key.
	stampedeCallers = 1000
	// loadDelay is how long the loader takes.
	loadDelay = 10 * time.Millisecond
	// cancelAfter is when the first caller's context is cancelled, in the
	// cancelled variant, counted from the start of its load.
	cancelAfter = time.Millisecond
)

// stampedeContenders have a read-through with stampede protection.
var stampedeContenders = []struct {
	name  string
	build func(env) (contender, error)
}{
	{"strata", newStrata},
	{"otter", newOtter},
	{"sturdyc", newSturdyc},
	{"eko-loadable", newEkoLoadable},
	{"go-redis-cache", newGoRedisCache},
}

// BenchmarkStampede: 1,000 goroutines call GetOrLoad at once on a fresh key
// per iteration; the loader sleeps 10 ms (or returns early with ctx.Err()
// when its context ends, as a database call does). Reports loads/op (1 is
// perfect) and delivered-frac (the fraction of callers that got the value).
func BenchmarkStampede(b *testing.B) {
	benchStampede(b, false)
}

// BenchmarkStampedeCancelFirst is BenchmarkStampede where the caller that
// starts the load has its context cancelled 1 ms into the load; the other
// 999 callers' contexts never end. delivered-frac counts the 999 only.
func BenchmarkStampedeCancelFirst(b *testing.B) {
	benchStampede(b, true)
}

func benchStampede(b *testing.B, cancelFirst bool) {
	rdb := redisFor(b)
	for _, sc := range stampedeContenders {
		b.Run("cache="+sc.name, func(b *testing.B) {
			// -count runs this function again on the same Redis: the keys
			// must be new each time, or a key loaded by the previous run
			// would be a hit and never start a load.
			run := time.Now().UnixNano()
			var loads atomic.Int64
			load := func(ctx context.Context, key string) (Value, error) {
				loads.Add(1)
				t := time.NewTimer(loadDelay)
				defer t.Stop()
				select {
				case <-t.C:
					return newValue(42), nil
				case <-ctx.Done():
					return Value{}, ctx.Err()
				}
			}
			c := newContender(b, sc.build, env{rdb: rdb, load: load})
			bg := context.Background()
			var delivered, asked atomic.Int64
			iter := 0
			b.ReportAllocs()
			for b.Loop() {
				key := fmt.Sprintf("bench:stampede:%d:%s:%d", run, sc.name, iter)
				iter++
				callers := stampedeCallers
				var wg sync.WaitGroup
				release := func() {}
				if cancelFirst {
					// The first caller starts the load alone; the others
					// come once it runs, and it is cancelled 1 ms in.
					before := loads.Load()
					ctx, cancel := context.WithCancel(bg)
					wg.Go(func() { _, _ = c.GetOrLoad(ctx, key) })
					waitForLoad(b, &loads, before)
					stop := time.AfterFunc(cancelAfter, cancel)
					release = func() { stop.Stop(); cancel() }
					callers--
				}
				start := make(chan struct{})
				for range callers {
					wg.Go(func() {
						<-start
						v, err := c.GetOrLoad(bg, key)
						if err == nil && v.ID == 42 {
							delivered.Add(1)
						}
					})
				}
				asked.Add(int64(callers))
				close(start)
				wg.Wait()
				release()
			}
			b.ReportMetric(float64(loads.Load())/float64(b.N), "loads/op")
			b.ReportMetric(float64(delivered.Load())/float64(asked.Load()), "delivered-frac")
		})
	}
}

// waitForLoad waits until loads has moved past before: the first caller's
// load has started.
func waitForLoad(b *testing.B, loads *atomic.Int64, before int64) {
	deadline := time.Now().Add(5 * time.Second)
	for loads.Load() == before {
		if time.Now().After(deadline) {
			b.Fatal("the first caller's load did not start within 5s")
		}
		runtime.Gosched()
	}
}
