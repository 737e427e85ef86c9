package etcd_test

import (
	"fmt"
	"testing"

	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

// Tags of odd bytes (Latin-1, NUL, separators, one of the longest allowed, 256 bytes): RemoveByTag on
// one node removes the tagged entries on the other, and only those.
func TestHuntEtcdOddTagsAcrossNodes(t *testing.T) {
	m := etcdtest.Start(t)
	a := newNode(t, clientOn(t, m.Endpoint()), "tags")
	b := newNode(t, clientOn(t, m.Endpoint()), "tags")
	c := ctx(t)
	tags := []string{"caf\xe9", "nul\x00tag", "a:b:c", "__strata:tag:x", string(make([]byte, 256))}
	for i, tag := range tags {
		k := fmt.Sprint("k", i)
		if err := hybrid.Set(c, a.c, k, "v", hybrid.WithTags(tag)); err != nil {
			t.Fatal(err)
		}
		load(t, b, k)
	}
	if err := hybrid.Set(c, a.c, "other", "v", hybrid.WithTags("other")); err != nil {
		t.Fatal(err)
	}
	load(t, b, "other")
	for i, tag := range tags {
		if err := a.c.RemoveByTag(c, tag); err != nil {
			t.Fatalf("RemoveByTag %q: %v", tag, err)
		}
		huntMiss(t, []*node{a, b}, fmt.Sprint("k", i), fmt.Sprintf("RemoveByTag %q", tag))
	}
	huntSees(t, []*node{a, b}, "other", "v")
	if st := a.c.Stats(); st.L2Errors != 0 {
		t.Errorf("a: %d L2 errors", st.L2Errors)
	}
}
