package hybrid_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/strata-cache/strata/hybrid"
)

// TestAutoClone: with AutoClone every reader gets its own copy, so a
// reader that changes its slice cannot change what the next one reads;
// the callers of one shared load get distinct copies too.
func TestAutoClone(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{AutoClone: true}})
	if err := hybrid.Set(ctx, c, "k", []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	a, _ := mustGet[[]int](t, c, "k")
	a[0] = 99
	if b, _ := mustGet[[]int](t, c, "k"); b[0] != 1 {
		t.Fatalf("a reader's change reached the next reader: %v", b)
	}
	// The callers of one load.
	release := make(chan struct{})
	var wg sync.WaitGroup
	got := make([][]int, 4)
	for i := range got {
		wg.Go(func() {
			v, err := hybrid.GetOrSet(ctx, c, "shared", func(context.Context, *hybrid.FactoryContext[[]int]) ([]int, error) {
				<-release
				return []int{7}, nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	close(release)
	wg.Wait()
	got[0][0] = 0
	for i, v := range got[1:] {
		if v[0] != 7 {
			t.Fatalf("caller %d shares caller 0's copy: %v", i+1, v)
		}
	}
	// A read as another type is still a mismatch, naming the stored type.
	if _, _, err := hybrid.TryGet[string](ctx, c, "k"); !errors.Is(err, hybrid.ErrTypeMismatch) {
		t.Fatalf("read as string: %v, want ErrTypeMismatch", err)
	}
}

// TestWithoutAutoCloneValuesAreShared documents the trap: without
// AutoClone, readers share one value.
func TestWithoutAutoCloneValuesAreShared(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, hybrid.Options{})
	if err := hybrid.Set(ctx, c, "k", []int{1}); err != nil {
		t.Fatal(err)
	}
	a, _ := mustGet[[]int](t, c, "k")
	a[0] = 99
	if b, _ := mustGet[[]int](t, c, "k"); b[0] != 99 {
		t.Fatalf("got %v: values are shared without AutoClone (the documented trap)", b)
	}
}
