package bench

import (
	"errors"

	"github.com/strata-cache/strata/hybrid"
)

// errStrataL2NotWired says that hybrid.New cannot take a Redis tier yet; the
// Strata L2 benchmark skips itself on it.
var errStrataL2NotWired = errors.New("strata L2 not wired yet")

// newStrataL2 is Strata with Redis as L2 (on the benchmark's client) and
// every read and write skipping L1, for the L2 hit benchmark.
//
// TODO: wire e.rdb into hybrid.New once the engine exposes its L2 options
// (the design is not settled); until then this returns errStrataL2NotWired.
func newStrataL2(e env) (contender, error) {
	if e.rdb == nil {
		return nil, errNeedsRedis
	}
	_ = wrapStrata // used here once L2 is wired, with skipL1 below
	_ = skipL1
	return nil, errStrataL2NotWired
}

// skipL1 makes a call bypass the memory tier, read and write.
var skipL1 = hybrid.WithOptions(func(o *hybrid.EntryOptions) {
	o.SkipL1Read = true
	o.SkipL1Write = true
})
