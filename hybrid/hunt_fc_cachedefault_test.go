package hybrid_test

import (
	"context"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntCacheLevelFailSafeDefaultValue: FailSafeDefaultValue set on the
// cache's EntryOptions (where WithFailSafeDefault, a per-call Option,
// cannot be used) to a value of the type read is returned when the factory
// fails without a stale value (options.go: "a value of another type than
// the one read is ignored": this one is of the type read).
func TestHuntCacheLevelFailSafeDefaultValue(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{
		FailSafe: true, FailSafeDefaultValue: "unknown",
	}})
	v, err := hybrid.GetOrSet(context.Background(), c, "k", fusionFail[string](errDB))
	if err != nil || v != "unknown" {
		t.Fatalf("GetOrSet = %q, %v; want the cache's default value", v, err)
	}
}
