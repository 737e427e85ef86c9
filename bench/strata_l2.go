package bench

import (
	"github.com/strata-cache/strata/hybrid"
)

// newStrataL2 is Strata with Redis as L2 (hybrid.NewRedisL2 on the
// benchmark's client, so with the same client options as every peer) and
// every read and write skipping L1, for the L2 hit benchmark. It builds the
// cache with hybrid.New rather than the provider so that the Redis tier is
// the only difference from the memory-only contenders (no backplane).
func newStrataL2(e env) (contender, error) {
	if e.rdb == nil {
		return nil, errNeedsRedis
	}
	c, err := hybrid.New(hybrid.Options{
		Name:         "bench-l2",
		L1MaxEntries: capacity,
		Entry:        hybrid.EntryOptions{Duration: ttl},
		L2:           hybrid.NewRedisL2(e.rdb),
	})
	if err != nil {
		return nil, err
	}
	return wrapStrata(c, e.load, skipL1), nil
}

// skipL1 makes a call bypass the memory tier, read and write.
var skipL1 = hybrid.WithOptions(func(o *hybrid.EntryOptions) {
	o.SkipL1Read = true
	o.SkipL1Write = true
})
