package hybrid

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

// Read your writes across a backplane gap: a Set whose write to Redis runs
// in the background and has not landed yet stays this process's answer
// when a gap (a reconnect, or the first confirmation of the subscription,
// which Register does not wait for) makes the copies from before it
// unverified. The read used to verify it against Redis, miss there, and
// call the factory, whose newer value then replaced the Set's everywhere.
func TestOwnPendingWriteSurvivesGap(t *testing.T) {
	for _, write := range []struct {
		name string
		set  func(ctx context.Context, c *Cache) error
	}{
		{"Set", func(ctx context.Context, c *Cache) error { return Set(ctx, c, "k", "mine") }},
		{"SetMany", func(ctx context.Context, c *Cache) error { return SetMany(ctx, c, map[string]string{"k": "mine"}) }},
	} {
		t.Run(write.name, func(t *testing.T) {
			srv := redistest.Start(t)
			client := srv.FastClient(t, "")
			bp, err := backplane.NewRedis(srv.FastClient(t, ""), backplane.RedisOptions{Channel: backplane.ChannelName("", "app"), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(Options{Name: "app", L2: NewRedisL2(client), Backplane: bp, Logger: slog.New(slog.DiscardHandler),
				WaitForInitialBackplaneSubscribe: 5 * time.Second,
				Entry:                            EntryOptions{Duration: time.Hour, BackgroundL2Operations: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h := newGateHook("evalsha", "app:k")
			client.AddHook(h)
			ctx := context.Background()
			if err := write.set(ctx, c); err != nil {
				t.Fatal(err)
			}
			<-h.held // the write to Redis is out, not landed
			bpHandler{c}.HandleGap()
			calls := 0
			v, err := GetOrSet(ctx, c, "k", func(context.Context, *FactoryContext[string]) (string, error) {
				calls++
				return "factory", nil
			})
			if err != nil || v != "mine" || calls != 0 {
				t.Fatalf("GetOrSet after a gap, own write pending = %q, %v (%d factory calls); want mine", v, err, calls)
			}
			if v, ok, err := TryGet[string](ctx, c, "k"); err != nil || !ok || v != "mine" {
				t.Fatalf("TryGet = %q, %v, %v; want mine", v, ok, err)
			}
			close(h.open)
			ts := c.l1.get("k").ts
			redistest.Eventually(t, "the write to land", func() bool { return !c.writing.has("k", ts) })
			if v, ok, err := TryGet[string](ctx, c, "k", WithOptions(func(o *EntryOptions) { o.SkipL1Read = true })); err != nil || !ok || v != "mine" {
				t.Fatalf("Redis holds %q, %v, %v; want mine", v, ok, err)
			}
		})
	}
}
