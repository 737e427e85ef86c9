package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

// Tags of unusual (valid UTF-8, NUL-free) text, up to the longest allowed:
// RemoveByTag on one node removes the tagged entries on the other, and
// only those. (A tag with a NUL byte or invalid UTF-8 is not stored by the
// text column: reported separately.)
func TestHuntPgOddTagsAcrossNodes(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := postgres.Config{ConnString: srv.URL(), PruneInterval: -1}
	a, b := pgNode(t, cfg, "tags"), pgNode(t, cfg, "tags")
	both := []*hybrid.Cache{a, b}
	c := ctx(t)
	tags := []string{"café", "a:b:c", "%_'\\", "__strata:tag:x", strings.Repeat("é", 128)}
	for i, tag := range tags {
		k := fmt.Sprint("k", i)
		if err := hybrid.Set(c, a, k, "v", hybrid.WithTags(tag)); err != nil {
			t.Fatal(err)
		}
		hold(t, []*hybrid.Cache{b}, k)
	}
	if err := hybrid.Set(c, a, "other", "v", hybrid.WithTags("other")); err != nil {
		t.Fatal(err)
	}
	hold(t, []*hybrid.Cache{b}, "other")
	for i, tag := range tags {
		if err := a.RemoveByTag(c, tag); err != nil {
			t.Fatalf("RemoveByTag %q: %v", tag, err)
		}
		huntMiss(t, both, fmt.Sprint("k", i), fmt.Sprintf("RemoveByTag %q", tag))
	}
	huntSees(t, both, "other", "v")
	if st := a.Stats(); st.L2Errors != 0 {
		t.Errorf("a: %d L2 errors", st.L2Errors)
	}
}
