package strata_test

// go-redis's own cluster, Sentinel and TLS scenarios (osscluster_test.go,
// sentinel_test.go, the pipeline tests) ported to Strata caches, with 32
// goroutines per test so that the coalesced pipelines of hybrid/coalesce.go
// (docs/l2.md, "Calls under load are coalesced") carry the traffic while
// the topology changes under them.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
)

const (
	topoWorkers = 32
	topoKeys    = 200
	topoPrefix  = "users:"
)

// topoKeyNames are the keys of the load: most spread over every hash slot,
// the last 20 sharing the hash tag {mig} (one slot, the one the migration
// test moves).
func topoKeyNames() []string {
	keys := make([]string, 0, topoKeys)
	for i := range topoKeys - 20 {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("{mig}k%d", i))
	}
	return keys
}

// topoOp is one call of the load, with the times it started and returned.
type topoOp struct {
	key    string
	val    string // the value written or produced; "" for a removal or a read
	kind   byte   // 's' Set, 'g' GetOrSet whose factory value was returned, 'r' Remove, 'p' produced but not returned
	start  time.Time
	end    time.Time
	err    error
	acked  bool
	caller int
	read   string // what a read returned ('G', 't' with ok)
}

// topoLoad runs topoWorkers goroutines of GetOrSet, Set, Remove and TryGet
// on the keys through the nodes, until stopped, and records the history.
type topoLoad struct {
	nodes   []*hybrid.Cache
	keys    []string
	seq     atomic.Int64
	done    atomic.Int64 // calls returned
	maxDur  atomic.Int64 // the longest call, ns
	apiErrs atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	ops     []topoOp
	prod    []topoOp // every factory run: its value may be written whenever it ends
	errs    []string
	// Writes acknowledged in [lostFrom, lostTo) may have been lost by
	// Redis (async replication to the replica promoted after a hang): they
	// do not make later reads stale.
	lostFrom, lostTo time.Time
}

func startTopoLoad(nodes []*hybrid.Cache, keys []string) *topoLoad {
	l := &topoLoad{nodes: nodes, keys: keys, stop: make(chan struct{})}
	for w := range topoWorkers {
		l.wg.Go(func() { l.worker(w) })
	}
	return l
}

func (l *topoLoad) record(op topoOp) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	if op.err != nil && len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Sprintf("%c %q: %v", op.kind, op.key, op.err))
	}
	l.mu.Unlock()
	if op.err != nil {
		l.apiErrs.Add(1)
	}
}

func (l *topoLoad) worker(w int) {
	r := rand.New(rand.NewPCG(uint64(w), 7))
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		n := r.IntN(len(l.nodes))
		c := l.nodes[n]
		key := l.keys[r.IntN(len(l.keys))]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		switch p := r.IntN(100); {
		case p < 40:
			var produced string
			var pstart time.Time
			v, err := hybrid.GetOrSet(ctx, c, key, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				// The result's timestamp is taken right before the factory
				// runs (docs/backplane.md): read the clock first, before
				// anything that may wait (l.mu is contended by every
				// worker), or a Set that ended while this factory waited
				// for the lock would look older than this result when it
				// is newer (a false stale read; failed CI once).
				fstart := time.Now()
				val := fmt.Sprintf("g%d", l.seq.Add(1))
				l.mu.Lock()
				l.prod = append(l.prod, topoOp{key: key, val: val, kind: 'p', start: fstart, end: time.Unix(1<<40, 0), caller: n})
				pstart, produced = fstart, val
				l.mu.Unlock()
				return val, nil
			})
			end := time.Now()
			l.mu.Lock()
			prod, ps := produced, pstart
			l.mu.Unlock()
			switch {
			case prod != "" && v == prod && err == nil:
				l.record(topoOp{key: key, val: prod, kind: 'g', start: ps, end: end, acked: true, caller: n})
			case prod != "":
				// Returned something else (or nothing): the factory's value may
				// still be written later; it can justify a final state, never
				// be required.
				l.record(topoOp{key: key, val: prod, kind: 'p', start: ps, end: time.Unix(1<<40, 0), err: err, caller: n})
			default:
				l.record(topoOp{key: key, kind: 'G', start: start, end: end, err: err, caller: n, read: v})
			}
		case p < 75:
			val := fmt.Sprintf("s%d", l.seq.Add(1))
			err := hybrid.Set(ctx, c, key, val)
			l.record(topoOp{key: key, val: val, kind: 's', start: start, end: time.Now(), err: err, acked: err == nil, caller: n})
		case p < 85:
			err := c.Remove(ctx, key)
			l.record(topoOp{key: key, kind: 'r', start: start, end: time.Now(), err: err, acked: err == nil, caller: n})
		case p < 90:
			err := c.Expire(ctx, key)
			l.record(topoOp{key: key, kind: 'e', start: start, end: time.Now(), err: err, acked: err == nil, caller: n})
		default:
			v, _, err := hybrid.TryGet[string](ctx, c, key)
			l.record(topoOp{key: key, kind: 't', start: start, end: time.Now(), err: err, caller: n, read: v})
		}
		cancel()
		if d := int64(time.Since(start)); d > l.maxDur.Load() {
			l.maxDur.Store(d) // racy max, good enough: one goroutine's view
		}
		l.done.Add(1)
	}
}

// awaitCalls waits until n more calls returned: the load goes on through
// an event for a while, measured in calls, not in time. It waits up to a
// minute, not redistest's 10 s: how fast the calls come depends on the
// machine (a CI run sharing two cores with other tests took over 10 s for
// 20,000 calls), and only a load that stopped is a failure here.
func (l *topoLoad) awaitCalls(t *testing.T, n int64) {
	t.Helper()
	target := l.done.Load() + n
	redistest.EventuallyWithin(t, time.Minute, fmt.Sprintf("%d more calls of the load", n), func() bool { return l.done.Load() >= target })
}

// finish stops the load and fails the test when a goroutine is still in a
// call 10 s later (a hang).
func (l *topoLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	ended := make(chan struct{})
	go func() { l.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("load goroutines still in a call 10 s after the load stopped (a hang)")
	}
}

// noAPIErrors: docs/l2.md line 213, "L2 errors are never returned by
// GetOrSet, TryGet, Set, Remove or Expire".
func (l *topoLoad) noAPIErrors(t *testing.T) {
	t.Helper()
	if n := l.apiErrs.Load(); n != 0 {
		t.Errorf("%d calls of %d returned an error (docs/l2.md: L2 errors are never returned); first: %v", n, len(l.ops), l.errs)
	}
}

// noAPIErrorsBut is noAPIErrors allowing the errors that wrap allowed.
func (l *topoLoad) noAPIErrorsBut(t *testing.T, allowed error) {
	t.Helper()
	n, first := 0, ""
	for _, op := range l.ops {
		if op.err != nil && !errors.Is(op.err, allowed) {
			n++
			if first == "" {
				first = fmt.Sprintf("%c %q: %v", op.kind, op.key, op.err)
			}
		}
	}
	if n != 0 {
		t.Errorf("%d calls of %d returned an error other than %v; first: %s", n, len(l.ops), allowed, first)
	}
}

// settle waits until no node has changes queued for auto-recovery.
// (30 s: after a hang the replay waits out the circuit breaker's probes,
// and a loaded CI machine under -race took longer than redistest's 10 s.)
func settle(t *testing.T, nodes ...*hybrid.Cache) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		drained := true
		for _, n := range nodes {
			if st := n.Stats(); st.RecoveryPending != 0 || st.L2CircuitOpen {
				drained = false
			}
		}
		if drained {
			return
		}
		if time.Now().After(deadline) {
			logStats(t, nodes...)
			t.Fatal("timed out after 30s waiting for the auto-recovery queues to drain")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not standing in for one
	}
}

var fromL2 = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read, o.SkipL1Write = true, true })

// checkFinal reads every key from Redis through reader and checks it
// against the history: the value read (or the miss) must come from a
// change that no acknowledged change started after it returned, among the
// acknowledged changes that started at or after since (earlier ones may
// be lost with a master that died: Redis's own limit, docs/redis.md). It
// returns the values read.
func (l *topoLoad) checkFinal(t *testing.T, reader *hybrid.Cache, since time.Time) map[string]*string {
	t.Helper()
	ctx := context.Background()
	byVal := map[string]topoOp{}
	byKey := map[string][]topoOp{}
	for _, op := range l.prod {
		byVal[op.val] = op
	}
	for _, op := range l.ops {
		if op.val != "" {
			byVal[op.val] = op
		}
		if op.kind == 's' || op.kind == 'g' || op.kind == 'r' || op.kind == 'e' || op.kind == 'p' {
			byKey[op.key] = append(byKey[op.key], op)
		}
	}
	final := map[string]*string{}
	bad := 0
	for _, key := range l.keys {
		v, ok, err := hybrid.TryGet[string](ctx, reader, key, fromL2)
		if err != nil {
			t.Fatalf("final read of %q: %v", key, err)
		}
		var pEnd time.Time
		var desc string
		if ok {
			vv := v
			final[key] = &vv
			p, known := byVal[v]
			if !known || p.key != key {
				t.Errorf("key %q holds %q, a value nobody wrote to it", key, v)
				bad++
				continue
			}
			pEnd, desc = p.end, fmt.Sprintf("%q (%c, %v..%v)", v, p.kind, p.start.Format("05.000000"), p.end.Format("05.000000"))
		} else {
			final[key] = nil
			for _, op := range byKey[key] {
				if (op.kind == 'r' || op.kind == 'e') && op.end.After(pEnd) {
					pEnd = op.end
				}
			}
			if pEnd.IsZero() {
				pEnd = time.Unix(1<<40, 0) // never written but removed? a miss is a miss
				for _, op := range byKey[key] {
					if op.acked && op.kind != 'r' && op.kind != 'e' {
						pEnd = time.Time{}
					}
				}
			}
			desc = "a miss"
		}
		for _, w := range byKey[key] {
			if !w.acked || w.start.Before(since) || !w.start.After(pEnd) {
				continue
			}
			if (w.kind == 'r' || w.kind == 'e') && !ok {
				continue
			}
			if bad < 5 {
				t.Errorf("key %q: Redis holds %s, but the acknowledged %c %q ran %v..%v, after it", key, desc, w.kind, w.val, w.start.Format("05.000000"), w.end.Format("05.000000"))
			}
			bad++
			break
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d keys lost an acknowledged write", bad, len(l.keys))
	}
	return final
}

// lastWrittenIn returns the keys whose last acknowledged change ended in
// [from, to) and that no acknowledged change started after.
func (l *topoLoad) lastWrittenIn(from, to time.Time) []string {
	last := map[string]topoOp{}
	for _, op := range l.ops {
		switch op.kind {
		case 's', 'g', 'r', 'e', 'p':
		default:
			continue
		}
		if op.acked && op.end.After(last[op.key].end) {
			last[op.key] = op
		}
	}
	var keys []string
	for key, op := range last {
		if !op.end.Before(from) && op.end.Before(to) {
			keys = append(keys, key)
		}
	}
	return keys
}

// logKey logs the changes of key (not the reads), for a failed check.
func (l *topoLoad) logKey(t *testing.T, key string, failAt, since time.Time) {
	t.Logf("key %q: failover at %v, nodes on the new master at %v; its changes:", key, failAt.Format("05.000000"), since.Format("05.000000"))
	for _, op := range l.ops {
		if op.key == key && (op.read == "" || !op.start.Before(since)) {
			t.Logf("  node %d %c %q read %q %v..%v acked %v err %v", op.caller, op.kind, op.val, op.read, op.start.Format("05.000000"), op.end.Format("05.000000"), op.acked, op.err)
		}
	}
	for _, op := range l.prod {
		if op.key == key {
			t.Logf("  node %d produced %q %v..%v (a factory's value, maybe not returned)", op.caller, op.val, op.start.Format("05.000000"), op.end.Format("05.000000"))
		}
	}
	ctx := context.Background()
	for i, n := range l.nodes {
		before := n.Stats()
		v, ok, err := hybrid.TryGet[string](ctx, n, key)
		after := n.Stats()
		t.Logf("  node %d now: %q ok %v err %v (L1 hits +%d, L2 hits +%d, L2 misses +%d, L2 errors +%d, L2 timeouts +%d)", i, v, ok, err,
			after.L1Hits-before.L1Hits, after.L2Hits-before.L2Hits, after.L2Misses-before.L2Misses, after.L2Errors-before.L2Errors, after.L2Timeouts-before.L2Timeouts)
		v, ok, err = hybrid.TryGet[string](ctx, n, key, l1Only)
		t.Logf("  node %d memory only: %q ok %v err %v", i, v, ok, err)
		v, ok, err = hybrid.TryGet[string](ctx, n, key, fromL2)
		t.Logf("  node %d Redis only: %q ok %v err %v", i, v, ok, err)
		v, info, ok, err := hybrid.TryGetInfo[string](ctx, n, key, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))
		t.Logf("  node %d stale allowed: %q ok %v err %v created %v stale %v", i, v, ok, err, info.Created.Format("05.000000"), info.Stale)
	}
	logStats(t, l.nodes...)
}

// staleReads counts the reads that returned a value superseded by an
// acknowledged change: of the same node before the read began (read your
// writes, SPEC.md section 3), or of another node more than delta before
// (the backplane's propagation). Reads that began inside [from, to) are
// exempt (a fault).
func (l *topoLoad) staleReads(t *testing.T, delta time.Duration, from, to time.Time) int {
	t.Helper()
	byVal := map[string]topoOp{}
	byKey := map[string][]topoOp{}
	for _, op := range l.prod {
		byVal[op.val] = op
	}
	for _, op := range l.ops {
		if op.val != "" {
			byVal[op.val] = op
		}
		if op.acked {
			byKey[op.key] = append(byKey[op.key], op)
		}
	}
	bad := 0
	for _, r := range l.ops {
		if r.read == "" || r.err != nil || (!r.start.Before(from) && r.start.Before(to)) {
			continue
		}
		// A GetOrSet that waited past the production FactorySoftTimeout
		// (100 ms) may serve a stale copy as a fail-safe fallback
		// (docs/timeouts.md: the timers count the load's L2 reads too).
		if r.kind == 'G' && r.end.Sub(r.start) >= 100*time.Millisecond {
			continue
		}
		p, ok := byVal[r.read]
		if !ok {
			t.Errorf("read of %q returned %q, which nobody wrote", r.key, r.read)
			bad++
			continue
		}
		for _, w := range byKey[r.key] {
			if !w.start.After(p.end) {
				continue
			}
			if !w.end.Before(l.lostFrom) && w.end.Before(l.lostTo) {
				continue // acknowledged by a master that then hung: Redis may have lost it
			}
			d := delta
			if w.caller == r.caller {
				d = 0
			}
			if w.end.Add(d).Before(r.start) {
				if bad < 5 {
					t.Logf("stale read (%c, %v): node %d read %q = %q at %v (written %v..%v), superseded by node %d's %c %q done at %v",
						r.kind, r.end.Sub(r.start), r.caller, r.key, r.read, r.start.Format("05.000000"), p.start.Format("05.000000"), p.end.Format("05.000000"),
						w.caller, w.kind, w.val, w.end.Format("05.000000"))
				}
				bad++
				break
			}
		}
	}
	return bad
}

// coherent waits until every node serves, for every key, what Redis
// holds (final): no stale value served as fresh once the load is over.
func coherent(t *testing.T, final map[string]*string, nodes ...*hybrid.Cache) {
	t.Helper()
	coherentExplained(t, final, nil, nodes...)
}

// coherentExplained is coherent that, when it fails, first calls explain
// (if not nil) with the key that failed.
func coherentExplained(t *testing.T, final map[string]*string, explain func(key string), nodes ...*hybrid.Cache) {
	t.Helper()
	ctx := context.Background()
	var last, lastKey string
	deadline := time.Now().Add(10 * time.Second)
	for {
		last = ""
		for i, n := range nodes {
			for key, want := range final {
				v, ok, err := hybrid.TryGet[string](ctx, n, key)
				if err != nil {
					t.Fatalf("node %d TryGet(%q): %v", i, key, err)
				}
				if (want == nil) != !ok || (ok && v != *want) {
					w := "a miss"
					if want != nil {
						w = *want
					}
					last = fmt.Sprintf("node %d key %q serves %q (ok %v), Redis holds %s", i, key, v, ok, w)
					lastKey = key
					break
				}
			}
			if last != "" {
				break
			}
		}
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			if explain != nil {
				explain(lastKey)
			}
			t.Fatalf("nodes still incoherent with Redis 10 s after the load: %s", last)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
}

// topoNode is one process of the service: a provider on rs with
// synchronous L2 writes (so that an acknowledged write is in Redis or in
// the recovery queue), a short breaker, the cache "users".
func topoNode(t *testing.T, rs *strata.RedisSettings, logger *slog.Logger) (*strata.Provider, *hybrid.Cache) {
	t.Helper()
	d := strata.ProductionDefaults()
	d.Entry.BackgroundL2Operations = false
	d.L2CircuitBreakerDuration = 200 * time.Millisecond
	d.WaitForInitialBackplaneSubscribe = 10 * time.Second
	d.KeyPrefix = topoPrefix
	if logger == nil {
		logger = quietLogger()
	}
	p := newProvider(t, strata.Settings{Redis: rs, Defaults: &d, Logger: logger})
	c, err := p.Register("users")
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func topoNodes(t *testing.T, n int, rs func() *strata.RedisSettings) []*hybrid.Cache {
	t.Helper()
	var nodes []*hybrid.Cache
	for range n {
		_, c := topoNode(t, rs(), nil)
		nodes = append(nodes, c)
	}
	return nodes
}

// replicaOf returns the replica of master in cl.
func replicaOf(t *testing.T, cl *redistest.Cluster, master *redistest.Server) *redistest.Server {
	t.Helper()
	for _, n := range cl.Nodes() {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		info, err := c.Info(context.Background(), "replication").Result()
		c.Close()
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, fmt.Sprintf("master_port:%d\r", master.Port())) {
			return n
		}
	}
	t.Fatalf("no replica of %s", master.Addr())
	return nil
}

func logStats(t *testing.T, nodes ...*hybrid.Cache) {
	for i, n := range nodes {
		st := n.Stats()
		t.Logf("node %d: L2Errors %d L2Timeouts %d L2Refused %d ConfigErrors %d BackplaneErrors %d Gaps %d Recovered %d Dropped %d",
			i, st.L2Errors, st.L2Timeouts, st.L2Refused, st.ConfigErrors, st.BackplaneErrors, st.BackplaneGaps, st.Recovered, st.RecoveryDropped)
	}
}

// TestTopologyClusterSharedUnderLoad: three providers on one cluster,
// keys over every slot; what one writes the others read, and after the
// load every acknowledged write (or a newer change) is in Redis and every
// node serves it.
func TestTopologyClusterSharedUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := topoNodes(t, 3, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 20000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	final := l.checkFinal(t, nodes[1], time.Time{})
	if n := l.staleReads(t, time.Second, time.Time{}, time.Time{}); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change (read-your-writes, or another node's change over 1 s before; docs/backplane.md Guarantees)", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	logStats(t, nodes...)
}

// TestTopologyClusterManualFailoverUnderLoad: CLUSTER FAILOVER (a
// coordinated failover: the replica catches up first, nothing acknowledged
// is lost) of the master that serves the backplane's channel, while 32
// goroutines run.
func TestTopologyClusterManualFailoverUnderLoad(t *testing.T) {
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	nodes := topoNodes(t, 2, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	channel := backplane.ChannelName("", topoPrefix)
	master := cl.MasterFor(channel)
	replica := replicaOf(t, cl, master)
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)

	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	failAt := time.Now()
	redistest.ManualFailover(t, rc) // asks again if Redis abandons it (the load beside it)
	redistest.Eventually(t, "the replica to serve the channel's slot", func() bool { return cl.MasterFor(channel) == replica })
	// The nodes' sharded subscription moves to the new master: a gap, after
	// which entries are verified (docs/backplane.md); until then, misses.
	redistest.Eventually(t, "both nodes to resubscribe", func() bool {
		return nodes[0].Stats().BackplaneGaps > 0 && nodes[1].Stats().BackplaneGaps > 0
	})
	doneAt := time.Now()
	l.awaitCalls(t, 5000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	final := l.checkFinal(t, nodes[0], time.Time{})
	if n := l.staleReads(t, time.Second, failAt, doneAt); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change (read-your-writes, or another node's change over 1 s before; docs/backplane.md Guarantees)", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	logStats(t, nodes...)
}

// TestTopologyClusterKillFailoverUnderLoad: the master of the channel's
// slot is killed while the load runs, its replica takes over. Writes
// acknowledged by the dead master may be lost (asynchronous replication,
// docs/redis.md); those acknowledged once the new master serves must not
// be, and no node serves a stale value afterwards.
func TestTopologyClusterKillFailoverUnderLoad(t *testing.T) {
	t.Cleanup(func() { awaitRedisDialProbes(t) })
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	nodes := topoNodes(t, 2, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	channel := backplane.ChannelName("", topoPrefix)
	master := cl.MasterFor(channel)
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	killAt := time.Now()
	master.Kill(t)
	redistest.Eventually(t, "a replica to take over the channel's slot", func() bool {
		m := cl.MasterFor(channel)
		return m != nil && m != master
	})
	// The nodes follow once their slot maps reload (1 s) and the breaker closes.
	redistest.Eventually(t, "the nodes to write to the new master", func() bool {
		for _, n := range nodes {
			if st := n.Stats(); st.RecoveryPending != 0 || st.L2CircuitOpen {
				return false
			}
		}
		return true
	})
	since := time.Now()
	l.awaitCalls(t, 5000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	// Writes acknowledged after the kill went to the recovery queue, not to
	// the dead master: only those it acknowledged just before it died may
	// be lost (docs/redis.md). 200 ms is far beyond the replication lag.
	final := l.checkFinal(t, nodes[0], killAt.Add(-200*time.Millisecond))
	if n := l.staleReads(t, time.Second, killAt, since); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change (read-your-writes, or another node's change over 1 s before; docs/backplane.md Guarantees)", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	logStats(t, nodes...)
}

// awaitRedisDialProbes waits until go-redis's own dial probes of a dead
// node (internal/pool.(*ConnPool).tryDial, which checks for a closed pool
// only once a second) have noticed that their pools were closed, so that
// goleak in TestMain does not count them against a later test.
func awaitRedisDialProbes(t *testing.T) {
	redistest.Eventually(t, "go-redis's dial probes of the dead master to end", func() bool {
		buf := make([]byte, 1<<22)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "ConnPool).tryDial")
	})
}

// clusterNodeID returns CLUSTER MYID of s.
func clusterNodeID(t *testing.T, c *redis.Client) string {
	t.Helper()
	id, err := c.Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTopologyClusterSlotMigrationUnderLoad: the slot of the keys tagged
// {mig} moves to another master (SETSLOT IMPORTING/MIGRATING, MIGRATE key
// by key, SETSLOT NODE) while 32 goroutines read and write them through
// coalesced pipelines: ASK and MOVED redirections, no wrong value, every
// acknowledged write kept.
func TestTopologyClusterSlotMigrationUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := topoNodes(t, 2, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	ctx := context.Background()
	src := cl.MasterFor(topoPrefix + "{mig}k0")
	var dst *redistest.Server
	for _, n := range cl.Nodes() {
		if n != src {
			dst = n
			break
		}
	}
	sc, dc := redis.NewClient(&redis.Options{Addr: src.Addr()}), redis.NewClient(&redis.Options{Addr: dst.Addr()})
	defer sc.Close()
	defer dc.Close()
	slot, err := sc.ClusterKeySlot(ctx, "{mig}").Result()
	if err != nil {
		t.Fatal(err)
	}
	srcID, dstID := clusterNodeID(t, sc), clusterNodeID(t, dc)

	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	if err := dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(dst.Addr())
	moved := 0
	for {
		keys, err := sc.ClusterGetKeysInSlot(ctx, int(slot), 1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if err := sc.Migrate(ctx, host, port, keys[0], 0, 5*time.Second).Err(); err != nil && !strings.Contains(err.Error(), "NOKEY") {
			t.Fatalf("MIGRATE %s: %v", keys[0], err)
		}
		moved++
		l.awaitCalls(t, 200) // the load runs between two keys' moves: ASK in between
	}
	for _, n := range cl.Nodes() {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err()
		c.Close()
		if err != nil {
			t.Fatalf("SETSLOT NODE on %s: %v", n.Addr(), err)
		}
	}
	t.Logf("moved %d keys of slot %d from %s to %s", moved, slot, src.Addr(), dst.Addr())
	l.awaitCalls(t, 3000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	final := l.checkFinal(t, nodes[1], time.Time{})
	if n := l.staleReads(t, time.Second, time.Time{}, time.Time{}); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change (read-your-writes, or another node's change over 1 s before; docs/backplane.md Guarantees)", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	if n, _ := dc.Exists(ctx, topoPrefix+"{mig}k0").Result(); n == 0 {
		// k0 may be absent only if its last change was never written.
		if final["{mig}k0"] != nil {
			t.Errorf("{mig}k0 not on the new owner %s", dst.Addr())
		}
	}
	logStats(t, nodes...)
}

// TestTopologySentinelFailoverUnderLoad: SENTINEL FAILOVER while 32
// goroutines run on two nodes on failover clients: calls keep answering
// (fail-safe), the nodes follow the new master, and afterwards writes are
// kept and the backplane keeps the nodes coherent.
func TestTopologySentinelFailoverUnderLoad(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, "strata", master, 3, 2)
	var nodes []*hybrid.Cache
	for range 2 {
		client := redis.NewFailoverClient(sentinels.FailoverOptions())
		t.Cleanup(func() { client.Close() })
		_, c := topoNode(t, &strata.RedisSettings{Client: client}, nil)
		nodes = append(nodes, c)
	}
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels.Addrs()[0]})
	defer sc.Close()
	failAt := time.Now()
	if err := sc.Failover(context.Background(), "strata").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	redistest.Eventually(t, "the sentinels to promote the replica", func() bool {
		addr, err := sentinels.Master()
		return err == nil && addr == replica.Addr()
	})
	// Until the old master is a replica, it acknowledges the writes of a
	// client that has not switched yet, and its resync then drops them: a
	// sentinel converts it when it next reads its INFO, up to 10 s after
	// the promotion. Writes acknowledged before that may be lost.
	oc := master.Client(t)
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := oc.Set(context.Background(), "probe", "x", time.Second).Err()
		if err != nil && strings.Contains(err.Error(), "READONLY") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master still accepts writes 30 s after the failover (%v)", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the old master's role
	}
	rc := replica.Client(t)
	redistest.Eventually(t, "the nodes' writes to reach the new master", func() bool {
		n, err := rc.DBSize(context.Background()).Result()
		for _, c := range nodes {
			if st := c.Stats(); st.RecoveryPending != 0 || st.L2CircuitOpen {
				return false
			}
		}
		return err == nil && n > 0
	})
	since := time.Now()
	l.awaitCalls(t, 5000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	// SENTINEL FAILOVER does not stop the old master's clients: a write it
	// acknowledges between the promotion and its demotion is lost with its
	// data (asynchronous replication, Redis's own limit, docs/redis.md).
	// Checked: the writes acknowledged once the nodes follow the new master.
	// (failAt-200ms passed 3 of 3 runs too.)
	final := l.checkFinal(t, nodes[0], since)
	if n := l.staleReads(t, time.Second, failAt, since); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change (read-your-writes, or another node's change over 1 s before; docs/backplane.md Guarantees)", n, len(l.ops))
	}
	// A node that heard of a write that Redis then lost (its message went
	// out before the demotion) keeps it as the newest change of its key
	// until the key is written again or its copy expires: docs/redis.md.
	// Such keys, last written in the window, are not checked for coherence.
	// The window opens a second before the failover: SENTINEL FAILOVER
	// does not wait for the replica to catch up, so a write acknowledged
	// just before it can be lost too (a run failed on a key that was, we
	// think, last written then: the log below now tells).
	for _, key := range l.lastWrittenIn(failAt.Add(-time.Second), since) {
		delete(final, key)
	}
	coherentExplained(t, final, func(key string) {
		l.logKey(t, key, failAt, since)
		addr, err := sentinels.Master()
		if err != nil {
			t.Logf("  sentinels: %v", err)
			return
		}
		rc := redis.NewClient(&redis.Options{Addr: addr})
		defer rc.Close()
		b, err := rc.Get(context.Background(), topoPrefix+key).Bytes()
		ttl := rc.PTTL(context.Background(), topoPrefix+key).Val()
		t.Logf("  Redis at %s (replica was %s): GET %d bytes, err %v, PTTL %v, head %x", addr, replica.Addr(), len(b), err, ttl, b[:min(len(b), 48)])
	}, nodes...)
	// The backplane after the failover: a Set on one node reaches the
	// other's memory.
	if err := hybrid.Set(context.Background(), nodes[0], "k0", "after"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "node 1 to hear of node 0's Set", func() bool {
		v, _ := get(t, nodes[1], "k0", l1Only)
		return v == "after"
	})
	logStats(t, nodes...)
}

// aclServer starts a TLS redis-server whose user cacheapp has the
// documented standalone ACL (docs/redis.md) minus the commands in drop.
func aclServer(t *testing.T, password string, drop ...string) *redistest.Server {
	t.Helper()
	args := []string{"--user", "default", "off", "--user", "cacheapp", "on", ">" + password, "resetchannels",
		"~users:*", "&" + backplane.ChannelName("", topoPrefix), "-@all"}
	for _, c := range []string{"get", "mget", "set", "del", "pexpire", "evalsha", "eval", "publish", "subscribe", "unsubscribe", "ping"} {
		dropped := false
		for _, d := range drop {
			dropped = dropped || d == c
		}
		if !dropped {
			args = append(args, "+"+c)
		}
	}
	return redistest.Start(t, redistest.WithTLS(), redistest.WithArgs(args...))
}

func aclClient(t *testing.T, srv *redistest.Server, password string) *redis.Client {
	o := srv.Options()
	o.Username, o.Password = "cacheapp", password
	o.ContextTimeoutEnabled, o.MaxRetries = true, 1
	o.ReadTimeout, o.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// errorRecords counts the records at Error, by message.
type errorRecords struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *errorRecords) handler(next slog.Handler) slog.Handler { return &errorHandler{e, next} }

type errorHandler struct {
	e    *errorRecords
	next slog.Handler
}

func (h *errorHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.e.mu.Lock()
		h.e.n[r.Message]++
		h.e.mu.Unlock()
	}
	return h.next.Handle(ctx, r)
}
func (h *errorHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &errorHandler{h.e, h.next.WithAttrs(a)}
}
func (h *errorHandler) WithGroup(g string) slog.Handler {
	return &errorHandler{h.e, h.next.WithGroup(g)}
}

// TestTopologyTLSACLWithoutPublishUnderLoad: TLS, an ACL user without
// PUBLISH, 32 goroutines on two nodes. docs/redis.md ("A missing
// permission does not fail requests and never stops a healthy tier"):
// every call answers, writes reach Redis (the script's refused PUBLISH
// leaves the write standing, docs/backplane.md "Sending"), the breaker
// stays closed, Ping names NOPERM, errors are logged at most once a
// minute per cache, and the password is never logged.
func TestTopologyTLSACLWithoutPublishUnderLoad(t *testing.T) {
	const pw = "pw-Zq81-secret"
	srv := aclServer(t, pw, "publish")
	var logs testlog.Buffer
	recs := &errorRecords{n: map[string]int{}}
	logger := slog.New(recs.handler(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var nodes []*hybrid.Cache
	for range 2 {
		_, c := topoNode(t, &strata.RedisSettings{Client: aclClient(t, srv, pw)}, logger)
		nodes = append(nodes, c)
	}
	err := nodes[0].Ping(context.Background())
	if !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ping without PUBLISH: %v, want ErrL2Config with NOPERM", err)
	}
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 10000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	l.checkFinal(t, nodes[1], time.Time{})
	for i, n := range nodes {
		if st := n.Stats(); st.ConfigErrors == 0 || st.L2CircuitOpen {
			t.Errorf("node %d: ConfigErrors %d, breaker open %v; want the refused publishes counted, the breaker closed", i, st.ConfigErrors, st.L2CircuitOpen)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the password is in the logs:\n%s", logs.String())
	}
	checkErrorRate(t, recs, len(nodes))
	logStats(t, nodes...)
}

// checkErrorRate: docs/l2.md line 220, configuration errors are logged "at
// Error, at most once a minute per cache" (the test runs for seconds).
func checkErrorRate(t *testing.T, recs *errorRecords, caches int) {
	t.Helper()
	recs.mu.Lock()
	defer recs.mu.Unlock()
	total := 0
	for _, n := range recs.n {
		total += n
	}
	if total == 0 {
		t.Errorf("no Error record for the configuration error")
	}
	if total > caches {
		t.Errorf("%d Error records from %d caches in seconds (%v); docs/l2.md: at most once a minute per cache", total, caches, recs.n)
	}
}

// TestTopologyTLSACLWithoutEvalshaUnderLoad: TLS, an ACL user without
// EVALSHA (so every write is refused), 32 goroutines on two nodes: every
// call answers from memory and the factory, nothing hangs, the breaker
// stays closed, Ping names NOPERM, errors are rate-limited, the password
// is never logged.
func TestTopologyTLSACLWithoutEvalshaUnderLoad(t *testing.T) {
	const pw = "pw-Xv27-secret"
	srv := aclServer(t, pw, "evalsha")
	var logs testlog.Buffer
	recs := &errorRecords{n: map[string]int{}}
	logger := slog.New(recs.handler(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var nodes []*hybrid.Cache
	for range 2 {
		_, c := topoNode(t, &strata.RedisSettings{Client: aclClient(t, srv, pw)}, logger)
		nodes = append(nodes, c)
	}
	err := nodes[0].Ping(context.Background())
	if !errors.Is(err, hybrid.ErrL2Config) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ping without EVALSHA: %v, want ErrL2Config with NOPERM", err)
	}
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 10000)
	l.finish(t)
	l.noAPIErrors(t)
	for i, n := range nodes {
		if st := n.Stats(); st.ConfigErrors == 0 || st.L2CircuitOpen || st.RecoveryPending != 0 {
			t.Errorf("node %d: %+v; want config errors counted, breaker closed, nothing queued", i, st)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the password is in the logs:\n%s", logs.String())
	}
	checkErrorRate(t, recs, len(nodes))
	logStats(t, nodes...)
}

// TestTopologyCloseUnderLoad: Provider.Close while 32 goroutines run, on
// every topology: Close returns, every call returns (ErrClosed or a
// value), and no goroutine is left (STYLE.md: Close waits for every
// goroutine; goleak).
func TestTopologyCloseUnderLoad(t *testing.T) {
	for _, topo := range []string{"standalone", "tls", "cluster", "sentinel"} {
		t.Run(topo, func(t *testing.T) {
			var settings func() *strata.RedisSettings
			var owned []*redis.Client
			var ownedFailover []redis.UniversalClient
			switch topo {
			case "standalone":
				srv := redistest.Start(t)
				settings = func() *strata.RedisSettings { return &strata.RedisSettings{URL: srv.URL()} }
			case "tls":
				srv := redistest.Start(t, redistest.WithTLS())
				settings = func() *strata.RedisSettings {
					o := srv.Options()
					o.ContextTimeoutEnabled, o.MaxRetries = true, 1
					c := redis.NewClient(o)
					owned = append(owned, c)
					return &strata.RedisSettings{Client: c}
				}
			case "cluster":
				cl := redistest.StartCluster(t, 3)
				settings = func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} }
			case "sentinel":
				master := redistest.Start(t)
				redistest.StartReplica(t, master)
				ss := redistest.StartSentinels(t, "strata", master, 3, 2)
				settings = func() *strata.RedisSettings {
					o := ss.FailoverOptions()
					o.ContextTimeoutEnabled = true
					c := redis.NewFailoverClient(o)
					ownedFailover = append(ownedFailover, c)
					return &strata.RedisSettings{Client: c}
				}
			}
			base := goleak.IgnoreCurrent()
			var providers []*strata.Provider
			var nodes []*hybrid.Cache
			for range 2 {
				p, c := topoNode(t, settings(), nil)
				providers, nodes = append(providers, p), append(nodes, c)
			}
			l := startTopoLoad(nodes, topoKeyNames())
			l.awaitCalls(t, 3000)
			closed := make(chan error, len(providers))
			for _, p := range providers {
				go func() { closed <- p.Close() }()
			}
			for range providers {
				select {
				case err := <-closed:
					if err != nil {
						t.Errorf("Close: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Provider.Close under load did not return in 10 s")
				}
			}
			l.finish(t)
			for _, op := range l.ops {
				if op.err != nil && !errors.Is(op.err, hybrid.ErrClosed) {
					t.Errorf("%c %q during Close: %v, want nil or ErrClosed", op.kind, op.key, op.err)
					break
				}
			}
			for _, c := range owned {
				c.Close()
			}
			for _, c := range ownedFailover {
				c.Close()
			}
			goleak.VerifyNone(t, base)
		})
	}
}

// TestTopologyClusterChannelSlotMigrationUnderLoad: the slot of the
// cache's backplane channel (hash tag {users:}) moves to another master
// while 32 goroutines run. docs/backplane.md ("Channel"): the server drops
// the sharded subscription, the backplane reloads the cluster state,
// subscribes again on the new owner and reports a gap. Afterwards no node
// serves a superseded value and a change on one node reaches the other's
// memory again.
func TestTopologyClusterChannelSlotMigrationUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := topoNodes(t, 2, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	ctx := context.Background()
	channel := backplane.ChannelName("", topoPrefix)
	src := cl.MasterFor(channel)
	var dst *redistest.Server
	for _, n := range cl.Nodes() {
		if n != src {
			dst = n
			break
		}
	}
	sc, dc := redis.NewClient(&redis.Options{Addr: src.Addr()}), redis.NewClient(&redis.Options{Addr: dst.Addr()})
	defer sc.Close()
	defer dc.Close()
	slot, err := sc.ClusterKeySlot(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	srcID, dstID := clusterNodeID(t, sc), clusterNodeID(t, dc)
	gaps := func() (g uint64) {
		for _, n := range nodes {
			g += n.Stats().BackplaneGaps
		}
		return g
	}
	gaps0 := gaps()

	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	moveAt := time.Now()
	if err := dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*redistest.Server{dst, src} {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err()
		c.Close()
		if err != nil {
			t.Fatalf("SETSLOT NODE on %s: %v", n.Addr(), err)
		}
	}
	for _, n := range cl.Nodes() {
		if n == src || n == dst {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err()
		c.Close()
		if err != nil {
			t.Fatalf("SETSLOT NODE on %s: %v", n.Addr(), err)
		}
	}
	redistest.Eventually(t, "both nodes to report the gap of the moved subscription", func() bool { return gaps() >= gaps0+2 })
	gapAt := time.Now()
	l.awaitCalls(t, 5000)
	l.finish(t)
	l.noAPIErrors(t)
	settle(t, nodes...)
	final := l.checkFinal(t, nodes[1], time.Time{})
	if n := l.staleReads(t, time.Second, moveAt, gapAt); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change, outside the move", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	// The backplane works on the new owner: a Set on node 0 reaches node
	// 1's memory without a read of Redis.
	if _, err := hybrid.GetOrSet(ctx, nodes[1], "k0", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, nodes[0], "k0", "after-move"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "node 1 to hear of node 0's Set after the move", func() bool {
		v, _ := get(t, nodes[1], "k0", l1Only)
		return v == "after-move"
	})
	logStats(t, nodes...)
}

// TestTopologyClusterHungMasterUnderLoad: a cluster master is suspended
// (SIGSTOP: connections open, no answer) while 32 goroutines run, then
// resumed. docs/l2.md ("Timeouts", production 2 s hard; "A call that finds
// the latest call or batch sent out for more than 10 ms ... goes alone ...
// so hung connections do not hold up the cache"): no call waits much
// longer than the hard timeout; afterwards acknowledged writes are kept
// and the nodes are coherent.
func TestTopologyClusterHungMasterUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := topoNodes(t, 2, func() *strata.RedisSettings { return &strata.RedisSettings{Addrs: cl.Addrs()} })
	hung := cl.MasterFor(topoPrefix + "k1")
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	suspendAt := time.Now()
	hung.Suspend(t)
	l.awaitCalls(t, 2000)
	hung.Resume(t)
	settle(t, nodes...)
	since := time.Now()
	l.awaitCalls(t, 3000)
	l.finish(t)
	// docs/timeouts.md, "Which timeout applies": a caller's timers "count
	// the load's memory and L2 reads too", so a cold key whose L2 read hangs
	// gets ErrFactoryTimeout at the 1.5 s FactoryHardTimeout (production),
	// before the 2 s L2HardTimeout cuts the read. Documented; any other
	// error is not.
	l.noAPIErrorsBut(t, hybrid.ErrFactoryTimeout)
	if d := time.Duration(l.maxDur.Load()); d > 3500*time.Millisecond {
		t.Errorf("the longest call took %v with a hung master; want about the 2 s L2HardTimeout at most", d)
	}
	settle(t, nodes...)
	final := l.checkFinal(t, nodes[0], time.Time{})
	// While the master hangs, a node's writes to its slots are queued,
	// unannounced (docs/backplane.md, Guarantees, "Redis down"): exempt.
	if n := l.staleReads(t, time.Second, suspendAt, since); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	t.Logf("longest call %v", time.Duration(l.maxDur.Load()))
	logStats(t, nodes...)
}

// TestTopologyCloseWithHungMaster: Provider.Close under load while a
// cluster master is suspended: docs/backplane.md "Close never waits for
// Redis"; docs/l2.md: Close waits for writes, which are bounded by
// L2HardTimeout (2 s). Close returns, every call returns, no goroutine is
// left.
func TestTopologyCloseWithHungMaster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	base := goleak.IgnoreCurrent()
	var providers []*strata.Provider
	var nodes []*hybrid.Cache
	for range 2 {
		p, c := topoNode(t, &strata.RedisSettings{Addrs: cl.Addrs()}, nil)
		providers, nodes = append(providers, p), append(nodes, c)
	}
	hung := cl.MasterFor(backplane.ChannelName("", topoPrefix))
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	hung.Suspend(t)
	defer hung.Resume(t)
	l.awaitCalls(t, 200)
	start := time.Now()
	closed := make(chan error, len(providers))
	for _, p := range providers {
		go func() { closed <- p.Close() }()
	}
	for range providers {
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Provider.Close with a hung master did not return in 10 s")
		}
	}
	t.Logf("Close took %v", time.Since(start))
	l.finish(t)
	for _, op := range l.ops {
		// ErrFactoryTimeout: a hung L2 read of a cold key, docs/timeouts.md
		// (see TestTopologyClusterHungMasterUnderLoad).
		if op.err != nil && !errors.Is(op.err, hybrid.ErrClosed) && !errors.Is(op.err, hybrid.ErrFactoryTimeout) {
			t.Errorf("%c %q during Close: %v, want nil or ErrClosed", op.kind, op.key, op.err)
			break
		}
	}
	hung.Resume(t)
	goleak.VerifyNone(t, base)
}

// TestTopologySentinelHungMasterUnderLoad: the master hangs (SIGSTOP)
// while 32 goroutines run; the sentinels find it down and promote the
// replica; the old master is resumed (and demoted by the sentinels). The
// calls answer throughout (no call much beyond the 2 s L2HardTimeout),
// the nodes follow the new master, and afterwards writes are kept, no
// superseded value is served, and the backplane keeps the nodes coherent.
func TestTopologySentinelHungMasterUnderLoad(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, "strata", master, 3, 2)
	var nodes []*hybrid.Cache
	for range 2 {
		o := sentinels.FailoverOptions()
		o.ContextTimeoutEnabled, o.MaxRetries = true, 1 // as docs/redis.md asks of a caller's client
		client := redis.NewFailoverClient(o)
		t.Cleanup(func() { client.Close() })
		_, c := topoNode(t, &strata.RedisSettings{Client: client}, nil)
		nodes = append(nodes, c)
	}
	l := startTopoLoad(nodes, topoKeyNames())
	l.awaitCalls(t, 3000)
	hangAt := time.Now()
	master.Suspend(t)
	redistest.Eventually(t, "the sentinels to promote the replica", func() bool {
		addr, err := sentinels.Master()
		return err == nil && addr == replica.Addr()
	})
	master.Resume(t)
	rc := replica.Client(t)
	redistest.Eventually(t, "the nodes to write to the new master", func() bool {
		for _, c := range nodes {
			if st := c.Stats(); st.RecoveryPending != 0 || st.L2CircuitOpen {
				return false
			}
		}
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	since := time.Now()
	l.awaitCalls(t, 5000)
	l.finish(t)
	// A cold key whose L2 read hangs gets ErrFactoryTimeout: docs/timeouts.md
	// (see TestTopologyClusterHungMasterUnderLoad).
	l.noAPIErrorsBut(t, hybrid.ErrFactoryTimeout)
	if d := time.Duration(l.maxDur.Load()); d > 3500*time.Millisecond {
		t.Errorf("the longest call took %v with a hung master; want about the 2 s L2HardTimeout at most", d)
	}
	settle(t, nodes...)
	// While the master hangs nothing is acknowledged by it: writes are queued
	// and replayed to the new master. Only those it acknowledged before it
	// hung could be lost (docs/redis.md).
	final := l.checkFinal(t, nodes[0], hangAt)
	// An acknowledged write that the hung master had not yet replicated is
	// lost (docs/redis.md); under CI load replication lagged more than
	// 200 ms behind: a node then serves the surviving, older value.
	l.lostFrom, l.lostTo = hangAt.Add(-2*time.Second), since
	if n := l.staleReads(t, time.Second, hangAt, since); n != 0 {
		t.Errorf("%d reads of %d calls served a value superseded by an acknowledged change, outside the failover", n, len(l.ops))
	}
	coherent(t, final, nodes...)
	if err := hybrid.Set(context.Background(), nodes[0], "k0", "after"); err != nil {
		t.Fatal(err)
	}
	redistest.Eventually(t, "node 1 to hear of node 0's Set", func() bool {
		v, _ := get(t, nodes[1], "k0", l1Only)
		return v == "after"
	})
	t.Logf("longest call %v", time.Duration(l.maxDur.Load()))
	logStats(t, nodes...)
}
