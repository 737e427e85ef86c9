package strata_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// bpNode is one process's provider with a cache "app" on the shared Redis,
// through its own client.
func bpNode(t *testing.T, client redis.UniversalClient, configure ...func(*strata.CacheSettings)) *hybrid.Cache {
	t.Helper()
	// These tests count on the messages sent right after Register: wait for
	// the subscription (Register does not, by default).
	d := strata.CacheSettings{Entry: hybrid.EntryOptions{Duration: time.Hour, FailSafe: true}, WaitForInitialBackplaneSubscribe: 10 * time.Second}
	p := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: client}, Defaults: &d, Logger: quiet})
	c, err := p.Register("app", configure...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var l1Only = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true })
var allowStale = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })

func get(t *testing.T, c *hybrid.Cache, key string, opts ...hybrid.Option) (string, bool) {
	t.Helper()
	v, ok, err := hybrid.TryGet[string](context.Background(), c, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func TestBackplaneThreeNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, ""))
	n3 := bpNode(t, srv.FastClient(t, ""))
	hybrid.Set(ctx, n1, "k", "v1")
	for _, n := range []*hybrid.Cache{n2, n3} {
		if v, _ := get(t, n, "k"); v != "v1" { // from L2, now held in L1
			t.Fatalf("got %q", v)
		}
	}
	// Set on node 1: nodes 2 and 3 replace their copies with the entry the
	// message carries (a small value), and serve v2 from memory.
	hybrid.Set(ctx, n1, "k", "v2")
	for i, n := range []*hybrid.Cache{n2, n3} {
		redistest.Eventually(t, fmt.Sprint("node ", i+2, " to serve v2 from memory"), func() bool {
			v, ok := get(t, n, "k", l1Only)
			return ok && v == "v2"
		})
		if v, _ := get(t, n, "k"); v != "v2" {
			t.Fatalf("node %d after Set: %q, want v2", i+2, v)
		}
	}
	// Remove: every node misses.
	n1.Remove(ctx, "k")
	for i, n := range []*hybrid.Cache{n2, n3} {
		redistest.Eventually(t, fmt.Sprint("node ", i+2, " to miss after Remove"), func() bool {
			_, ok := get(t, n, "k", allowStale)
			return !ok
		})
	}
	// Expire: fresh reads miss everywhere, fail-safe reads still get the value.
	hybrid.Set(ctx, n1, "e", "old")
	get(t, n2, "e")
	get(t, n3, "e")
	n1.Expire(ctx, "e")
	for i, n := range []*hybrid.Cache{n1, n2, n3} {
		redistest.Eventually(t, fmt.Sprint("node ", i+1, " to treat e as expired"), func() bool {
			_, ok := get(t, n, "e")
			return !ok
		})
		v, err := hybrid.GetOrSet(ctx, n, "e", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			return "", fmt.Errorf("db down")
		})
		if err != nil || v != "old" {
			t.Fatalf("node %d fail-safe after Expire: %q, %v", i+1, v, err)
		}
	}
}

func TestBackplaneCachesDoNotHearEachOther(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	d := strata.CacheSettings{Entry: hybrid.EntryOptions{Duration: time.Hour}}
	p1 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: srv.FastClient(t, "")}, Defaults: &d, Logger: quiet})
	p2 := newProvider(t, strata.Settings{Redis: &strata.RedisSettings{Client: srv.FastClient(t, "")}, Defaults: &d, Logger: quiet})
	a1, _ := p1.Register("a")
	p1.Register("b")
	a2, _ := p2.Register("a")
	b2, _ := p2.Register("b")
	for i := range 20 {
		hybrid.Set(ctx, a1, fmt.Sprint("k", i), "x")
	}
	redistest.Eventually(t, "a's messages to reach a on node 2", func() bool { return a2.Stats().BackplaneReceived == 20 })
	if got := b2.Stats().BackplaneReceived; got != 0 {
		t.Fatalf("cache b received %d of cache a's messages", got)
	}
}

func TestSkipBackplaneKeepsChangeLocal(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, ""))
	hybrid.Set(ctx, n1, "k", "old")
	get(t, n2, "k")
	skip := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipBackplane = true })
	hybrid.Set(ctx, n1, "k", "local", skip)
	// A later message on the same channel arrives after the skipped one would have.
	hybrid.Set(ctx, n1, "marker", "m")
	redistest.Eventually(t, "the marker message", func() bool { return n2.Stats().BackplaneReceived >= 2 })
	if v, ok := get(t, n2, "k", l1Only); !ok || v != "old" {
		t.Fatalf("node 2 holds %q, %v: a SkipBackplane change reached it", v, ok)
	}
}

// After its subscription was down while another node wrote, a node must
// not serve its old copy: it verifies it against L2 first.
func TestReconnectVerifiesBeforeUse(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	proxy := srv.Proxy(t)
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, proxy.Addr()))
	hybrid.Set(ctx, n1, "k", "old")
	hybrid.Set(ctx, n1, "same", "unchanged")
	get(t, n2, "k")
	get(t, n2, "same")
	// Cut node 2 off (its reconnections are held), write, then let it back.
	proxy.Pause()
	proxy.ResetAll()
	hybrid.Set(ctx, n1, "k", "new")
	gaps := n2.Stats().BackplaneGaps
	proxy.Resume()
	redistest.Eventually(t, "node 2 to resubscribe", func() bool { return n2.Stats().BackplaneGaps > gaps })
	if v, _ := get(t, n2, "k"); v != "new" {
		t.Fatalf("after the reconnect node 2 served %q, want new", v)
	}
	// An entry that did not change is verified, not reloaded, and kept.
	if v, _ := get(t, n2, "same"); v != "unchanged" {
		t.Fatalf("got %q", v)
	}
	if v, ok := get(t, n2, "same", l1Only); !ok || v != "unchanged" {
		t.Fatalf("verified entry not kept in L1: %q, %v", v, ok)
	}
}

func TestRedisRestartReplaysPublishes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false })
	n2 := bpNode(t, srv.FastClient(t, ""))
	hybrid.Set(ctx, n1, "k", "old")
	get(t, n2, "k")
	srv.Kill(t)
	if err := hybrid.Set(ctx, n1, "k", "new"); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	redistest.Eventually(t, "node 2 to converge on the new value", func() bool {
		v, _ := get(t, n2, "k")
		return v == "new"
	})
}

// A read on node 2 that races a Remove on node 1 never leaves the old
// value in node 2's memory tier.
func TestReadRacingRemoteRemove(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, ""))
	for i := range 40 {
		key := fmt.Sprint("k", i)
		received := n2.Stats().BackplaneReceived
		hybrid.Set(ctx, n1, key, "old")
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 5 {
				get(t, n2, key)
			}
		})
		wg.Go(func() {
			hybrid.GetOrSet(ctx, n2, key, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) { return "loaded", nil })
		})
		wg.Go(func() { n1.Remove(ctx, key) })
		wg.Wait()
		redistest.Eventually(t, "the Set and the Remove to reach node 2", func() bool { return n2.Stats().BackplaneReceived >= received+2 })
		if v, ok := get(t, n2, key, l1Only); ok && v == "old" {
			t.Fatalf("round %d: node 2 kept the removed value in memory", i)
		}
	}
}

// Two OS processes share values through Redis and the backplane.
const nodeEnv = "STRATA_TEST_NODE_URL"

func TestSeparateProcesses(t *testing.T) {
	srv := redistest.Start(t)
	a := startNode(t, srv.URL())
	b := startNode(t, srv.URL())
	a.do(t, "set k one")
	if got := b.do(t, "get k"); got != "one" {
		t.Fatalf("process b read %q", got)
	}
	a.do(t, "set k two")
	redistest.Eventually(t, "process b to see the new value", func() bool { return b.do(t, "get k") == "two" })
}

type nodeProc struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

func startNode(t *testing.T, url string) *nodeProc {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+url)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	n := &nodeProc{in: in, out: bufio.NewScanner(out)}
	if got := n.do(t, "ping"); got != "pong" {
		t.Fatalf("helper process answered %q", got)
	}
	return n
}

func (n *nodeProc) do(t *testing.T, cmd string) string {
	t.Helper()
	fmt.Fprintln(n.in, cmd)
	if !n.out.Scan() {
		t.Fatalf("helper process gone: %v", n.out.Err())
	}
	return n.out.Text()
}

// runNode is the helper process: a provider on the Redis URL, commands on
// stdin ("set k v", "get k", "ping"), one answer line each.
func runNode() int {
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{URL: os.Getenv(nodeEnv)}, Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer p.Close()
	c, err := p.Register("app")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "ping":
			fmt.Println("pong")
		case len(f) == 3 && f[0] == "set":
			noBG := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false })
			if err := hybrid.Set(ctx, c, f[1], f[2], noBG); err != nil {
				fmt.Println("error", err)
				continue
			}
			fmt.Println("ok")
		case len(f) == 2 && f[0] == "get":
			v, ok, err := hybrid.TryGet[string](ctx, c, f[1])
			switch {
			case err != nil:
				fmt.Println("error", err)
			case !ok:
				fmt.Println("miss")
			default:
				fmt.Println(v)
			}
		default:
			fmt.Println("error unknown command")
		}
	}
	return 0
}

// The subscriber connections are killed by Redis (CLIENT KILL TYPE pubsub)
// while another node writes: after the reconnect the node does not serve
// the old value, whether or not the message was lost.
func TestClientKillPubsubThenNoOldValue(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	n1 := bpNode(t, srv.FastClient(t, ""))
	n2 := bpNode(t, srv.FastClient(t, ""))
	admin := srv.Client(t)
	for round := range 5 {
		key := fmt.Sprint("k", round)
		hybrid.Set(ctx, n1, key, "old")
		if v, _ := get(t, n2, key); v != "old" {
			t.Fatalf("setup: %q", v)
		}
		gaps := n2.Stats().BackplaneGaps
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		hybrid.Set(ctx, n1, key, "new")
		redistest.Eventually(t, "node 2 to resubscribe", func() bool { return n2.Stats().BackplaneGaps > gaps })
		if v, _ := get(t, n2, key); v != "new" {
			t.Fatalf("round %d: after the reconnect node 2 served %q", round, v)
		}
	}
}

// splitNode is a process whose distributed tier and backplane are on two
// clients (the backplane's possibly through a proxy of its own).
func splitNode(t *testing.T, l2c, bpc redis.UniversalClient) *hybrid.Cache {
	t.Helper()
	bp, err := backplane.NewRedis(bpc, backplane.RedisOptions{Channel: backplane.ChannelName("", "app:"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := hybrid.New(hybrid.Options{Name: "app", KeyPrefix: "app:", L2: hybrid.NewRedisL2(l2c), Backplane: bp,
		Logger: quietLogger(), WaitForInitialBackplaneSubscribe: 10 * time.Second,
		Entry: hybrid.EntryOptions{Duration: time.Hour, FailSafe: true, L2HardTimeout: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The backplane down, the distributed tier up: the node keeps writing to
// and reading from the tier, and its queued messages go out once the
// backplane is back. (A failed publish used to trip the tier's circuit
// breaker, on every replay attempt: the node stopped using a healthy Redis
// for as long as the backplane was down.)
func TestBackplaneDownDoesNotStopL2(t *testing.T) {
	srv := redistest.Start(t)
	px := srv.Proxy(t)
	ctx := context.Background()
	raw := srv.Client(t)
	a := splitNode(t, srv.FastClient(t, ""), srv.FastClient(t, px.Addr()))
	b := splitNode(t, srv.FastClient(t, ""), srv.FastClient(t, ""))
	if err := hybrid.Set(ctx, a, "k", "old"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, b, "k"); v != "old" {
		t.Fatalf("b reads %q", v)
	}
	px.Pause()
	px.ResetAll()
	if err := hybrid.Set(ctx, a, "k", "new"); err != nil { // written; its message is queued
		t.Fatal(err)
	}
	redistest.Eventually(t, "a replay of the queued message to fail", func() bool { return a.Stats().BackplaneErrors >= 2 })
	if err := hybrid.Set(ctx, a, "k2", "while the backplane is down"); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(ctx, "app:k2").Result(); err != nil || n != 1 {
		t.Fatalf("a's Set did not reach a healthy Redis: exists=%d, %v; stats %+v", n, err, a.Stats())
	}
	if err := hybrid.Set(ctx, b, "fromB", "b"); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, a, "fromB"); !ok || v != "b" {
		t.Fatalf("a's read of a key in a healthy Redis = %q, %v; stats %+v", v, ok, a.Stats())
	}
	if st := a.Stats(); st.L2CircuitOpen {
		t.Fatalf("the L2 circuit breaker opened on backplane errors: %+v", st)
	}
	px.Resume()
	redistest.Eventually(t, "b to hear of a's queued change", func() bool {
		v, _ := get(t, b, "k")
		return v == "new"
	})
}

// backBeforeL2 sets the scene of the tests below: two nodes whose Redis
// and backplane connections go through proxies of their own; a loads the
// keys k0..k4 with load (value "held"), b reads k0 the same way; then Redis
// and the backplane go away, b sets k0 (queued for auto-recovery), and the
// backplane alone comes back: a has reported its gap when it returns.
// resume brings Redis back. load returns the values read and fails t on an
// error.
func backBeforeL2(t *testing.T, load func(c *hybrid.Cache, keys []string, v string) []string) (a, b *hybrid.Cache, keys []string, resume func()) {
	t.Helper()
	srv := redistest.Start(t)
	pl, pb := srv.Proxy(t), srv.Proxy(t)
	a = splitNode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()))
	b = splitNode(t, srv.FastClient(t, pl.Addr()), srv.FastClient(t, pb.Addr()))
	keys = []string{"k0", "k1", "k2", "k3", "k4"}
	load(a, keys, "held")
	if v := load(b, keys[:1], "other"); v[0] != "held" {
		t.Fatalf("b reads k0 = %q", v[0])
	}
	pl.Pause()
	pl.ResetAll()
	pb.Pause()
	pb.ResetAll()
	if err := hybrid.Set(context.Background(), b, "k0", "b's write"); err != nil { // queued: Redis is away
		t.Fatal(err)
	}
	gaps := a.Stats().BackplaneGaps
	pb.Resume() // the backplane is back, Redis (through pl) is not
	redistest.Eventually(t, "a's backplane gap", func() bool { return a.Stats().BackplaneGaps > gaps })
	return a, b, keys, pl.Resume
}

// The backplane reconnects while the distributed tier is still down: the
// entries from before the gap cannot be verified, so they are served from
// memory (fresh by their own lifetime, still unverified) instead of every
// key being reloaded from the factory, and a node's own write that waits in
// its recovery queue is not replaced by a reload. Once Redis answers, the
// nodes converge on the newest write.
func TestBackplaneBackBeforeL2ServesMemory(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	factory := func(v string) hybrid.Factory[string] {
		return func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			calls.Add(1)
			return v, nil
		}
	}
	a, b, keys, resume := backBeforeL2(t, func(c *hybrid.Cache, keys []string, v string) []string {
		out := make([]string, len(keys))
		for i, k := range keys {
			var err error
			if out[i], err = hybrid.GetOrSet(ctx, c, k, factory(v)); err != nil {
				t.Fatal(err)
			}
		}
		return out
	})
	calls.Store(0)
	for _, k := range keys {
		if v, err := hybrid.GetOrSet(ctx, a, k, factory("reloaded")); err != nil || v != "held" {
			t.Fatalf("a: GetOrSet(%s) = %q, %v; want its copy from memory", k, v, err)
		}
	}
	if v, err := hybrid.GetOrSet(ctx, b, "k0", factory("reloaded")); err != nil || v != "b's write" {
		t.Fatalf("b: GetOrSet(k0) = %q, %v; want its own queued write", v, err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d factory calls while Redis was down after the gap; want none", n)
	}
	resume()
	redistest.Eventually(t, "a to read b's replayed write", func() bool {
		v, _ := get(t, a, "k0")
		return v == "b's write"
	})
}

// The same for the batch operations: after a backplane gap with the
// distributed tier still down, GetOrSetMany and TryGetMany answer with the
// entries memory held from before the gap instead of reloading them or
// missing.
func TestBackplaneBackBeforeL2ServesMemoryBatch(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	factory := func(v string) hybrid.BatchFactory[string] {
		return func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			calls.Add(int64(len(bc.Keys())))
			out := make(map[string]string, len(bc.Keys()))
			for _, k := range bc.Keys() {
				out[k] = v
			}
			return out, nil
		}
	}
	a, b, keys, resume := backBeforeL2(t, func(c *hybrid.Cache, keys []string, v string) []string {
		res, err := hybrid.GetOrSetMany(ctx, c, keys, factory(v))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(res))
		for i, r := range res {
			out[i] = r.Value
		}
		return out
	})
	calls.Store(0)
	res, err := hybrid.TryGetMany[string](ctx, a, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Found || r.Err != nil || r.Value != "held" {
			t.Fatalf("a: TryGetMany[%s] = %+v; want its copy from memory", keys[i], r)
		}
	}
	res, err = hybrid.GetOrSetMany(ctx, a, keys, factory("reloaded"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Value != "held" {
			t.Fatalf("a: GetOrSetMany[%s] = %+v; want its copy from memory", keys[i], r)
		}
	}
	if res, err := hybrid.GetOrSetMany(ctx, b, keys[:1], factory("reloaded")); err != nil || res[0].Value != "b's write" {
		t.Fatalf("b: GetOrSetMany(k0) = %+v, %v; want its own queued write", res, err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d keys asked of the factory while Redis was down after the gap; want none", n)
	}
	resume()
	redistest.Eventually(t, "a to read b's replayed write", func() bool {
		res, err := hybrid.TryGetMany[string](ctx, a, keys[:1])
		return err == nil && res[0].Value == "b's write"
	})
}
