package hybrid

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

// gateHook holds commands (real commands to a real server, held before
// they are sent) on some keys until the test opens the gate, and records the
// GETs and scripts (writes) that went out in pipelines.
type gateHook struct {
	cmd     string          // "get", "evalsha", ...
	keys    map[string]bool // the keys whose first such command is held
	mu      sync.Mutex
	held    chan struct{} // closed when every one is held
	nheld   int
	open    chan struct{}
	batches [][]string // the GETs and writes of each pipeline
}

func newGateHook(cmd string, keys ...string) *gateHook {
	h := &gateHook{cmd: cmd, keys: map[string]bool{}, held: make(chan struct{}), open: make(chan struct{})}
	for _, k := range keys {
		h.keys[k] = true
	}
	return h
}

// take reports whether cmd is to be held: the first command of its kind on
// one of the keys.
func (h *gateHook) take(cmd redis.Cmder) bool {
	if cmd.Name() != h.cmd {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range cmd.Args()[1:] {
		if k, ok := a.(string); ok && h.keys[k] {
			delete(h.keys, k)
			h.nheld++
			if len(h.keys) == 0 {
				close(h.held)
			}
			return true
		}
	}
	return false
}

// gateKeys are the keys of the calls that fill a coalescer's slots.
func gateKeys(prefix string) []string {
	keys := make([]string, coalesceSlots)
	for i := range keys {
		keys[i] = fmt.Sprint(prefix, i)
	}
	return keys
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.hold(ctx, cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

// hold waits for the gate to open if cmd is one to hold.
func (h *gateHook) hold(ctx context.Context, cmds ...redis.Cmder) error {
	for _, cmd := range cmds {
		if h.take(cmd) {
			select {
			case <-h.open:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var gets []string
		for _, c := range cmds {
			switch c.Name() {
			case "get":
				gets = append(gets, fmt.Sprint(c.Args()[1]))
			case "evalsha", "eval":
				gets = append(gets, "write "+fmt.Sprint(c.Args()[3]))
			}
		}
		if len(gets) > 0 {
			h.mu.Lock()
			h.batches = append(h.batches, gets)
			h.mu.Unlock()
		}
		if err := h.hold(ctx, cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// gatedCache is a cache on a real Redis whose reads of the keys gate-0 ..
// (one per slot of its coalescer) are held by the hook, with the values v-0
// .. v-(n-1) at k-0 .. k-(n-1).
func gatedCache(t *testing.T, n int) (*Cache, *gateHook, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	client := srv.FastClient(t, "")
	c, err := New(Options{Name: "app", L2: NewRedisL2(client), Entry: EntryOptions{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for i := range n {
		if err := Set(ctx, c, fmt.Sprint("k-", i), fmt.Sprint("v-", i)); err != nil {
			t.Fatal(err)
		}
	}
	h := newGateHook("get", gateKeys("app:gate-")...)
	client.AddHook(h)
	return c, h, client
}

// fillSlots reads the gate keys, one per slot of c's read coalescer, and
// returns once the hook holds them all; the channel is closed when they
// have all returned, ok is whether all were answered.
func fillSlots(c *Cache, h *gateHook) (done chan bool) {
	done = make(chan bool, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := true
	for i := range coalesceSlots {
		wg.Go(func() {
			_, ok := readL2Value(c, fmt.Sprint("gate-", i), 0)
			mu.Lock()
			all = all && ok
			mu.Unlock()
		})
	}
	go func() { wg.Wait(); done <- all }()
	<-h.held
	return done
}

// readL2 reads key from the distributed tier the way a load does (getL2),
// decoded.
func readL2Value(c *Cache, key string, timeout time.Duration) (string, bool) {
	e, answered := readL2[string](context.Background(), c, key, &c.entry, false)
	if e == nil {
		return "", answered
	}
	v, _ := valueOf[string](e)
	return v, answered
}

// Reads that arrive while every slot is out wait, then go together in one
// pipeline, and each gets its own value.
func TestReadCoalescerBatchesReadsInFlight(t *testing.T) {
	const n = 20
	c, h, _ := gatedCache(t, n)
	gate := fillSlots(c, h)
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		wg.Go(func() { got[i], _ = readL2Value(c, fmt.Sprint("k-", i), 0) })
	}
	redistest.Eventually(t, "the reads to queue behind the slots out", func() bool {
		c.co.reads.mu.Lock()
		defer c.co.reads.mu.Unlock()
		return len(c.co.reads.q) == n
	})
	close(h.open)
	wg.Wait()
	if !<-gate {
		t.Fatal("the gated reads were not answered")
	}
	for i := range n {
		if want := fmt.Sprint("v-", i); got[i] != want {
			t.Errorf("k-%d = %q, want %q", i, got[i], want)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) != 1 || len(h.batches[0]) != n {
		t.Fatalf("pipelines of GETs: %v; want one of %d", h.batches, n)
	}
}

// A queued read still ends at its own deadline: a timeout, as without the
// coalescer, while the read out hangs.
func TestReadCoalescerWaiterTimesOut(t *testing.T) {
	c, h, _ := gatedCache(t, 1)
	fillSlots(c, h)
	before := c.stats.l2Timeouts.Load()
	if b, ok := c.getL2(context.Background(), "k-0", 50*time.Millisecond); ok || b != nil {
		t.Fatalf("getL2 behind a hung read = %q, %v; want a timeout", b, ok)
	}
	if got := c.stats.l2Timeouts.Load(); got != before+1 {
		t.Fatalf("L2 timeouts %d -> %d, want one more", before, got)
	}
	close(h.open)
}

// A read that finds the one out stuck for longer than coalesceStuck does
// not queue behind it: it goes alone, and is answered while the stuck one
// still hangs.
func TestReadCoalescerBypassesStuckRead(t *testing.T) {
	c, h, _ := gatedCache(t, 1)
	fillSlots(c, h)
	defer close(h.open)
	time.Sleep(coalesceStuck + time.Millisecond) // for the clock, not for a goroutine
	readsAtOnce(t, c, "a read queued behind a stuck one")
}

// readsAtOnce reads k-0 (v-0) while another read is held: it must be
// answered long before that one is let go; failure says why it was not.
func readsAtOnce(t *testing.T, c *Cache, failure string) {
	t.Helper()
	done := make(chan string, 1)
	go func() { v, _ := readL2Value(c, "k-0", 0); done <- v }()
	select {
	case v := <-done:
		if v != "v-0" {
			t.Fatalf("k-0 = %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
	}
}

// A key of another Redis type in a batch is that key's error (as a lone GET
// reports it), not a silent miss; the other keys are read.
func TestReadCoalescerWrongTypeInBatch(t *testing.T) {
	c, h, client := gatedCache(t, 1)
	if err := client.RPush(context.Background(), "app:list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	fillSlots(c, h)
	var wg sync.WaitGroup
	var v string
	var listErr error
	wg.Go(func() { v, _ = readL2Value(c, "k-0", 0) })
	wg.Go(func() { _, listErr = c.co.get(context.Background(), "app:list") })
	redistest.Eventually(t, "both reads to queue", func() bool {
		c.co.reads.mu.Lock()
		defer c.co.reads.mu.Unlock()
		return len(c.co.reads.q) == 2
	})
	close(h.open)
	wg.Wait()
	if v != "v-0" {
		t.Errorf("k-0 = %q", v)
	}
	if listErr == nil || !strings.Contains(listErr.Error(), "WRONGTYPE") {
		t.Errorf("a list read in a batch: %v, want WRONGTYPE", listErr)
	}
}

// Close with reads queued (without deadlines) behind a hung one: once the
// hung one returns, the queued reads end too (the batch runs on the closing
// cache's cancelled context), and no goroutine stays behind (goleak, in
// TestMain).
func TestReadCoalescerClose(t *testing.T) {
	c, h, _ := gatedCache(t, 3)
	gate := fillSlots(c, h)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { readL2Value(c, fmt.Sprint("k-", i), 0) })
	}
	redistest.Eventually(t, "the reads to queue", func() bool {
		c.co.reads.mu.Lock()
		defer c.co.reads.mu.Unlock()
		return len(c.co.reads.q) == 3
	})
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	close(h.open)
	<-gate
	wg.Wait()
	<-closed
}

// Writes that arrive while every slot is out go together in one pipeline of
// scripts, each newest-wins and announced as alone: the other node hears
// of every one, and a write that lost to a newer one made meanwhile
// announces nothing and leaves the writer with the newer value.
func TestWriteCoalescerBatchesWritesInFlight(t *testing.T) {
	srv := redistest.Start(t)
	ch := backplane.ChannelName("", "app")
	mk := func(client *redis.Client) *Cache {
		bp, err := backplane.NewRedis(client, backplane.RedisOptions{Channel: ch, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Options{Name: "app", L2: NewRedisL2(client), Backplane: bp, Logger: slog.New(slog.DiscardHandler),
			WaitForInitialBackplaneSubscribe: 5 * time.Second, Entry: EntryOptions{Duration: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	aClient := srv.FastClient(t, "")
	a, b := mk(aClient), mk(srv.FastClient(t, ""))
	ctx := context.Background()
	const n = 10
	for i := range n {
		if err := Set(ctx, b, fmt.Sprint("k-", i), "old"); err != nil {
			t.Fatal(err)
		}
	}
	redistest.Eventually(t, "a to hear of b's writes", func() bool { return a.Stats().BackplaneReceived >= n })
	h := newGateHook("evalsha", gateKeys("app:gate-")...)
	aClient.AddHook(h)
	for i := range coalesceSlots {
		go Set(ctx, a, fmt.Sprint("gate-", i), "g")
	}
	<-h.held
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := Set(ctx, a, fmt.Sprint("k-", i), fmt.Sprint("v-", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if err := Set(ctx, a, "lose", "older"); err != nil {
			t.Error(err)
		}
	})
	redistest.Eventually(t, "the writes to queue behind the slots out", func() bool {
		a.co.writes.mu.Lock()
		defer a.co.writes.mu.Unlock()
		return len(a.co.writes.q) == n+1
	})
	if err := Set(ctx, b, "lose", "newer"); err != nil { // after a's: newer
		t.Fatal(err)
	}
	heard := b.Stats().BackplaneReceived
	close(h.open)
	wg.Wait()
	for i := range n {
		k := fmt.Sprint("k-", i)
		redistest.Eventually(t, "b to hear of a's write of "+k, func() bool {
			v, ok, _ := TryGet[string](ctx, b, k)
			return ok && v == fmt.Sprint("v-", i)
		})
	}
	if v, ok, err := TryGet[string](ctx, a, "lose"); err != nil || !ok || v != "newer" {
		t.Fatalf("a's lost write: a reads %q, %v, %v; want b's newer", v, ok, err)
	}
	if got := b.Stats().BackplaneReceived - heard; got != coalesceSlots+n { // the gates' and the n writes that won
		t.Errorf("b heard %d messages, want %d (the lost write announces nothing)", got, coalesceSlots+n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) != 1 || len(h.batches[0]) != n+1 {
		t.Fatalf("pipelines: %v; want one of %d writes", h.batches, n+1)
	}
}

// With DisableL2Coalescing every call goes on its own: a read is answered
// while another is held, where it would queue behind it.
func TestL2CoalescingDisabled(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.FastClient(t, "")
	c, err := New(Options{Name: "app", L2: NewRedisL2(client), DisableL2Coalescing: true, Entry: EntryOptions{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Set(context.Background(), c, "k-0", "v-0"); err != nil {
		t.Fatal(err)
	}
	h := newGateHook("get", "app:gate-0")
	client.AddHook(h)
	go readL2Value(c, "gate-0", 0)
	<-h.held
	defer close(h.open)
	readsAtOnce(t, c, "a read waited for another with coalescing off")
}

// While round trips run near their floor (not congested: a far server, a
// light load), a read does not queue behind the one out: it goes at once,
// in parallel, as without the coalescer.
func TestReadCoalescerUncongestedGoesAtOnce(t *testing.T) {
	c, h, _ := gatedCache(t, 1)
	c.co.reads.mu.Lock()
	c.co.reads.floorCur, c.co.reads.window, c.co.reads.avg = int64(time.Millisecond), nowNano(), int64(time.Millisecond)
	c.co.reads.mu.Unlock()
	fillSlots(c, h)
	defer close(h.open)
	readsAtOnce(t, c, "an uncongested read queued behind the one out")
}

// The floor of the round trips is that of the last one or two windows: a
// path that became slower for good (here 100 µs, then 2 ms from then on)
// reads as congestion at first, and no longer once the fast round trips
// are two windows old; a fast one now and then keeps the floor down.
func TestCoalescerFloorForgetsOldRoundTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var k coalescer[int, int]
		const fast, slow = int64(100 * time.Microsecond), int64(2 * time.Millisecond)
		for range 20 {
			k.sample(fast)
		}
		if k.congested() {
			t.Fatal("congested at the floor")
		}
		for range 50 {
			k.sample(slow)
		}
		if !k.congested() {
			t.Fatal("round trips 20 times their floor do not read as congested")
		}
		time.Sleep(coalesceFloorWindow)
		k.sample(slow)
		if !k.congested() {
			t.Fatal("the fast round trips of the window before were forgotten already")
		}
		k.sample(fast) // a fast one now and then keeps the floor
		time.Sleep(coalesceFloorWindow)
		k.sample(slow)
		if !k.congested() {
			t.Fatal("a fast round trip of the window before was forgotten")
		}
		time.Sleep(coalesceFloorWindow)
		for range 50 {
			k.sample(slow)
		}
		if k.congested() {
			t.Fatalf("two windows of slow round trips still read as congested (floor %v, average %v)",
				time.Duration(k.floor()), time.Duration(k.avg))
		}
	})
}
