package hybrid

import (
	"context"
	"fmt"
	"testing"
)

// TestRemoveByTagOneSnapshot: RemoveByTag with many tags (duplicates
// included) installs one invalidation snapshot for the call, not one per
// tag: each snapshot copies the map of every tag ever invalidated, so one
// per tag made a call with n tags cost O(n²) (16,000 tags took seconds),
// and the tags were not invalidated together.
func TestRemoveByTagOneSnapshot(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	tags := make([]string, 0, 1001)
	for i := range 1000 {
		tags = append(tags, fmt.Sprint("t", i))
	}
	tags = append(tags, "t7") // a duplicate
	for _, tag := range []string{"t0", "t7", "t999"} {
		if err := Set(ctx, c, "k-"+tag, 1, WithTags(tag)); err != nil {
			t.Fatal(err)
		}
	}
	before := c.inv.Load().gen
	if err := c.RemoveByTag(ctx, tags...); err != nil {
		t.Fatal(err)
	}
	if got := c.inv.Load().gen - before; got != 1 {
		t.Fatalf("RemoveByTag of %d tags installed %d snapshots, want 1", len(tags), got)
	}
	if n := len(c.inv.Load().tags); n != 1000 {
		t.Fatalf("snapshot holds %d tags, want 1000", n)
	}
	if tags[1000] != "t7" || tags[0] != "t0" {
		t.Fatal("RemoveByTag changed the caller's slice")
	}
	for _, tag := range []string{"t0", "t7", "t999"} {
		if _, ok, err := TryGet[int](ctx, c, "k-"+tag); ok || err != nil {
			t.Fatalf("k-%s after RemoveByTag: ok %v, err %v; want a miss", tag, ok, err)
		}
	}
}
