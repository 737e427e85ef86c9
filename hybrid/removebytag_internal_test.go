package hybrid

import (
	"context"
	"fmt"
	"testing"
	"time"
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

// TestRemoveByTagForgetsOldTags: a tag invalidated longer than tagTTL ago
// (every entry it could concern has physically expired) is forgotten by
// an invalidation, at most once per tagPruneInterval, so that per-entity
// tags do not grow the map, and the copy each invalidation makes of it,
// without bound. A recent tag is kept.
func TestRemoveByTagForgetsOldTags(t *testing.T) {
	c, err := New(Options{Entry: EntryOptions{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	old := time.Now().UnixNano() - int64(tagTTL(&c.entry)) - int64(time.Hour)
	addOld := func() {
		c.invalidate(func(inv *invalidations) {
			for i := range 100 {
				inv.tags[fmt.Sprint("user:", i)] = tagInvalidation{at: old, removeAt: old, checked: old}
			}
		})
	}
	addOld() // the cache's first invalidation: a prune is due
	if n := len(c.inv.Load().tags); n != 0 {
		t.Fatalf("the first invalidation kept %d tags older than tagTTL, want 0", n)
	}
	addOld() // within the hour: no prune
	if n := len(c.inv.Load().tags); n != 100 {
		t.Fatalf("an invalidation within tagPruneInterval of a prune holds %d tags, want 100", n)
	}
	c.invMu.Lock()
	c.tagsPruned -= int64(tagPruneInterval) // an hour later
	c.invMu.Unlock()
	if err := c.RemoveByTag(ctx, "user:new"); err != nil {
		t.Fatal(err)
	}
	tags := c.inv.Load().tags
	if _, ok := tags["user:new"]; !ok || len(tags) != 1 {
		t.Fatalf("after the prune the snapshot holds %d tags (user:new %v), want only user:new", len(tags), ok)
	}
}
