package hybrid_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// commandCalls returns how many times the server ran each command
// (INFO commandstats): calls["mget"].
func commandCalls(t *testing.T, c redis.UniversalClient) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		calls[name] = n
	}
	return calls
}

// diff returns the commands run between two commandCalls, without INFO
// and a new connection's handshake, and without the GET and SET that each
// run of the write script makes inside Redis (every write of these tests
// is written, so each EVALSHA runs one of each).
func diff(after, before map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	for _, k := range []string{"info", "hello", "client|setinfo"} {
		delete(d, k)
	}
	if n := d["evalsha"]; n > 0 {
		d["get"] -= n
		d["set"] -= n
	}
	for k, v := range d {
		if v == 0 {
			delete(d, k)
		}
	}
	return d
}

// roundTrips counts what a client sends: single commands and pipelines (a
// go-redis hook that only observes). A new connection's handshake is not
// counted.
type roundTrips struct{ cmds, pipes atomic.Int64 }

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (p *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			p.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (p *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			p.pipes.Add(1)
		}
		return next(ctx, cmds)
	}
}
func (p *roundTrips) reset() { p.cmds.Store(0); p.pipes.Store(0) }

// warm makes a node read the state it reads once (the Clear record) and
// load the write script, so that counted calls count only the batch.
func warm(t *testing.T, c *hybrid.Cache) {
	t.Helper()
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "warm", "x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := hybrid.TryGet[string](ctx, c, "warm", hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })); err != nil {
		t.Fatal(err)
	}
}

func TestBatchRedisRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	var rt1, rt2 roundTrips
	cl1, cl2 := srv.FastClient(t, ""), srv.FastClient(t, "")
	cl1.AddHook(&rt1)
	cl2.AddHook(&rt2)
	n1 := node(t, cl1, hybrid.EntryOptions{Duration: time.Minute})
	n2 := node(t, cl2, hybrid.EntryOptions{Duration: time.Minute})
	warm(t, n1)
	warm(t, n2)
	keys := keysOf(100)

	// 100 cold keys: one MGET, one factory call, one pipelined write.
	l := newLoader(table(100))
	before := commandCalls(t, admin)
	rt1.reset()
	res := mustMany(t, n1, keys, l.factory)
	d := diff(commandCalls(t, admin), before)
	for i, r := range res {
		wantValue(t, r, keys[i], fmt.Sprintf("v%d", i))
	}
	if calls, _ := l.stats(); calls != 1 {
		t.Fatalf("factory calls = %d, want 1", calls)
	}
	if d["mget"] != 1 || d["evalsha"] != 100 || len(d) != 2 {
		t.Fatalf("commands for 100 cold keys: %v; want 1 mget, 100 evalsha", d)
	}
	if c, p := rt1.cmds.Load(), rt1.pipes.Load(); c != 1 || p != 1 {
		t.Fatalf("round trips for 100 cold keys: %d commands + %d pipelines; want 1 + 1", c, p)
	}

	// 100 keys in L2, memory skipped, on another node: one MGET, nothing else.
	l2 := newLoader(nil)
	before = commandCalls(t, admin)
	rt2.reset()
	res = mustMany(t, n2, keys, l2.factory, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	d = diff(commandCalls(t, admin), before)
	for i, r := range res {
		wantValue(t, r, keys[i], fmt.Sprintf("v%d", i))
	}
	if calls, _ := l2.stats(); calls != 0 {
		t.Fatal("the factory ran for keys held by L2")
	}
	if d["mget"] != 1 || len(d) != 1 {
		t.Fatalf("commands for 100 L2 hits: %v; want 1 mget", d)
	}
	if c, p := rt2.cmds.Load(), rt2.pipes.Load(); c != 1 || p != 0 {
		t.Fatalf("round trips for 100 L2 hits: %d commands + %d pipelines; want 1 + 0", c, p)
	}

	// TryGetMany: the same, one MGET.
	before = commandCalls(t, admin)
	tres, err := hybrid.TryGetMany[string](context.Background(), n2, append(keys[:10:10], "absent"),
		hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(commandCalls(t, admin), before); d["mget"] != 1 || len(d) != 1 {
		t.Fatalf("commands for TryGetMany: %v", d)
	}
	wantValue(t, tres[3], "k3", "v3")
	if tres[10].Found {
		t.Fatal("absent found")
	}

	// SetMany: one pipeline.
	vals := map[string]string{}
	for _, k := range keys[:50] {
		vals[k] = "set-" + k
	}
	before = commandCalls(t, admin)
	rt1.reset()
	if err := hybrid.SetMany(context.Background(), n1, vals); err != nil {
		t.Fatal(err)
	}
	if d := diff(commandCalls(t, admin), before); d["evalsha"] != 50 || len(d) != 1 {
		t.Fatalf("commands for SetMany: %v", d)
	}
	if c, p := rt1.cmds.Load(), rt1.pipes.Load(); c != 0 || p != 1 {
		t.Fatalf("round trips for SetMany: %d commands + %d pipelines; want 0 + 1", c, p)
	}
	tres, _ = hybrid.TryGetMany[string](context.Background(), n2, []string{"k7"}, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	wantValue(t, tres[0], "k7 via L2", "set-k7")

	// RemoveMany: the removal records in one pipeline; another node's read
	// of the distributed tier finds them.
	before = commandCalls(t, admin)
	rt1.reset()
	if err := n1.RemoveMany(context.Background(), keys[:10]); err != nil {
		t.Fatal(err)
	}
	if d := diff(commandCalls(t, admin), before); d["evalsha"] != 10 || len(d) != 1 {
		t.Fatalf("commands for RemoveMany: %v", d)
	}
	if c, p := rt1.cmds.Load(), rt1.pipes.Load(); c != 0 || p != 1 {
		t.Fatalf("round trips for RemoveMany: %d commands + %d pipelines; want 0 + 1", c, p)
	}
	tres, _ = hybrid.TryGetMany[string](context.Background(), n2, keys[:11], hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true }))
	for i, r := range tres[:10] {
		if r.Found {
			t.Fatalf("%s found after RemoveMany: %+v", keys[i], r)
		}
	}
	wantValue(t, tres[10], "k10", "set-k10")
}

func TestBatchRedisNewestWins(t *testing.T) {
	srv := redistest.Start(t)
	n1 := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute})
	n2 := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute})
	ctx := context.Background()
	// n1's batch load starts first; n2 writes k0 while it runs; n1's older
	// value must not replace n2's in L2.
	entered, release := make(chan struct{}), make(chan struct{})
	f := func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		close(entered)
		<-release
		return map[string]string{"k0": "old", "k1": "old"}, nil
	}
	done := make(chan struct{})
	go func() { defer close(done); mustMany(t, n1, []string{"k0", "k1"}, f) }()
	<-entered
	if err := hybrid.Set(ctx, n2, "k0", "newer"); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	n3 := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute})
	res, err := hybrid.TryGetMany[string](ctx, n3, []string{"k0", "k1"})
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, res[0], "k0", "newer")
	wantValue(t, res[1], "k1", "old")
}

func TestBatchRedisBackplane(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ch := backplane.ChannelName("", "app")
	mk := func(bpClient *redis.Client) *hybrid.Cache {
		bp, err := backplane.NewRedis(bpClient, backplane.RedisOptions{Channel: ch, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Hour},
			func(o *hybrid.Options) { o.Backplane = bp })
	}
	var rt roundTrips
	bp1 := srv.FastClient(t, "")
	bp1.AddHook(&rt)
	n1, n2 := mk(bp1), mk(srv.FastClient(t, ""))
	ctx := context.Background()
	keys := keysOf(30)
	mustMany(t, n2, keys, newLoader(table(30)).factory) // n2 holds the keys in memory

	vals := map[string]string{}
	for _, k := range keys {
		vals[k] = "new-" + k
	}
	before := commandCalls(t, admin)
	rt.reset()
	if err := hybrid.SetMany(ctx, n1, vals); err != nil {
		t.Fatal(err)
	}
	if d := diff(commandCalls(t, admin), before); d["publish"] != 30 {
		t.Fatalf("commands: %v, want 30 publish", d)
	}
	if c, p := rt.cmds.Load(), rt.pipes.Load(); c != 0 || p != 1 {
		t.Fatalf("backplane round trips: %d commands + %d pipelines; want 0 + 1", c, p)
	}
	// n2 applies each message as a single one: its copies are stale, and
	// the next read takes the new values from L2.
	redistest.Eventually(t, "n2 sees every new value", func() bool {
		res, err := hybrid.TryGetMany[string](ctx, n2, keys)
		if err != nil {
			return false
		}
		for i, r := range res {
			if !r.Found || r.Value != "new-"+keys[i] {
				return false
			}
		}
		return true
	})
	// GetOrSetMany's writes are announced too.
	if err := n1.RemoveMany(ctx, keys[:5]); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "n2 sees the removals", func() bool {
		res, _ := hybrid.TryGetMany[string](ctx, n2, keys[:5])
		for _, r := range res {
			if r.Found {
				return false
			}
		}
		return true
	})
	l := newLoader(map[string]string{"k0": "reloaded"})
	mustMany(t, n1, keys[:1], l.factory)
	redistest.Eventually(t, "n2 sees n1's batch load", func() bool {
		v, ok := mustGet[string](t, n2, "k0")
		return ok && v == "reloaded"
	})
}

func TestBatchRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	mk := func() *hybrid.Cache {
		cc := cl.Client(t)
		bp, err := backplane.NewRedis(cl.Client(t), backplane.RedisOptions{Channel: backplane.ChannelName("", "app"), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return newCache(t, hybrid.Options{Name: "app", Entry: hybrid.EntryOptions{Duration: time.Hour},
			L2: hybrid.NewRedisL2(cc), Backplane: bp, Logger: quietLogger()})
	}
	n1, n2 := mk(), mk()
	ctx := context.Background()
	keys := keysOf(60) // spread over the three masters' slots
	l := newLoader(table(60))
	res := mustMany(t, n1, keys, l.factory)
	for i, r := range res {
		wantValue(t, r, keys[i], fmt.Sprintf("v%d", i))
	}
	mgets := func() (mget, get int) {
		for _, node := range cl.Nodes() {
			c := commandCalls(t, node.Client(t))
			mget += c["mget"]
			get += c["get"]
		}
		return
	}
	m0, g0 := mgets()
	l2 := newLoader(nil)
	res = mustMany(t, n2, keys, l2.factory)
	for i, r := range res {
		wantValue(t, r, keys[i]+" on n2", fmt.Sprintf("v%d", i))
	}
	if calls, _ := l2.stats(); calls != 0 {
		t.Fatal("n2 called its factory for keys in the cluster")
	}
	m1, g1 := mgets()
	if m1-m0 == 0 || g1-g0 > 2 { // a GET or two: n2's first read of the Clear record
		t.Fatalf("n2 read with %d MGET and %d GET, want MGETs only", m1-m0, g1-g0)
	}
	vals := map[string]string{}
	for _, k := range keys {
		vals[k] = "new-" + k
	}
	if err := hybrid.SetMany(ctx, n1, vals); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "n2 sees every new value", func() bool {
		res, err := hybrid.TryGetMany[string](ctx, n2, keys)
		if err != nil {
			return false
		}
		for i, r := range res {
			if !r.Found || r.Value != "new-"+keys[i] {
				return false
			}
		}
		return true
	})
}

func TestBatchRedisDownFailSafe(t *testing.T) {
	srv := redistest.Start(t)
	n := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: 50 * time.Millisecond, FailSafe: true})
	keys := keysOf(3)
	mustMany(t, n, keys, newLoader(table(3)).factory)
	redistest.Eventually(t, "the entries go stale", func() bool { _, ok := mustGet[string](t, n, "k0"); return !ok })
	srv.Kill(t)
	l := newLoader(nil)
	l.err = errDB
	res := mustMany(t, n, append(keys, "k9"), l.factory)
	for i := range keys {
		wantValue(t, res[i], keys[i]+" (stale, Redis down)", fmt.Sprintf("v%d", i))
	}
	if res[3].Err == nil {
		t.Fatalf("k9: %+v, want the factory's error", res[3])
	}
}

// TestBatchFeedRoundTrips: with the backplane on the L2's own client (the
// provider's shared client, where each write's script publishes its
// message), a batch write is still one pipeline, and every change is
// announced.
func TestBatchFeedRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ch := backplane.ChannelName("", "app")
	var rt roundTrips
	shared := srv.FastClient(t, "")
	shared.AddHook(&rt)
	bp, err := backplane.NewRedis(shared, backplane.RedisOptions{Channel: ch, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n1 := node(t, shared, hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) {
		o.Backplane = bp
		o.WaitForInitialBackplaneSubscribe = 5 * time.Second
	})
	warm(t, n1)
	keys := keysOf(40)
	vals := map[string]string{}
	for _, k := range keys {
		vals[k] = "v-" + k
	}
	before := commandCalls(t, admin)
	rt.reset()
	if err := hybrid.SetMany(context.Background(), n1, vals); err != nil {
		t.Fatal(err)
	}
	if c, p := rt.cmds.Load(), rt.pipes.Load(); c != 0 || p != 1 {
		t.Fatalf("SetMany of 40 keys: %d commands + %d pipelines; want 0 + 1", c, p)
	}
	if d := diff(commandCalls(t, admin), before); d["evalsha"] != 40 || d["publish"] != 40 {
		t.Fatalf("commands for SetMany: %v; want 40 evalsha, each publishing", d)
	}
	if st := n1.Stats(); st.BackplanePublished < 40 {
		t.Fatalf("Stats.BackplanePublished = %d, want at least 40", st.BackplanePublished)
	}

	// RemoveMany: the removal records and their messages, one pipeline.
	before = commandCalls(t, admin)
	rt.reset()
	if err := n1.RemoveMany(context.Background(), keys[:10]); err != nil {
		t.Fatal(err)
	}
	if c, p := rt.cmds.Load(), rt.pipes.Load(); c != 0 || p != 1 {
		t.Fatalf("RemoveMany of 10 keys: %d commands + %d pipelines; want 0 + 1", c, p)
	}
	if d := diff(commandCalls(t, admin), before); d["evalsha"] != 10 || d["publish"] != 10 {
		t.Fatalf("commands for RemoveMany: %v; want 10 evalsha, each publishing", d)
	}

	// GetOrSetMany of 20 cold keys: one MGET, one factory call, one pipeline.
	cold := keysOf(60)[40:]
	l := newLoader(table(60))
	before = commandCalls(t, admin)
	rt.reset()
	mustMany(t, n1, cold, l.factory)
	if c, p := rt.cmds.Load(), rt.pipes.Load(); c != 1 || p != 1 {
		t.Fatalf("GetOrSetMany of 20 cold keys: %d commands + %d pipelines; want 1 (the MGET) + 1", c, p)
	}
	if d := diff(commandCalls(t, admin), before); d["mget"] != 1 || d["evalsha"] != 20 || d["publish"] != 20 {
		t.Fatalf("commands for GetOrSetMany: %v; want 1 mget, 20 evalsha, each publishing", d)
	}
}
