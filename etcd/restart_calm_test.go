package etcd_test

import (
	"fmt"
	"testing"

	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
)

// A single etcd member killed and restarted: the first calls after the
// restart succeed (the client reconnects and retries), with no L2 error
// and the circuit breaker closed.
func TestMemberRestartFailsNoCall(t *testing.T) {
	m := etcdtest.Start(t)
	n := newNode(t, clientOn(t, m.Endpoint()), "calm")
	c := ctx(t)
	for i := range 20 {
		if err := hybrid.Set(c, n.c, fmt.Sprintf("k%d", i), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	m.Kill()
	m.Restart(t)
	for i := range 20 {
		if err := hybrid.Set(c, n.c, fmt.Sprintf("k%d", i), "v2"); err != nil {
			t.Fatalf("Set %d after the restart: %v", i, err)
		}
		v, ok, err := hybrid.TryGet[string](c, n.c, fmt.Sprintf("k%d", i), hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
		if err != nil || !ok || v != "v2" {
			t.Fatalf("L2 read %d after the restart: %q, %v, %v; stats %+v", i, v, ok, err, n.c.Stats())
		}
	}
	if st := n.c.Stats(); st.L2Errors != 0 || st.L2CircuitOpen || st.RecoveryQueued != 0 {
		t.Fatalf("after the restart: %d L2 errors, breaker open %v, %d queued; want none", st.L2Errors, st.L2CircuitOpen, st.RecoveryQueued)
	}
}
