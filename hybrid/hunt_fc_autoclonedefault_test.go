package hybrid_test

import (
	"context"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// TestHuntAutoCloneFailSafeDefaultIsACopy: with AutoClone, the fail-safe
// default value is handed to each caller as its own copy like any other
// value read: a caller that changes it does not change what the next
// caller gets.
func TestHuntAutoCloneFailSafeDefaultIsACopy(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger(), Entry: hybrid.EntryOptions{FailSafe: true, AutoClone: true}})
	ctx := context.Background()
	def := hybrid.WithFailSafeDefault([]string{"unknown"})
	v, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[[]string](errDB), def)
	if err != nil || len(v) != 1 || v[0] != "unknown" {
		t.Fatalf("first = %v, %v", v, err)
	}
	v[0] = "changed by a caller"
	w, err := hybrid.GetOrSet(ctx, c, "k", fusionFail[[]string](errDB), def)
	if err != nil || len(w) != 1 || w[0] != "unknown" {
		t.Fatalf("second caller got %v, %v; want [unknown]: the default is shared between callers despite AutoClone", w, err)
	}
}
