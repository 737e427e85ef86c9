package backplane_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
)

// newRedisBackplane returns a subscribed Redis backplane, closed by t.Cleanup.
func newRedisBackplane(t testing.TB, client redis.UniversalClient, o backplane.RedisOptions, h backplane.Handler) *backplane.Redis {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	bp, err := backplane.NewRedis(client, o)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { bp.Close() })
	if h != nil {
		if err := bp.Subscribe(h); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	return bp
}

// publishEventually publishes m, retrying while the client reconnects after a fault.
func publishEventually(t testing.TB, bp backplane.Backplane, m backplane.Message) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := bp.Publish(context.Background(), m)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish kept failing: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // retry back-off, not synchronization
	}
}

func TestNewRedisOptions(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { client.Close() })
	tests := []struct {
		name string
		o    backplane.RedisOptions
		want string // substring of the error, "" for success
	}{
		{"ok", backplane.RedisOptions{Channel: "c"}, ""},
		{"no channel", backplane.RedisOptions{}, "Channel"},
		{"negative queue", backplane.RedisOptions{Channel: "c", QueueSize: -1}, "QueueSize"},
		{"huge queue", backplane.RedisOptions{Channel: "c", QueueSize: 1 << 40}, "QueueSize"},
		{"largest queue", backplane.RedisOptions{Channel: "c", QueueSize: backplane.MaxQueueSize}, ""},
		{"negative timeout", backplane.RedisOptions{Channel: "c", SubscribeTimeout: -1}, "SubscribeTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bp, err := backplane.NewRedis(client, tt.o)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewRedis = %v", err)
				}
				bp.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "backplane: ") {
				t.Fatalf("NewRedis error = %v, want one naming %s", err, tt.want)
			}
		})
	}
	if _, err := backplane.NewRedis(nil, backplane.RedisOptions{Channel: "c"}); err == nil {
		t.Error("NewRedis(nil client) = nil error")
	}
	bp, _ := backplane.NewRedis(client, backplane.RedisOptions{Channel: "c"})
	if bp.Sharded() {
		t.Error("a *redis.Client defaulted to sharded pub/sub")
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { cc.Close() })
	if bp, _ := backplane.NewRedis(cc, backplane.RedisOptions{Channel: "c"}); !bp.Sharded() {
		t.Error("a *redis.ClusterClient did not default to sharded pub/sub")
	}
	if bp, _ := backplane.NewRedis(cc, backplane.RedisOptions{Channel: "c", Sharded: true, DisableSharded: true}); bp.Sharded() {
		t.Error("DisableSharded did not win")
	}
}

func TestRedisExchange(t *testing.T) {
	t.Parallel()
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "classic", true: "sharded"}[sharded], func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			ch := backplane.ChannelName("", "users")
			ra, rb, ro := newRecorder(), newRecorder(), newRecorder()
			a := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch, Sharded: sharded}, ra)
			b := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch, Sharded: sharded}, rb)
			o := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: backplane.ChannelName("", "orders"), Sharded: sharded}, ro)
			ctx := context.Background()

			m1 := msg(backplane.KindSet, "user:\xff\x00:1")
			if err := a.Publish(ctx, m1); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			rb.wantMessage(t, m1)
			ra.wantMessage(t, m1)
			m2 := msg(backplane.KindRemove, "user:2")
			if err := b.Publish(ctx, m2); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			ra.wantMessage(t, m2)
			rb.wantMessage(t, m2)

			// The other channel saw neither: its first message is its own probe.
			probe := msg(backplane.KindClear, "")
			if err := o.Publish(ctx, probe); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			ro.wantMessage(t, probe)
			for _, r := range []*recorder{ra, rb, ro} {
				r.wantNoGap(t)
			}
			if st := a.Stats(); st.Published != 1 || st.Received != 2 || st.Corrupt+st.Dropped+st.Gaps+st.Resubscribes != 0 {
				t.Errorf("Stats = %+v, want Published 1, Received 2, nothing else", st)
			}
		})
	}
}

func TestRedisClientKillIsAGap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client(t)
	r := newRecorder()
	ch := backplane.ChannelName("", "users")
	bp := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, r)
	ctx := context.Background()

	for round := range 3 {
		n, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		if err != nil || n != 1 {
			t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want 1 client killed", n, err)
		}
		r.wantGap(t)
		m := msg(backplane.KindSet, "after-kill")
		publishEventually(t, bp, m)
		r.wantMessage(t, m)
		if st := bp.Stats(); st.Resubscribes != uint64(round+1) || st.Gaps != uint64(round+1) {
			t.Errorf("round %d: Stats = %+v, want %d resubscribes and gaps", round, st, round+1)
		}
	}
}

func TestRedisRestartIsAGap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRecorder()
	ch := backplane.ChannelName("", "users")
	sub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, r)
	pub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, nil)

	srv.Kill(t)
	if err := pub.Publish(context.Background(), msg(backplane.KindSet, "lost")); err == nil {
		t.Error("Publish with Redis down = nil error")
	}
	srv.Restart(t)
	r.wantGap(t)
	m := msg(backplane.KindSet, "after-restart")
	publishEventually(t, pub, m)
	r.wantMessage(t, m)
	if st := sub.Stats(); st.Resubscribes != 1 {
		t.Errorf("Stats = %+v, want 1 resubscribe", st)
	}
}

func TestRedisSubscribeWhileDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := srv.Client(t)
	srv.Kill(t)
	r := newRecorder()
	bp := newRedisBackplane(t, client, backplane.RedisOptions{Channel: "c", SubscribeTimeout: 200 * time.Millisecond}, nil)
	if err := bp.Subscribe(r); !errors.Is(err, backplane.ErrSubscribeTimeout) {
		t.Fatalf("Subscribe with Redis down = %v, want ErrSubscribeTimeout", err)
	}
	if err := bp.Subscribe(r); !errors.Is(err, backplane.ErrSubscribed) {
		t.Fatalf("second Subscribe = %v, want ErrSubscribed", err)
	}
	srv.Restart(t)
	r.wantGap(t) // the late first subscription is a gap: messages were lost meanwhile
	m := msg(backplane.KindExpire, "k")
	publishEventually(t, bp, m)
	r.wantMessage(t, m)
}

func TestRedisOverflowIsAGap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ch := backplane.ChannelName("", "users")
	r := newRecorder()
	r.gate = make(chan struct{})
	logs := &testlog.Buffer{}
	sub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{
		Channel: ch, QueueSize: 2, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}, r)
	pub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: ch}, nil)
	ctx := context.Background()

	const n = 200
	for i := range n {
		if err := pub.Publish(ctx, backplane.Message{Kind: backplane.KindSet, Cache: "c", Key: "k", Timestamp: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The handler is blocked, yet the reader takes every message off the connection.
	redistest.Eventually(t, "the reader to receive every message", func() bool { return sub.Stats().Received == n })
	st := sub.Stats()
	if st.Dropped < n-3 {
		t.Errorf("Stats = %+v, want at least %d dropped (queue 2, 1 in the handler)", st, n-3)
	}
	close(r.gate)
	r.wantGap(t)
	for range n - st.Dropped {
		<-r.msgs
	}
	m := backplane.Message{Kind: backplane.KindSet, Cache: "c", Key: "after", Timestamp: n}
	if err := pub.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	r.wantMessage(t, m)
	if st := sub.Stats(); st.Gaps != 1 {
		t.Errorf("Stats = %+v, want the drops coalesced into 1 gap", st)
	}
	if out := logs.String(); strings.Count(out, "receive queue full") != 1 || !strings.Contains(out, "channel="+ch) {
		t.Errorf("want one overflow log line naming the channel, got:\n%s", out)
	}
}

func TestRedisCorruptPayload(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ch := backplane.ChannelName("", "users")
	r := newRecorder()
	logs := &testlog.Buffer{}
	sub := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{
		Channel: ch, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}, r)
	raw := srv.Client(t)
	ctx := context.Background()
	next := backplane.Message{Kind: backplane.KindSet, Cache: "c", Key: "k"}.AppendBinary(nil)
	next[2] = 2 // a future version
	for _, p := range []any{"garbage", "", []byte{0xC1, 0x42, 1, 1, 0}, next} {
		if err := raw.Publish(ctx, ch, p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := msg(backplane.KindSet, "valid")
	if err := raw.Publish(ctx, ch, m.AppendBinary(nil)).Err(); err != nil {
		t.Fatal(err)
	}
	r.wantMessage(t, m) // the first and only message delivered
	if st := sub.Stats(); st.Received != 5 || st.Corrupt != 4 || st.Gaps != 0 {
		t.Errorf("Stats = %+v, want Received 5, Corrupt 4, no gap", st)
	}
	out := logs.String()
	if strings.Count(out, "undecodable") != 4 || !strings.Contains(out, "channel="+ch) || !strings.Contains(out, "err=") {
		t.Errorf("want 4 log lines with channel and err, got:\n%s", out)
	}
}

func TestRedisLifecycle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := srv.Client(t)
	ch := backplane.ChannelName("", "users")
	r := newRecorder()
	bp := newRedisBackplane(t, client, backplane.RedisOptions{Channel: ch}, r)
	ctx := context.Background()
	if err := bp.Subscribe(newRecorder()); !errors.Is(err, backplane.ErrSubscribed) {
		t.Errorf("second Subscribe = %v, want ErrSubscribed", err)
	}
	if err := bp.Publish(ctx, backplane.Message{Kind: 0}); !errors.Is(err, backplane.ErrInvalidMessage) {
		t.Errorf("Publish(kind 0) = %v, want ErrInvalidMessage", err)
	}
	for range 2 {
		if err := bp.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if err := bp.Publish(ctx, msg(backplane.KindSet, "k")); !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := bp.Subscribe(newRecorder()); !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	// The client is not ours: it still works, and the subscription is gone.
	n, err := client.PubSubNumSub(ctx, ch).Result()
	if err != nil {
		t.Fatalf("client unusable after Close: %v", err)
	}
	if n[ch] != 0 {
		t.Errorf("%d subscribers left on %s after Close", n[ch], ch)
	}
	select {
	case m := <-r.msgs:
		t.Errorf("handler called after Close with %+v", m)
	default:
	}
}

func TestRedisCloseWhileDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bp := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: "c"}, newRecorder())
	srv.Kill(t)
	done := make(chan struct{})
	go func() { bp.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close hung with Redis down")
	}
}

func TestRedisCloseNeverSubscribed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bp := newRedisBackplane(t, srv.Client(t), backplane.RedisOptions{Channel: "c"}, nil)
	if err := bp.Publish(context.Background(), msg(backplane.KindSet, "k")); err != nil {
		t.Fatal(err)
	}
	if err := bp.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRedisStartSubscribeWhileHung: StartSubscribe with a Redis that
// accepts connections and never answers returns after its 200 ms wait for
// SUBSCRIBE to be sent (go-redis's Subscribe, which it used to wait for,
// waits for the handshake: the client's 3 s read timeout here); the
// subscription completes, and a message arrives, once Redis answers.
func TestRedisStartSubscribeWhileHung(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	proxy.Pause()
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ReadTimeout: 3 * time.Second})
	t.Cleanup(func() { client.Close() })
	bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: "c", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bp.Close() })
	r := newRecorder()
	start := time.Now()
	ready, err := bp.StartSubscribe(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("StartSubscribe with Redis hung took %v; want no wait (the read timeout is 3 s)", d)
	}
	select {
	case <-ready:
		t.Fatal("ready with Redis hung")
	default:
	}
	proxy.Resume()
	select {
	case <-ready:
	case <-time.After(waitTimeout):
		t.Fatal("the subscription was not confirmed once Redis answered")
	}
	m := msg(backplane.KindSet, "k")
	publishEventually(t, bp, m)
	r.wantMessage(t, m)
}
