package etcd_test

import (
	"os"
	"testing"
)

// knownBug skips a test that reproduces a bug not fixed yet (the closing
// note of 2026-12-07's ninth session says what is left and how), unless
// STRATA_KNOWN_BUGS=1: `STRATA_KNOWN_BUGS=1 go test -run Known .` shows
// them failing. Remove the call when the bug is fixed.
func knownBug(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("STRATA_KNOWN_BUGS") != "1" {
		t.Skip("known bug, not fixed yet: " + why + " (STRATA_KNOWN_BUGS=1 runs it)")
	}
}
