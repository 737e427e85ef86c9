package strata_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// benchNode is bpNode for a benchmark: a provider with the cache "app" on
// the shared Redis through its own client (closed by b's cleanup).
func benchNode(tb testing.TB, srv *redistest.Server) *hybrid.Cache {
	tb.Helper()
	o := srv.Options()
	o.MaxRetries = -1
	o.DialTimeout = 300 * time.Millisecond
	o.ContextTimeoutEnabled = true
	client := redis.NewClient(o)
	tb.Cleanup(func() { client.Close() })
	d := strata.CacheSettings{Entry: hybrid.EntryOptions{Duration: time.Hour, FailSafe: true, BackgroundL2Operations: true}}
	p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: client}, Defaults: &d, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	c, err := p.Register("app")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// noBackground makes a write return once Redis has it (and the backplane
// message is sent).
var noBackground = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.BackgroundL2Operations = false })

var propagationRun atomic.Int64

// BenchmarkBackplanePropagation measures, on loopback, the time from just
// before a Set on node A until node B no longer serves the old value from
// its memory tier. The Set writes to L2 and publishes in the background
// (benchNode turns BackgroundL2Operations on), so the figure includes the
// L2 write, the PUBLISH, the delivery and B's handler. ns/op is the mean of
// the same interval; p50-us and p99-us are its percentiles.
//
// The poller must not spin until the message has arrived. A goroutine that
// only yields (runtime.Gosched) is always runnable, so its P never reaches
// the scheduler's network poll, and no idle M is left blocked in epoll:
// the message then waits in the socket until sysmon's fallback poll (every
// 10 ms), which made p99 ~10 ms here. A time.Sleep poll is no better: its
// wake-up is rounded to 1 ms. So the poller parks on a separate
// subscription (all channels) until the message of this Set reaches the
// process, checking B at least every millisecond meanwhile, and then
// checks B every 10 µs of time.Sleep. Parked, its P polls the network, so
// B's copy of the message is picked up at once; the 1 ms rounding of
// timers can only make a figure too slow, never too fast.
//
//	go test -run '^$' -bench BackplanePropagation -benchtime=2000x -count=5 .
func BenchmarkBackplanePropagation(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	a := benchNode(b, srv)
	nodeB := benchNode(b, srv)
	run := propagationRun.Add(1)
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "prop:" + strconv.FormatInt(run, 10) + ":" + strconv.Itoa(i)
	}
	// The watcher hears every backplane message; its only use is to tell
	// the poller when to start spinning. Per key, the first message is the
	// setup's Set, the second the measured one.
	watcher := srv.Client(b)
	ps := watcher.PSubscribe(ctx, "*")
	b.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		b.Fatal(err)
	}
	msgs := ps.Channel(redis.WithChannelSize(4096))
	heard := make(map[string]int, 2*b.N)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	durs := make([]time.Duration, 0, b.N)
	rereads := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		k := keys[i]
		// B holds k in its memory tier.
		if err := hybrid.Set(ctx, a, k, "old", noBackground); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if v, ok, err := hybrid.TryGet[string](ctx, nodeB, k); err != nil || !ok || v != "old" {
				b.Fatalf("node B read %q, %v, %v", v, ok, err)
			}
			// The notification of this first write can race B's read and
			// leave a tombstone instead of the value: read again.
			if v, ok, _ := hybrid.TryGet[string](ctx, nodeB, k, l1Only); ok && v == "old" {
				break
			}
			rereads++
			if time.Now().After(deadline) {
				b.Fatal("node B does not hold the key in memory")
			}
		}
		b.StartTimer()

		start := time.Now()
		if err := hybrid.Set(ctx, a, k, "new"); err != nil {
			b.Fatal(err)
		}
		deadline = start.Add(5 * time.Second)
		for {
			v, ok, _ := hybrid.TryGet[string](ctx, nodeB, k, l1Only)
			if !ok || v != "old" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("node B still serves the old value of %s from memory after 5s", k)
			}
			if heard[k] >= 2 {
				time.Sleep(10 * time.Microsecond)
				continue
			}
			select {
			case m := <-msgs:
				if bm, err := backplane.DecodeMessage([]byte(m.Payload)); err == nil {
					heard[bm.Key]++
				}
			case <-tick.C:
			}
		}
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durs)
	us := func(q int) float64 { // q-th percentile, nearest rank
		i := (len(durs)*q + 99) / 100
		return float64(durs[max(i-1, 0)]) / float64(time.Microsecond)
	}
	b.ReportMetric(us(50), "p50-us")
	b.ReportMetric(us(99), "p99-us")
	if rereads > 0 {
		b.Logf("%d of %d setup reads did not leave the value in node B's memory", rereads, b.N)
	}
}

// commandCalls returns how many times Redis ran cmd (lowercase) since its
// statistics were last reset.
func commandCalls(t *testing.T, admin *redis.Client, cmd string) int {
	t.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 0
}

// TestLostUpdatesAcrossReconnect loses every message about 200 changed keys
// on their way to node B, then checks that once B's subscription is back it
// serves none of the old values, and that it keeps 200 unchanged keys in
// memory after one verification read each (no mass reload).
func TestLostUpdatesAcrossReconnect(t *testing.T) {
	const n = 200
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client(t)
	proxy := srv.Proxy(t)
	a := bpNode(t, srv.FastClient(t, ""), func(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false })
	b := bpNode(t, srv.FastClient(t, proxy.Addr()))

	changed := make([]string, n)
	same := make([]string, n)
	for i := range n {
		changed[i], same[i] = fmt.Sprint("changed:", i), fmt.Sprint("same:", i)
		hybrid.Set(ctx, a, changed[i], "old")
		hybrid.Set(ctx, a, same[i], "unchanged")
	}
	for i := range n {
		get(t, b, changed[i])
		get(t, b, same[i])
	}
	redistest.Eventually(t, "node B to hold every key in memory", func() bool {
		for i := range n {
			if _, ok := get(t, b, changed[i], l1Only); !ok {
				return false
			}
			if _, ok := get(t, b, same[i], l1Only); !ok {
				return false
			}
		}
		return true
	})

	// Cut B's connections (its reconnections are held), write, let B back.
	gaps, received, published := b.Stats().BackplaneGaps, b.Stats().BackplaneReceived, a.Stats().BackplanePublished
	proxy.Pause()
	proxy.ResetAll()
	for i := range n {
		if err := hybrid.Set(ctx, a, changed[i], "new"); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Stats().BackplanePublished - published; got != n {
		t.Fatalf("node A published %d messages, want %d", got, n)
	}
	// While cut off, B still serves the old values from memory: pub/sub is
	// at-most-once and nothing tells B yet.
	staleDuringOutage := 0
	for i := range n {
		if v, ok := get(t, b, changed[i], l1Only); ok && v == "old" {
			staleDuringOutage++
		}
	}
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	proxy.Resume()
	redistest.Eventually(t, "node B to report the gap", func() bool { return b.Stats().BackplaneGaps > gaps })
	gapAfter := time.Since(start)
	lostMessages := n - int(b.Stats().BackplaneReceived-received)
	eagerGets := commandCalls(t, admin, "get") // reads caused by the gap itself

	staleAfter, newAfter := 0, 0
	for i := range n {
		switch v, _ := get(t, b, changed[i]); v {
		case "old":
			staleAfter++
		case "new":
			newAfter++
		}
	}
	unchangedServed, keptInL1 := 0, 0
	for i := range n {
		if v, _ := get(t, b, same[i]); v == "unchanged" {
			unchangedServed++
		}
		if v, ok := get(t, b, same[i], l1Only); ok && v == "unchanged" {
			keptInL1++
		}
	}
	verifyGets := commandCalls(t, admin, "get") - eagerGets

	t.Logf("%d changed keys, %d unchanged; messages lost by node B: %d; gap reported %v after Resume", n, n, lostMessages, gapAfter.Round(time.Millisecond))
	t.Logf("during the outage: %d/%d changed keys served old from memory", staleDuringOutage, n)
	t.Logf("after the gap: changed keys old %d, new %d; unchanged keys served %d, then from L1 only %d", staleAfter, newAfter, unchangedServed, keptInL1)
	t.Logf("Redis GETs: %d at the gap (eager reloads), %d for %d first reads after it", eagerGets, verifyGets, 2*n)

	if staleAfter != 0 || newAfter != n {
		t.Errorf("after the gap node B served %d old and %d new values of %d changed keys, want 0 old", staleAfter, newAfter, n)
	}
	if unchangedServed != n || keptInL1 != n {
		t.Errorf("unchanged keys: %d served, %d kept in L1 after verification, want %d and %d", unchangedServed, keptInL1, n, n)
	}
	if eagerGets != 0 {
		t.Errorf("the gap caused %d reads of Redis, want 0 (no mass reload)", eagerGets)
	}
	// One read per key, plus one of the cache's Clear record, which a gap
	// makes the node read again (a Clear may have been missed too).
	if verifyGets > 2*n+1 {
		t.Errorf("%d Redis reads for %d first reads after the gap, want at most one each and one for the Clear record", verifyGets, 2*n)
	}
}
