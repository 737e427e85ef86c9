package bench

import (
	"errors"

	"github.com/strata-cache/strata/hybrid"
)

// errStrataL2NotWired says that hybrid.New cannot take a Redis tier; the
// Strata L2 benchmark skips itself on it. Kept for the day the L2 wiring
// changes shape again: return it from newStrataL2 rather than break the suite.
var errStrataL2NotWired = errors.New("strata L2 not wired yet")

// newStrataL2 is Strata with Redis as L2 (hybrid.NewRedisL2 on the
// benchmark's client, so with the same client options as every peer) and
// every read and write skipping L1, for the L2 hit benchmark.
//
// TODO: this follows the engine's L2 wiring as of this writing
// (Options.L2 = hybrid.NewRedisL2(client)); revisit when the provider's
// RedisSettings are the documented way in.
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
