package otelhybrid_test

// Drop into hybrid/otelhybrid next to peer_otel_test.go (uses its helpers).

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// TestOTelBatchSpanChildren: docs/observability.md, Spans table: "get or
// set many from cache ... their L2 reads and writes and the batch factory
// are children". A GetOrSetMany that misses memory reads Redis (MGET),
// runs the batch factory and writes the results: three kinds of children.
func TestOTelBatchSpanChildren(t *testing.T) {
	srv := redistest.Start(t)
	rec, tp, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{Name: "batch", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), KeyPrefix: "peer:",
		Tracer: tr, Logger: peerDiscard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	ran := false
	res, err := hybrid.GetOrSetMany(ctx, c, []string{"a", "b", "c"}, func(_ context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
		ran = true
		m := map[string]int{}
		for _, k := range bc.Keys() {
			m[k] = 1
		}
		return m, nil
	})
	req.End()
	if err != nil || len(res) != 3 || !ran {
		t.Fatalf("GetOrSetMany: %v, %v, factory ran %v", res, err, ran)
	}
	spans := rec.Ended()
	op := peerOne(t, spans, hybrid.SpanGetOrSetMany)
	for _, name := range []string{hybrid.SpanL2Get, hybrid.SpanFactory, hybrid.SpanL2Set} {
		kids := peerByName(spans, name)
		if len(kids) == 0 {
			t.Errorf("no %q span under %q; spans:\n  %s", name, op.Name(), strings.Join(tree(spans), "\n  "))
			continue
		}
		for _, k := range kids {
			peerWantChild(t, op, k)
		}
	}
}
