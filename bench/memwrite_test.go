package bench

import (
	"context"
	"fmt"
	"testing"
)

// memWriteKeys is the number of distinct new keys a run of
// BenchmarkMemoryWrite writes before it starts over on a new cache (timer
// stopped), so that every write is of a key the cache does not hold.
const memWriteKeys = 1 << 18

// memWriteContenders are the memory-only caches of BenchmarkMemoryWrite.
var memWriteContenders = []struct {
	name  string
	build func(env) (contender, error)
}{
	{"strata", newStrata},
	{"otter", newOtter},
	{"ristretto", newRistretto},
	{"ristretto-nodrop", newRistrettoNoDrop},
}

// BenchmarkMemoryWrite measures, memory only, on one goroutine: op=set, a
// Set of a key the cache does not hold; op=getorset-cold, a GetOrSet (a
// loader call) of such a key, whose loader returns at once. (ristretto has
// no loader: its GetOrLoad is Get, then the loader and Set; a Set its
// buffer refuses counts in dropped/op; ristretto-nodrop waits for its buffer
// and tries again instead, so that no write is lost, as Strata does.)
func BenchmarkMemoryWrite(b *testing.B) {
	k := sharedKeyspace()
	keys := make([]string, memWriteKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("new:%07d", i)
	}
	v := k.values[0]
	load := func(context.Context, string) (Value, error) { return v, nil }
	ctx := context.Background()
	for _, op := range []string{"set", "getorset-cold"} {
		for _, mc := range memWriteContenders {
			b.Run("op="+op+"/cache="+mc.name, func(b *testing.B) {
				c := newContender(b, mc.build, env{load: load})
				i, dropped := 0, 0
				b.ReportAllocs()
				for b.Loop() {
					if i == len(keys) {
						b.StopTimer()
						c = newContender(b, mc.build, env{load: load})
						i = 0
						b.StartTimer()
					}
					if op == "set" {
						if err := c.Set(ctx, keys[i], v); err != nil {
							dropped++ // ristretto's buffer refused it
						}
					} else if _, err := c.GetOrLoad(ctx, keys[i]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(dropped)/float64(b.N), "dropped/op")
			})
		}
	}
}
