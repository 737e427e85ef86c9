// Package backplanetest holds test helpers for package backplane that are
// not part of its API: they reach into a backplane.MemoryHub to cause what a
// real transport causes only under faults.
//
// Package backplane registers the helpers here when it is initialised (it
// imports this package; this package cannot import it), so a test that
// holds a *backplane.MemoryHub can always call them.
package backplanetest

import "sync/atomic"

var simulateGap atomic.Pointer[func(hub any, channel string)]

// RegisterSimulateGap is called by package backplane, and only by it, to
// provide SimulateGap.
func RegisterSimulateGap(f func(hub any, channel string)) { simulateGap.Store(&f) }

// SimulateGap makes every subscribed backplane of hub (a
// *backplane.MemoryHub) on channel report a gap to its handler, as if its
// subscription had been re-established after a disconnect. It is meant for
// tests of gap handling. It panics if hub is not a *backplane.MemoryHub.
func SimulateGap(hub any, channel string) {
	f := simulateGap.Load()
	if f == nil {
		panic("backplanetest: package backplane is not initialised")
	}
	(*f)(hub, channel)
}
