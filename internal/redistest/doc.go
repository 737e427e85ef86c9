// Package redistest starts real redis-server processes for tests: standalone servers (plain
// text or TLS, with extra arguments such as ACL users), replicas, Sentinels and clusters (of
// masters, or with replicas that take over), each on free loopback ports in a temporary
// directory, killed when the test ends.
//
// It never mocks Redis and never connects to the default port 6379, where a shared Redis
// may be running. Every process it starts is killed by its PID and waited for.
//
// Typical use:
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		srv := redistest.Start(t)
//		rdb := srv.Client(t)
//		// ... use rdb; srv.Kill(t), srv.Restart(t), srv.Suspend(t), srv.Resume(t) inject faults.
//	}
//
// When redis-server is not installed, the tests that need it are skipped with a message
// saying how to install it, unless the environment variable CI is non-empty, in which case
// they fail. ./scripts/test.sh installs it on Debian and Ubuntu.
package redistest
