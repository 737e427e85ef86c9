package redistest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/tcpproxy"
)

// EventuallyTimeout bounds Eventually.
const EventuallyTimeout = 10 * time.Second

// Eventually polls cond every few milliseconds until it holds, and fails
// the test, naming what it waited for, after EventuallyTimeout. Use it to
// await a condition (a message arrived, a write reached Redis), never as a
// sleep.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, EventuallyTimeout, what, cond)
}

// EventuallyWithin is Eventually with its own bound d, for a condition
// whose time depends on the machine more than EventuallyTimeout allows
// (a reconnect after a fault, on a loaded CI machine).
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not standing in for one
	}
}

// FastClient returns a client of s that makes faults fast: no retries, a
// 300 ms dial timeout, a 1 s pool timeout and context deadlines that cut
// socket I/O. With addr non-empty it connects there instead (a Proxy in
// front of s). A t.Cleanup closes it.
func (s *Server) FastClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	o := s.Options()
	if addr != "" {
		o.Addr = addr
	}
	o.MaxRetries = -1
	o.DialTimeout = 300 * time.Millisecond
	o.ReadTimeout = 10 * time.Second
	o.WriteTimeout = 10 * time.Second
	o.PoolTimeout = time.Second
	o.ContextTimeoutEnabled = true
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Proxy starts a TCP proxy (internal/tcpproxy) in front of s, for faults:
// pause, latency, reset. A t.Cleanup closes it.
func (s *Server) Proxy(t testing.TB) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.New(s.Addr())
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}
