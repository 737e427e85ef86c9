package hybrid_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

// lockCalls counts one node's lock steps (L2Call events "lock").
type lockCalls struct{ n atomic.Int64 }

func (l *lockCalls) events() *hybrid.Events {
	return &hybrid.Events{L2Call: func(e hybrid.L2CallEvent) {
		if e.Op == "lock" {
			l.n.Add(1)
		}
	}}
}

// lockNodes starts n caches named "app", each on a client of its own
// (processes of one service), with the distributed lock on.
func lockNodes(t *testing.T, n int, client func() redis.UniversalClient, entry hybrid.EntryOptions) ([]*hybrid.Cache, []*lockCalls) {
	t.Helper()
	entry.DistributedLock = true
	nodes := make([]*hybrid.Cache, n)
	calls := make([]*lockCalls, n)
	for i := range nodes {
		calls[i] = &lockCalls{}
		nodes[i] = node(t, client(), entry, func(o *hybrid.Options) { o.Events = calls[i].events() })
	}
	return nodes, calls
}

// stampede runs perNode concurrent GetOrSet calls of key on every node
// with a factory that returns v once every node has reached the lock
// step, so that all of them load the key at once; it returns how many
// factory calls there were across the nodes.
func stampede(t *testing.T, nodes []*hybrid.Cache, calls []*lockCalls, perNode int, key, v string) int64 {
	t.Helper()
	var factoryCalls atomic.Int64
	f := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		factoryCalls.Add(1)
		deadline := time.Now().Add(10 * time.Second)
		for !allReached(calls) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling a condition of the other nodes
		}
		return v, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*perNode)
	for _, n := range nodes {
		for range perNode {
			wg.Go(func() {
				got, err := hybrid.GetOrSet(t.Context(), n, key, f)
				if err == nil && got != v {
					err = fmt.Errorf("got %q, want %q", got, v)
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("GetOrSet(%q): %v", key, err)
	}
	return factoryCalls.Load()
}

func allReached(calls []*lockCalls) bool {
	for _, c := range calls {
		if c.n.Load() == 0 {
			return false
		}
	}
	return true
}

func resetCalls(calls []*lockCalls) {
	for _, c := range calls {
		c.n.Store(0)
	}
}

// noLocksLeft fails t if any lock key remains in client's Redis.
func noLocksLeft(t *testing.T, client redis.UniversalClient) {
	t.Helper()
	scan := func(c *redis.Client) {
		keys, err := c.Keys(t.Context(), "*__strata:lock:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			t.Fatalf("locks left after the loads: %q", keys)
		}
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		if err := cc.ForEachMaster(t.Context(), func(_ context.Context, c *redis.Client) error {
			scan(c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return
	}
	scan(client.(*redis.Client))
}

// Three processes x 200 callers on a cold key: one factory call across
// the cluster (without the lock: one per process, 3). With background L2
// operations too: the holder writes Redis before it releases the lock.
func TestDistributedLockOneFactoryAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			key := fmt.Sprintf("cold-%v", background)
			nodes, calls := lockNodes(t, 3, func() redis.UniversalClient { return srv.FastClient(t, "") },
				hybrid.EntryOptions{Duration: time.Minute, BackgroundL2Operations: background})
			if n := stampede(t, nodes, calls, 200, key, "v1"); n != 1 {
				t.Fatalf("%d factory calls across 3 nodes, want 1", n)
			}
			noLocksLeft(t, srv.FastClient(t, ""))
			for i, n := range nodes {
				if v, ok := mustGet[string](t, n, key); !ok || v != "v1" {
					t.Fatalf("node %d holds %q, %v after the load", i, v, ok)
				}
			}
		})
	}
}

// On a 3-master cluster, keys spanning slots: one factory call per key,
// the lock of each key in the key's slot.
func TestDistributedLockCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes, calls := lockNodes(t, 3, func() redis.UniversalClient { return cl.Client(t) }, hybrid.EntryOptions{Duration: time.Minute})
	keys := []string{"user:1", "user:2", "{team}:3", "a}b", "order:42"}
	slots := map[uint16]bool{}
	for _, k := range keys {
		slots[redisstore.Slot("app:"+k)] = true
		resetCalls(calls)
		if n := stampede(t, nodes, calls, 30, k, "v-"+k); n != 1 {
			t.Fatalf("key %q: %d factory calls across 3 nodes, want 1", k, n)
		}
	}
	if len(slots) < 3 {
		t.Fatalf("the keys span %d slots, want several", len(slots))
	}
	noLocksLeft(t, cl.Client(t))
}

// A factory that fails releases the lock at once: the next load (here
// another node's) takes it and calls its own factory.
func TestDistributedLockReleasedOnFactoryError(t *testing.T) {
	srv := redistest.Start(t)
	nodes, _ := lockNodes(t, 2, func() redis.UniversalClient { return srv.FastClient(t, "") }, hybrid.EntryOptions{})
	var k counter
	if _, err := hybrid.GetOrSet(t.Context(), nodes[0], "k", k.factory("", errDB)); !errors.Is(err, errDB) {
		t.Fatalf("GetOrSet = %v, want the factory's error", err)
	}
	noLocksLeft(t, srv.FastClient(t, ""))
	if v, err := hybrid.GetOrSet(t.Context(), nodes[1], "k", k.factory("v", nil)); err != nil || v != "v" {
		t.Fatalf("next node's GetOrSet = %q, %v", v, err)
	}
	if n := k.calls.Load(); n != 2 {
		t.Fatalf("%d factory calls, want 2 (one per load)", n)
	}
}

// A lock held by a process that neither finishes nor dies: a waiter runs
// the factory itself after DistributedLockTimeout; an eager refresh does
// not run at all (the holder refreshes).
func TestDistributedLockTimeoutAndEagerRefresh(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.FastClient(t, "")
	lock := func(key string) {
		lk := redisstore.LockKey("app:"+key, "app:__strata:lock:"+key)
		if err := rc.Set(t.Context(), lk, "someone-else", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var lc lockCalls
	n := node(t, rc, hybrid.EntryOptions{DistributedLock: true, DistributedLockTimeout: 30 * time.Millisecond,
		Duration: time.Minute, EagerRefreshThreshold: 0.1}, func(o *hybrid.Options) { o.Events = lc.events() })

	lock("stuck")
	var k counter
	if v, err := hybrid.GetOrSet(t.Context(), n, "stuck", k.factory("mine", nil)); err != nil || v != "mine" {
		t.Fatalf("GetOrSet under a foreign lock = %q, %v", v, err)
	}
	if k.calls.Load() != 1 || lc.n.Load() < 2 {
		t.Fatalf("factory calls %d, lock steps %d: want 1 call after polling", k.calls.Load(), lc.n.Load())
	}

	// An entry due for eager refresh, whose key another process locked.
	// (Fresh for 3s, due for eager refresh after 300ms.)
	if err := hybrid.Set(t.Context(), n, "eager", "old", hybrid.WithDuration(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	lock("eager")
	lc.n.Store(0)
	redistest.Eventually(t, "the entry to pass its eager refresh point", func() bool {
		v, err := hybrid.GetOrSet(t.Context(), n, "eager", k.factory("new", nil))
		if err != nil || v != "old" {
			t.Fatalf("GetOrSet = %q, %v; want the cached old value", v, err)
		}
		return lc.n.Load() > 0 // the refresh reached the lock step
	})
	// A load that skips memory joins the refresh if it still runs, and
	// finds the value in the distributed tier if not: either way the
	// refresh has ended when it returns.
	if _, err := hybrid.GetOrSet(t.Context(), n, "eager", k.factory("new", nil), hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.SkipL1Read = true
	})); err != nil {
		t.Fatal(err)
	}
	if got := k.calls.Load(); got != 1 {
		t.Fatalf("%d factory calls: the eager refresh ran although another process holds the lock", got-1)
	}
}

// Redis unreachable: the lock is skipped and the load runs locally.
func TestDistributedLockRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	p := srv.Proxy(t)
	for _, breaker := range []bool{true, false} {
		t.Run(fmt.Sprintf("breaker=%v", breaker), func(t *testing.T) {
			n := node(t, srv.FastClient(t, p.Addr()), hybrid.EntryOptions{DistributedLock: true, L2HardTimeout: 200 * time.Millisecond},
				func(o *hybrid.Options) { o.DisableL2CircuitBreaker = !breaker })
			p.Pause()
			defer p.Resume()
			var k counter
			v, err := hybrid.GetOrSet(t.Context(), n, "k-"+t.Name(), k.factory("v", nil))
			if err != nil || v != "v" || k.calls.Load() != 1 {
				t.Fatalf("GetOrSet with Redis down = %q, %v (%d calls); want the factory's value", v, err, k.calls.Load())
			}
		})
	}
}

// The lock holder is killed (SIGKILL) while its factory runs: another
// process takes the key over once the lease has run out, and calls the
// factory once.
func TestDistributedLockHolderKilled(t *testing.T) {
	srv := redistest.Start(t)
	// A lease long enough that a loaded machine still renews it in time
	// (every third of it), short enough for a quick takeover.
	const lease = time.Second
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), "STRATA_LOCK_HOLDER_REDIS="+srv.Addr())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	for lines.Scan() && lines.Text() != "holding" {
	}
	if lines.Err() != nil {
		t.Fatal(lines.Err())
	}

	rc := srv.FastClient(t, "")
	lk := redisstore.LockKey("app:k", "app:__strata:lock:k")
	var killed atomic.Bool
	var lc lockCalls
	n := node(t, rc, hybrid.EntryOptions{DistributedLock: true, DistributedLockLease: lease, DistributedLockTimeout: time.Minute},
		func(o *hybrid.Options) { o.Events = lc.events() })
	done := make(chan error, 1)
	go func() {
		v, err := hybrid.GetOrSet(context.Background(), n, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
			if !killed.Load() {
				return "", errors.New("factory ran while the holder was alive")
			}
			return "taken-over", nil
		})
		if err == nil && v != "taken-over" {
			err = fmt.Errorf("got %q", v)
		}
		done <- err
	}()
	// This node polls for longer than a lease (25 polls take over 1.06s:
	// 2+4+8+16+32 ms, then 50 ms apart): only the holder's renewals keep the
	// lock from it meanwhile.
	redistest.Eventually(t, "this node to wait longer than a lease", func() bool { return lc.n.Load() >= 25 })
	if rc.Exists(t.Context(), lk).Val() != 1 {
		t.Fatal("the holder's lock is gone while it lives")
	}
	killed.Store(true)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(redistest.EventuallyTimeout):
		t.Fatal("no takeover after the holder died")
	}
}

// TestLockHolderProcess is the lock holder of TestDistributedLockHolderKilled,
// in a process of its own: it takes the lock of "k", prints "holding" and
// blocks in its factory until killed. It does nothing in a normal run.
func TestLockHolderProcess(t *testing.T) {
	addr := os.Getenv("STRATA_LOCK_HOLDER_REDIS")
	if addr == "" {
		t.Skip("the holder process of TestDistributedLockHolderKilled")
	}
	client := redis.NewClient(&redis.Options{Addr: addr})
	n := node(t, client, hybrid.EntryOptions{DistributedLock: true, DistributedLockLease: time.Second})
	_, _ = hybrid.GetOrSet(context.Background(), n, "k", func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		fmt.Println("holding")
		select {} // until killed
	})
	t.Fatal("unreachable")
}

// Bad lock options are refused and change nothing; the option on a cache
// without a Locker tier (memory-only) is a local load.
func TestDistributedLockOptions(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	var k counter
	for _, f := range []func(*hybrid.EntryOptions){
		func(o *hybrid.EntryOptions) { o.DistributedLockLease = -time.Second },
		func(o *hybrid.EntryOptions) { o.DistributedLockTimeout = -time.Second },
	} {
		if _, err := hybrid.GetOrSet(t.Context(), c, "k", k.factory("v", nil), hybrid.WithOptions(f)); !errors.Is(err, hybrid.ErrInvalidOptions) {
			t.Fatalf("GetOrSet with a negative lock option = %v, want ErrInvalidOptions", err)
		}
	}
	if _, err := hybrid.New(hybrid.Options{Entry: hybrid.EntryOptions{DistributedLockLease: -1}}); !errors.Is(err, hybrid.ErrInvalidOptions) {
		t.Fatalf("New with a negative lease = %v, want ErrInvalidOptions", err)
	}
	if k.calls.Load() != 0 {
		t.Fatal("the factory ran for a refused call")
	}
	v, err := hybrid.GetOrSet(t.Context(), c, "k", k.factory("v", nil), hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.DistributedLock = true }))
	if err != nil || v != "v" || k.calls.Load() != 1 {
		t.Fatalf("memory-only GetOrSet with DistributedLock = %q, %v (%d calls)", v, err, k.calls.Load())
	}
}
