package hybrid_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// A Set message carries the entry when it is small: a node that holds an
// older copy replaces it and answers the next read from memory, without a
// read of Redis. Above BackplaneValueMaxSize, or with the values disabled,
// the node marks its copy stale and reads Redis once.
func TestBackplaneSetCarriesValue(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name     string
		shared   bool // the backplane on the L2's client: the write script publishes
		value    string
		disabled bool
		carried  bool
		batch    bool // the second write is a SetMany of two keys
	}{
		{name: "script publishes", shared: true, value: "v2", carried: true},
		{name: "publish of its own", shared: false, value: "v2", carried: true},
		{name: "batch, script publishes", shared: true, value: "v2", carried: true, batch: true},
		{name: "batch, publish of its own", shared: false, value: "v2", carried: true, batch: true},
		{name: "above the max", shared: true, value: strings.Repeat("x", 600)},
		{name: "disabled", shared: true, value: "v2", disabled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func() (*hybrid.Cache, *atomic.Int64) {
				client := srv.FastClient(t, "")
				bpc := client
				if !tc.shared {
					bpc = srv.FastClient(t, "")
				}
				bp, err := backplane.NewRedis(bpc, backplane.RedisOptions{Channel: backplane.ChannelName("", "app"), Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				var gets atomic.Int64
				n := node(t, client, hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) {
					o.Backplane = bp
					o.WaitForInitialBackplaneSubscribe = 5 * time.Second
					o.BackplaneValueMaxSize = 512
					o.DisableBackplaneValues = tc.disabled
					o.Events = &hybrid.Events{L2Call: func(e hybrid.L2CallEvent) {
						if e.Op == "get" && !strings.HasPrefix(e.Key, "__strata:") {
							gets.Add(1)
						}
					}}
				})
				return n, &gets
			}
			a, _ := mk()
			b, bGets := mk()
			key := "k-" + tc.name
			if err := hybrid.Set(t.Context(), a, key, "v1"); err != nil {
				t.Fatal(err)
			}
			if v, ok := mustGet[string](t, b, key); !ok || v != "v1" {
				t.Fatalf("b reads %q, %v; want v1", v, ok)
			}
			received := b.Stats().BackplaneReceived
			var err error
			if tc.batch {
				err = hybrid.SetMany(t.Context(), a, map[string]string{key: tc.value, key + "-other": "x"}, hybrid.WithTags("t"))
			} else {
				err = hybrid.Set(t.Context(), a, key, tc.value, hybrid.WithTags("t"))
			}
			if err != nil {
				t.Fatal(err)
			}
			sent := uint64(1)
			if tc.batch {
				sent = 2
			}
			redistest.Eventually(t, "b to receive the Set", func() bool { return b.Stats().BackplaneReceived >= received+sent })
			bGets.Store(0)
			if v, ok := mustGet[string](t, b, key); !ok || v != tc.value {
				t.Fatalf("b reads %.20q, %v after the Set; want %.20q", v, ok, tc.value)
			}
			wantGets, wantValues := int64(1), uint64(0)
			if tc.carried {
				wantGets, wantValues = 0, 1
			}
			if g, n := bGets.Load(), b.Stats().BackplaneValues; g != wantGets || n != wantValues {
				t.Fatalf("b read Redis %d times and took %d message values; want %d and %d", g, n, wantGets, wantValues)
			}
			if !tc.carried {
				return
			}
			// The replaced entry is typed like any: another type is a
			// mismatch naming the stored one; its tag removes it.
			if _, _, err := hybrid.TryGet[int](t.Context(), b, key); !errors.Is(err, hybrid.ErrTypeMismatch) || !strings.Contains(err.Error(), "holds string") {
				t.Fatalf("TryGet[int] = %v, want ErrTypeMismatch naming string", err)
			}
			if err := a.RemoveByTag(t.Context(), "t"); err != nil {
				t.Fatal(err)
			}
			redistest.Eventually(t, "b to drop the tagged entry", func() bool {
				_, ok := mustGet[string](t, b, key)
				return !ok
			})
		})
	}
}

// A node that does not hold the key ignores the value: its memory is not
// filled with keys it never read.
func TestBackplaneValueNotStoredWhenNotHeld(t *testing.T) {
	srv := redistest.Start(t)
	mk := func(client *redis.Client) *hybrid.Cache {
		bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: backplane.ChannelName("", "app"), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return node(t, client, hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) {
			o.Backplane = bp
			o.WaitForInitialBackplaneSubscribe = 5 * time.Second
		})
	}
	a, b := mk(srv.FastClient(t, "")), mk(srv.FastClient(t, ""))
	if err := hybrid.Set(t.Context(), a, "k", "v"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "b to receive the Set", func() bool { return b.Stats().BackplaneReceived > 0 })
	if v, ok, _ := hybrid.TryGet[string](t.Context(), b, "k", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })); ok {
		t.Fatalf("b holds %q in memory from a message, for a key it never read", v)
	}
	if n := b.Stats().BackplaneValues; n != 0 {
		t.Fatalf("b took %d message values", n)
	}
}

// msgRecorder is a backplane handler that keeps what it is given.
type msgRecorder struct {
	mu   sync.Mutex
	msgs []backplane.Message
}

func (r *msgRecorder) HandleMessage(m backplane.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}
func (r *msgRecorder) HandleGap() {}

func (r *msgRecorder) all() []backplane.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// What each change's message carries, as another subscriber of the
// channel sees it: a Set its entry, the first value of a cold key none, a
// RemoveByTag or Clear (Expire and Remove messages of reserved keys) none.
func TestBackplaneMessageValues(t *testing.T) {
	srv := redistest.Start(t)
	ch := backplane.ChannelName("", "app")
	client := srv.FastClient(t, "")
	bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: ch, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n := node(t, client, hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) {
		o.Backplane = bp
		o.WaitForInitialBackplaneSubscribe = 5 * time.Second
	})
	var rec msgRecorder
	newRedisSubscriber(t, srv.FastClient(t, ""), ch, &rec)
	ctx := t.Context()
	if err := hybrid.Set(ctx, n, "set", "v", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	if _, err := hybrid.GetOrSet(ctx, n, "cold", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "loaded", nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveByTag(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := n.Clear(ctx, false); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the four messages", func() bool { return len(rec.all()) >= 4 })
	msgs := rec.all()
	for i, want := range []struct {
		kind     backplane.Kind
		key      string // "" for a reserved key
		hasValue bool
	}{
		{backplane.KindSet, "set", true},
		{backplane.KindSet, "cold", false},
		{backplane.KindExpire, "", false},
		{backplane.KindRemove, "", false},
	} {
		m := msgs[i]
		if m.Kind != want.kind || want.key != "" && m.Key != want.key || (m.Value != "") != want.hasValue {
			t.Errorf("message %d: %s %q with a %d-byte value; want %s %q, value: %v", i, m.Kind, m.Key, len(m.Value), want.kind, want.key, want.hasValue)
		}
	}
}

// newRedisSubscriber subscribes h to channel on a backplane of its own.
func newRedisSubscriber(t *testing.T, client *redis.Client, channel string, h backplane.Handler) {
	t.Helper()
	bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: channel, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bp.Close() })
	if err := bp.Subscribe(h); err != nil {
		t.Fatal(err)
	}
}
