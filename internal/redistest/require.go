package redistest

import (
	"os"
	"os/exec"
	"testing"
)

// installHint tells a developer how to get the binaries these tests need.
const installHint = "install it with `sudo apt-get install redis-server redis-tools` " +
	"or run ./scripts/test.sh, which installs it"

// Require checks that redis-server is on PATH. When it is not, Require skips the test with a
// message saying how to install it, unless the environment variable CI is non-empty, in
// which case it fails the test with t.Fatal. Start and StartCluster call it first.
func Require(t testing.TB) {
	t.Helper()
	requireBinary(t, "redis-server")
}

// requireBinary skips (or, under CI, fails) the test when the named program is not on PATH.
func requireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("redistest: %s not found on PATH (CI is set, so this is a failure): %s", name, installHint)
		return
	}
	t.Skipf("redistest: %s not found on PATH, skipping: %s", name, installHint)
}
