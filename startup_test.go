package strata_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/tcpproxy"
	"github.com/strata-cache/strata/internal/testlog"
)

// pausedRedis returns a real Redis behind a proxy that holds every byte:
// connections open, nothing answers, as with a hung server.
func pausedRedis(t *testing.T) (*redistest.Server, *tcpproxy.Proxy) {
	t.Helper()
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	proxy.Pause()
	return srv, proxy
}

// numSub returns the number of subscribers of channel on srv.
func numSub(t *testing.T, srv *redistest.Server, channel string) int64 {
	t.Helper()
	n, err := srv.Client(t).PubSubNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

// TestRegisterDoesNotWaitForRedis registers three caches while Redis does
// not answer: Register returns at once (it used to wait 5 s per cache for
// the backplane subscription, holding the provider's lock), the caches
// serve from memory, and once Redis answers the subscriptions complete and
// a change made on another node reaches them.
func TestRegisterDoesNotWaitForRedis(t *testing.T) {
	srv, proxy := pausedRedis(t)
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: "redis://" + proxy.Addr()}, Logger: quiet})
	done := make(chan error, 1)
	go func() {
		for _, name := range []string{"a", "b", "c"} {
			if _, err := p.Register(name); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second): // well below one 5 s subscribe wait
		t.Fatal("Register waited for Redis")
	}
	ctx := context.Background()
	a := p.MustGetCache("a")
	if err := hybrid.Set(ctx, a, "k", "v1"); err != nil { // production defaults: L2 write in the background
		t.Fatal(err)
	}
	if v, ok := get(t, a, "k", l1Only); !ok || v != "v1" {
		t.Fatalf("memory while Redis hangs: %q, %v", v, ok)
	}

	if a.BackplaneSubscribed() {
		t.Fatal("BackplaneSubscribed with Redis hung")
	}
	proxy.Resume()
	// go-redis retries the subscriptions with back-off: 10 s was not enough
	// once on a machine shared with another module's tests.
	redistest.EventuallyWithin(t, 30*time.Second, "BackplaneSubscribed", a.BackplaneSubscribed)
	redistest.Eventually(t, "the backplane subscriptions", func() bool {
		return numSub(t, srv, "strata:{a:}:bp") == 1 && numSub(t, srv, "strata:{c:}:bp") == 1
	})
	other := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.KeyPrefix = "a:" })
	redistest.Eventually(t, "node 1's value in Redis", func() bool { v, ok := get(t, other, "k"); return ok && v == "v1" })
	if err := hybrid.Set(ctx, other, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, "k", "v2")
}

// TestWaitForInitialBackplaneSubscribe: a cache that asks to wait for its
// subscription is subscribed when Register returns.
func TestWaitForInitialBackplaneSubscribe(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: srv.URL()}, Logger: quiet})
	if _, err := p.Register("w", func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 10 * time.Second }); err != nil {
		t.Fatal(err)
	}
	if n := numSub(t, srv, "strata:{w:}:bp"); n != 1 {
		t.Fatalf("subscribers right after Register = %d, want 1", n)
	}
	// The wait is bounded: with Redis hung, Register returns after it.
	_, proxy := pausedRedis(t)
	p2 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: "redis://" + proxy.Addr()}, Logger: quiet})
	if _, err := p2.Register("w", func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = 50 * time.Millisecond }); err != nil {
		t.Fatalf("Register with Redis hung: %v, want no error", err)
	}
	if _, err := p2.Register("neg", func(s *strata.CacheSettings) { s.WaitForInitialBackplaneSubscribe = -1 }); !errors.Is(err, strata.ErrInvalidSettings) || !strings.Contains(err.Error(), "WaitForInitialBackplaneSubscribe") {
		t.Fatalf("negative wait: %v", err)
	}
}

// TestHitDoesNotWaitForRedis: after a backplane gap, a memory hit of a
// tagged entry needs the distributed tier's tag and Clear records. With
// Redis hung, the read must honour the caller's deadline (it used to wait
// on Redis with context.Background for up to 5 s inside the hit check).
func TestHitDoesNotWaitForRedis(t *testing.T) {
	srv := redistest.Start(t)
	proxy := srv.Proxy(t)
	n := bpNode(t, srv.FastClient(t, proxy.Addr()))
	ctx := context.Background()
	if err := hybrid.Set(ctx, n, "k", "v", hybrid.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, n, "k"); !ok || v != "v" {
		t.Fatalf("setup: %q, %v", v, ok)
	}
	redistest.Eventually(t, "the subscription", func() bool { return numSub(t, srv, "strata:{app:}:bp") == 1 })
	gaps := n.Stats().BackplaneGaps
	if err := srv.Client(t).Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "the gap", func() bool { return n.Stats().BackplaneGaps > gaps })
	proxy.Pause()
	defer proxy.Resume()

	for _, read := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"TryGet", func(ctx context.Context) error {
			_, _, err := hybrid.TryGet[string](ctx, n, "k")
			return err
		}},
		{"GetOrSet", func(ctx context.Context) error {
			_, err := hybrid.GetOrSet(ctx, n, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				return "factory", nil
			})
			return err
		}},
	} {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		start := time.Now()
		err := read.do(rctx)
		took := time.Since(start)
		cancel()
		if took > 2*time.Second {
			t.Errorf("%s with a 200ms deadline took %v (err %v): the hit waited for Redis", read.name, took, err)
		}
	}
}

// TestSettingsReachEveryEngineOption: every field of hybrid.Options that
// a user sets is a CacheSettings field of the same name and type, and the
// provider hands it to the engine (the others are set by the provider).
func TestSettingsReachEveryEngineOption(t *testing.T) {
	providerSets := map[string]bool{"Name": true, "Logger": true, "RedactKeys": true, "Events": true, "Tracer": true, "TraceKeys": true, "L2": true, "Backplane": true}
	cs := reflect.TypeFor[strata.CacheSettings]()
	for f := range reflect.TypeFor[hybrid.Options]().Fields() {
		if providerSets[f.Name] {
			continue
		}
		g, ok := cs.FieldByName(f.Name)
		if !ok || g.Type != f.Type {
			t.Errorf("hybrid.Options.%s (%v) cannot be set through strata.CacheSettings", f.Name, f.Type)
		}
	}
	// Negative values are refused with the field's name, as by hybrid.New.
	p := newProvider(t, strata.Settings{})
	for name, f := range map[string]func(*strata.CacheSettings){
		"MaxValueSize":         func(s *strata.CacheSettings) { s.MaxValueSize = -1 },
		"AutoRecoveryMaxItems": func(s *strata.CacheSettings) { s.AutoRecoveryMaxItems = -1 },
		"MaxKeyLength":         func(s *strata.CacheSettings) { s.MaxKeyLength = -1 },
	} {
		if _, err := p.Register("c", f); !errors.Is(err, strata.ErrInvalidSettings) || !errors.Is(err, hybrid.ErrInvalidOptions) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s = -1: %v", name, err)
		}
	}
}

func TestProductionDefaultsHardTimeout(t *testing.T) {
	if got := strata.ProductionDefaults().Entry.FactoryHardTimeout; got != 1500*time.Millisecond {
		t.Fatalf("FactoryHardTimeout = %v, want 1.5s (Bitwarden's ExtendedCache default)", got)
	}
}

// TestProductionDefaultsHungRedisColdKey: with the production defaults
// (L2 hard timeout 2 s, factory hard timeout 1.5 s) and Redis hung, a cold
// key's GetOrSet gets the factory's value, not ErrFactoryTimeout: the load
// gives up on Redis after half the factory hard timeout. The client's read
// timeout is longer than the provider's 500 ms here (the URL sets it), as a
// client the application brings may be: it does not cut the read first.
func TestProductionDefaultsHungRedisColdKey(t *testing.T) {
	_, proxy := pausedRedis(t)
	url := "redis://" + proxy.Addr() + "?read_timeout=3s&write_timeout=3s" // go-redis's default
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: url}, Logger: quiet})
	c, err := p.Register("cold")
	if err != nil {
		t.Fatal(err)
	}
	v, err := hybrid.GetOrSet(context.Background(), c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return "from-db", nil
	})
	proxy.Resume() // Close then need not wait for the background write's timeout
	if err != nil || v != "from-db" {
		t.Fatalf("GetOrSet with Redis hung = %q, %v; want the factory's value", v, err)
	}
}

// TestURLErrorsHidePasswords: whatever the URL parser rejects, the
// password never appears in the error.
func TestURLErrorsHidePasswords(t *testing.T) {
	for _, raw := range []string{
		"redis://app:s3cret@localhost:port",
		"redis://app:s3cret@[::1:6379",
		"rediss://app:s3cret@host:6379/notadb",
		"redis://:s3cret@host:6379/0?dial_timeout=nope",
		"redis://app:s3cret%21@host:bad",
		"redis://app:s3/cr?et@host:bad",
		"http://app:s3cret@host",
		// Cut by the parser at '/', '?' or '#': it quoted the first piece.
		"redis://app:Zq7/Wk9@host:6379",
		"redis://app:Zq7?Wk9@host:6379",
		"redis://app:Zq7#Wk9@host:6379",
	} {
		_, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: raw}})
		if !errors.Is(err, strata.ErrInvalidSettings) {
			t.Errorf("%s: err = %v, want ErrInvalidSettings", raw, err)
			continue
		}
		for _, secret := range []string{"s3cret", "s3/cr?et", "Zq7", "Wk9"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error leaks (part of) the password: %v", err)
			}
		}
		if !strings.Contains(err.Error(), "Redis.URL") {
			t.Errorf("%s: error does not name the field: %v", raw, err)
		}
	}
}

type stdRedisLogger struct{ l *log.Logger }

func (s stdRedisLogger) Printf(_ context.Context, format string, v ...any) { s.l.Printf(format, v...) }

// TestRouteRedisLogs: go-redis's own lines go to the slog logger given,
// with the password of a URL redacted.
func TestRouteRedisLogs(t *testing.T) {
	logs := &testlog.Buffer{}
	strata.RouteRedisLogs(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { redis.SetLogger(stdRedisLogger{log.New(os.Stderr, "redis: ", log.LstdFlags)}) })

	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Kill(t) // nothing listens there now
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{URL: "redis://app:s3cret@" + addr}, Logger: quiet})
	c, err := p.Register("r", func(s *strata.CacheSettings) { s.DisableBackplane = true })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := hybrid.TryGet[string](context.Background(), c, "k"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "a go-redis line in the slog logger", func() bool {
		return strings.Contains(logs.String(), "redis client") && strings.Contains(logs.String(), "dial")
	})
	if strings.Contains(logs.String(), "s3cret") {
		t.Fatalf("the log leaks the password:\n%s", logs)
	}
}

// TestCloseWithRedisHungClosesCachesTogether: sixteen caches, each with a
// background write in flight to a Redis that accepts connections and does
// not answer. Provider.Close waits for the writes (each bounded by the
// cache's L2HardTimeout, docs/l2.md) and for go-redis to release each
// cache's subscription, which it holds while a handshake waits for the
// client's read timeout (500 ms here). The caches close together, so Close
// waits about one of each. Closed one after another (as they were), the
// sixteen took 9-13 s here, and eight took 4.3 s when Register still
// waited for a handshake.
func TestCloseWithRedisHungClosesCachesTogether(t *testing.T) {
	_, proxy := pausedRedis(t)
	defer proxy.Resume()
	const timeout = time.Second
	p, err := strata.NewProvider(strata.Settings{
		Redis:  &strata.RedisSettings{URL: "redis://" + proxy.Addr()},
		Logger: quiet,
		Defaults: &strata.CacheSettings{Entry: hybrid.EntryOptions{
			L2HardTimeout: timeout, BackgroundL2Operations: true,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var caches []*hybrid.Cache
	for i := range n {
		c, err := p.Register(fmt.Sprint("c", i))
		if err != nil {
			t.Fatal(err)
		}
		caches = append(caches, c)
	}
	for _, c := range caches {
		if err := hybrid.Set(context.Background(), c, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A write's timeout and a handshake's, and the slack of a busy machine
	// (4.6 s once, with another module's tests sharing the two cores);
	// one after another took the write's timeout and n handshakes (9-13 s).
	if d := time.Since(start); d > 6*timeout {
		t.Errorf("Close took %v with %d caches writing to a hung Redis; want about one L2HardTimeout (%v) and one handshake (500 ms)", d, n, timeout)
	}
}
