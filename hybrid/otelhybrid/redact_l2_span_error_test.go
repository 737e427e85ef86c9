package otelhybrid_test

// Drop into hybrid/otelhybrid next to peer_otel_test.go (uses its helpers).

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// TestOTelRedactKeysCoversSpanErrors: with RedactKeys, no span names the
// key, the L2 spans included. docs/observability.md: RedactKeys "takes the
// key out of the text of a logged error too (errors of the distributed
// tier quote the key they were about ...). It applies to logs and spans";
// and strata.operation.key is "never with RedactKeys".
func TestOTelRedactKeysCoversSpanErrors(t *testing.T) {
	srv := redistest.Start(t)
	const secret = "acct-4711-secret"
	ctx := context.Background()
	if err := srv.Client(t).LPush(ctx, "peer:"+secret, "x").Err(); err != nil {
		t.Fatal(err) // another Redis type: GET fails with WRONGTYPE, quoting the key
	}
	rec, _, tr := newTracing(t)
	c, err := hybrid.New(hybrid.Options{L2: hybrid.NewRedisL2(srv.FastClient(t, "")), KeyPrefix: "peer:",
		Tracer: tr, Logger: peerDiscard, RedactKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := hybrid.GetOrSet(ctx, c, secret, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "v", nil
	}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Write = true })); err != nil || v != "v" {
		t.Fatalf("GetOrSet over WRONGTYPE: %q, %v", v, err)
	}
	// A write over the same key: the newest-wins script meets WRONGTYPE.
	if err := hybrid.Set(ctx, c, secret, "v"); err != nil {
		t.Fatalf("Set over WRONGTYPE: %v", err)
	}
	sawError := false
	for _, s := range rec.Ended() {
		txt := peerText(s)
		if strings.Contains(txt, "WRONGTYPE") {
			sawError = true
		}
		if strings.Contains(txt, "4711") {
			t.Errorf("RedactKeys: span %q names the key: %s", s.Name(), txt)
		}
	}
	if !sawError {
		t.Fatal("no span recorded the WRONGTYPE error")
	}
}
