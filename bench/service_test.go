package bench

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/cputime"
	"github.com/strata-cache/strata/internal/redistest"
)

// svcNodes is the number of nodes of the service mix.
const svcNodes = 3

// svcSetPercent is the share of operations that Set a new version; the
// others are GetOrSet.
const svcSetPercent = 5

// svcGoroutines are the goroutine counts per node of the service mix.
var svcGoroutines = []int{1, 4, 16, 64}

// svcContenders are the caches of the service mix, one instance per node.
var svcContenders = []struct {
	name  string
	build func(svcEnv) (svcNode, error)
}{
	{"strata", newStrataNode},
	{"strata-sync", newStrataSyncNode},
	{"strata-sync-novalues", newStrataSyncNoValuesNode},
	{"strata-sync-s2", newStrataSyncS2Node},
	{"strata-sync-nobp", newStrataSyncNoBackplaneNode},
	{"go-redis-cache", newGoRedisNode},
	{"eko-chain", newEkoNode},
}

// svcRuns numbers the runs of the mix, so that each run has keys (and, for
// Strata, a backplane channel) of its own.
var svcRuns atomic.Int64

// BenchmarkServiceMix models a service: svcNodes nodes in one process over
// one redis-server, each with its own Redis client and its own cache
// instance, G goroutines per node, keys drawn Zipf (s=1.1) over svcKeys keys
// with a fixed seed per goroutine, 95% GetOrSet (the loader returns a 1 KiB
// value built from the key and the source's current version) and 5% Set of
// a new version. b.N operations in all, shared out between the goroutines,
// measured after an untimed warm-up of as many operations (every run of the
// function starts from empty caches, on keys of its own). Each node reads
// its own write back before anything runs.
//
// Metrics: ops/s; p50-ns and p99-ns of an operation (every operation's
// duration, all goroutines merged); stale-frac, the fraction of GetOrSet
// results older than the newest version whose Set had completed before the
// read started; stale-rt-frac, the fraction of GetOrSet results that a
// linearizable register could not return (see rtStale); loads/op, loader
// calls per operation; reloads/op, loader calls for a key that had been
// loaded or Set before (so was in Redis); warns/op, records of level Warn
// and above that the caches logged; cpu-us/op, this process's CPU time per
// operation (the three nodes: user and system); redis-cpu-us/op,
// redis-server's (INFO cpu, so only meaningful on a server nobody else
// uses, such as the one the mix starts).
func BenchmarkServiceMix(b *testing.B) {
	addr, own := svcRedis(b)
	keys := make([]string, svcKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("item:%06d", i)
	}
	// Zipf's rank 0 is the hottest; the ranks are shuffled onto keys.
	perm := rand.New(rand.NewPCG(seed, 1)).Perm(svcKeys)
	for _, sc := range svcContenders {
		b.Run("cache="+sc.name, func(b *testing.B) {
			for _, g := range svcGoroutines {
				b.Run("goroutines="+strconv.Itoa(g), func(b *testing.B) {
					runServiceMix(b, addr, own, sc.build, g, keys, perm)
				})
			}
		})
	}
}

// svcRedis returns the Redis address of the mix: REDIS_ADDR, or a
// redis-server started for b (own is then true: the mix may flush it).
func svcRedis(b *testing.B) (addr string, own bool) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr, false
	}
	return redistest.Start(b).Addr(), true
}

// svcSource is the data behind the caches: a version per key (the
// source's), and the newest version per key whose Set has completed.
type svcSource struct {
	version   []atomic.Int64
	completed []atomic.Int64
	seen      []atomic.Bool // the key was loaded or Set before (it is in Redis)
	loads     atomic.Int64
	reloads   atomic.Int64 // loads of a key already seen
}

// load returns key's value at the source's current version; a key outside
// the key space (the correctness check's) is at version -1.
func (s *svcSource) load(_ context.Context, key string) (svcValue, error) {
	s.loads.Add(1)
	n, ok := strings.CutPrefix(key, "item:")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 || i >= len(s.version) {
		return newSvcValue(key, -1), nil //nolint:nilerr // not an item key: version -1, by design
	}
	if s.seen[i].Swap(true) {
		s.reloads.Add(1)
	}
	return newSvcValue(key, s.version[i].Load()), nil
}

// complete records that the Set of version v of key i has returned.
func (s *svcSource) complete(i int, v int64) {
	for {
		cur := s.completed[i].Load()
		if cur >= v || s.completed[i].CompareAndSwap(cur, v) {
			return
		}
	}
}

// svcStats is what one goroutine of the mix counts.
type svcStats struct {
	durs                    []time.Duration
	reads, stale, errs, bad int
	firstErr                error
	// readLog is every read that returned a value of its key, for rtStale.
	readLog []svcRead
}

// svcHist is what one goroutine records for rtStale, in the warm-up and the
// measured loop alike: the Sets that returned without an error, with the
// times they were called and returned.
type svcHist struct {
	sets []svcSet
}

// svcSet is one completed Set: key index, version, and when it was called
// and returned (nanoseconds since the run's base time).
type svcSet struct {
	key, version int64
	start, end   int64
}

// svcRead is one read: key index, the version it returned, and when it was
// called.
type svcRead struct {
	key, got, start int64
}

func runServiceMix(b *testing.B, addr string, own bool, build func(svcEnv) (svcNode, error), g int, keys []string, perm []int) {
	run := svcRuns.Add(1)
	name := fmt.Sprintf("svc-%d-%d", time.Now().UnixNano(), run)
	src := &svcSource{version: make([]atomic.Int64, svcKeys), completed: make([]atomic.Int64, svcKeys), seen: make([]atomic.Bool, svcKeys)}
	ctx := context.Background()

	logs := newCountingHandler()
	nodes := make([]svcNode, svcNodes)
	clients := make([]*redis.Client, svcNodes)
	defer func() {
		for i := range nodes {
			if nodes[i] != nil {
				if err := nodes[i].Close(); err != nil {
					b.Errorf("node %d: close: %v", i, err)
				}
			}
			_ = clients[i].Close()
		}
		svcCleanup(b, addr, own, name)
	}()
	trips := new(tripCounter)
	for i := range nodes {
		clients[i] = newRedisClient(addr)
		clients[i].AddHook(trips)
		n, err := build(svcEnv{rdb: clients[i], name: name, load: src.load, logger: slog.New(logs)})
		if err != nil {
			b.Fatalf("node %d: %v", i, err)
		}
		nodes[i] = n
	}
	// Each node reads its own write back before anything is measured.
	for i, n := range nodes {
		key := fmt.Sprintf("check:%d", i)
		want := newSvcValue(key, 1)
		if err := n.Set(ctx, key, want); err != nil {
			b.Fatalf("node %d: check Set: %v", i, err)
		}
		got, err := n.GetOrSet(ctx, key)
		if err != nil || got.Key != key || got.Version != 1 || string(got.Payload) != string(want.Payload) {
			b.Fatalf("node %d: GetOrSet after Set = %q v%d, %v; want %q v1", i, got.Key, got.Version, err, key)
		}
	}

	workers := svcNodes * g
	stats := make([]svcStats, workers)
	hists := make([]*svcHist, workers)
	base := time.Now()
	start := make(chan struct{})
	var warmed, wg sync.WaitGroup
	for w := range workers {
		ops := b.N / workers
		if w < b.N%workers {
			ops++
		}
		node := nodes[w%svcNodes]
		st := &stats[w]
		st.durs = make([]time.Duration, 0, ops)
		st.readLog = make([]svcRead, 0, ops)
		h := &svcHist{}
		hists[w] = h
		warmed.Add(1)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			z := rand.NewZipf(r, 1.1, 1, svcKeys-1)
			// The warm-up: as many operations as the measured loop,
			// untimed and uncounted, so that the figures are those of a
			// service that has been running, not of a cold start.
			var warm svcStats
			warm.durs = make([]time.Duration, 0, ops)
			runSvcOps(ctx, node, src, r, z, keys, perm, ops, &warm, h, base)
			st.bad = warm.bad // a wrong value fails the run, warm-up or not
			warmed.Done()
			<-start
			runSvcOps(ctx, node, src, r, z, keys, perm, ops, st, h, base)
		})
	}
	warmed.Wait()
	src.loads.Store(0)
	src.reloads.Store(0)
	warnsBefore := logs.n.Load()
	countAll := func() (misses, reads uint64, ok bool) {
		for _, n := range nodes {
			sc, is := n.(svcCounter)
			if !is {
				return 0, 0, false
			}
			m, r := sc.counts()
			misses, reads = misses+m, reads+r
		}
		return misses, reads, true
	}
	missesBefore, readsBefore, counted := countAll()
	admin := newRedisClient(addr)
	defer admin.Close()
	redisCPU0, redisOK := redisCPU(ctx, admin)
	trips0, cmds0 := trips.trips.Load(), trips.cmds.Load()
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	cpu1, cpuOK1 := cputime.Process()
	trips1, cmds1 := trips.trips.Load(), trips.cmds.Load()
	redisCPU1, redisOK1 := redisCPU(ctx, admin)
	warns := logs.n.Load() - warnsBefore

	var all svcStats
	all.durs = make([]time.Duration, 0, b.N)
	for _, st := range stats {
		all.durs = append(all.durs, st.durs...)
		all.reads += st.reads
		all.stale += st.stale
		all.errs += st.errs
		all.bad += st.bad
		all.firstErr = cmpErr(all.firstErr, st.firstErr)
		all.readLog = append(all.readLog, st.readLog...)
	}
	if all.bad > 0 {
		b.Fatalf("%d reads returned another key's value", all.bad)
	}
	// An error now and then (a timeout on a loaded machine) is counted; more
	// than 1% of the operations means the figures measure failures.
	if all.errs > 0 {
		b.Logf("%d of %d operations failed; first: %v", all.errs, b.N, all.firstErr)
		if all.errs*100 > b.N {
			b.Errorf("more than 1%% of the operations failed")
		}
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
	reportPercentiles(b, all.durs)
	if all.reads > 0 {
		b.ReportMetric(float64(all.stale)/float64(all.reads), "stale-frac")
		b.ReportMetric(float64(rtStale(hists, all.readLog))/float64(all.reads), "stale-rt-frac")
	}
	if cpuOK && cpuOK1 {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	}
	b.ReportMetric(float64(trips1-trips0)/float64(b.N), "round-trips/op")
	b.ReportMetric(float64(cmds1-cmds0)/float64(b.N), "redis-cmds/op")
	if redisOK && redisOK1 {
		b.ReportMetric(float64((redisCPU1-redisCPU0).Microseconds())/float64(b.N), "redis-cpu-us/op")
	}
	b.ReportMetric(float64(src.loads.Load())/float64(b.N), "loads/op")
	b.ReportMetric(float64(src.reloads.Load())/float64(b.N), "reloads/op")
	b.ReportMetric(float64(warns)/float64(b.N), "warns/op")
	if counted {
		misses, reads, _ := countAll()
		b.ReportMetric(float64(misses-missesBefore)/float64(b.N), "l1-misses/op")
		b.ReportMetric(float64(reads-readsBefore)/float64(b.N), "l2-reads/op")
	}
	if warns > 0 {
		b.Logf("%d warnings logged while measuring; first of the run: %s", warns, *logs.first)
	}
}

// runSvcOps runs ops operations of the mix on node, keys drawn from z, the
// operation chosen with r, and counts them in st.
func runSvcOps(ctx context.Context, node svcNode, src *svcSource, r *rand.Rand, z *rand.Zipf, keys []string, perm []int, ops int, st *svcStats, h *svcHist, base time.Time) {
	for range ops {
		i := perm[z.Uint64()]
		key := keys[i]
		if r.IntN(100) < svcSetPercent {
			v := src.version[i].Add(1)
			t0 := time.Now()
			err := node.Set(ctx, key, newSvcValue(key, v))
			d := time.Since(t0)
			st.durs = append(st.durs, d)
			if err != nil {
				st.errs++
				st.firstErr = cmpErr(st.firstErr, err)
				continue
			}
			start := int64(t0.Sub(base))
			h.sets = append(h.sets, svcSet{key: int64(i), version: v, start: start, end: start + int64(d)})
			src.complete(i, v)
			src.seen[i].Store(true)
			continue
		}
		want := src.completed[i].Load()
		t0 := time.Now()
		got, err := node.GetOrSet(ctx, key)
		st.durs = append(st.durs, time.Since(t0))
		st.reads++
		switch {
		case err != nil:
			st.errs++
			st.firstErr = cmpErr(st.firstErr, err)
		case got.Key != key:
			st.bad++
		default:
			if got.Version < want {
				st.stale++
			}
			st.readLog = append(st.readLog, svcRead{key: int64(i), got: got.Version, start: int64(t0.Sub(base))})
		}
	}
}

// rtStale returns how many of reads a linearizable register could not have
// returned. stale-frac counts a read as stale when it returns a version
// older than the newest one whose Set had returned before the read
// started; but the mix takes a version from the source before it calls
// Set, so two Sets of one key can be called in the other order than their
// versions (and Sets that overlap in time may take effect in either
// order). Versions then say nothing about which write is the newer one: a
// cache that keeps the write called last (Strata's newest-wins) is counted
// stale, one that keeps the higher version although its Set was called
// first is not. By real time instead, a read that returned version g is
// stale if some Set of the key was called after the Set of g had returned
// and itself returned before the read started. Version 0, never Set,
// "returned" before the run.
func rtStale(hists []*svcHist, reads []svcRead) int {
	type span struct{ start, end int64 }
	ends := make(map[[2]int64]int64) // key, version -> when its Set returned
	byKey := make(map[int64][]span)
	for _, h := range hists {
		for _, s := range h.sets {
			ends[[2]int64{s.key, s.version}] = s.end
			byKey[s.key] = append(byKey[s.key], span{s.start, s.end})
		}
	}
	// Per key: the Sets by the time they returned, and the latest call time
	// among each prefix, so one binary search answers "was a Set called
	// after t and returned before r".
	latest := make(map[int64][]int64, len(byKey))
	for k, sp := range byKey {
		slices.SortFunc(sp, func(a, b span) int { return cmp.Compare(a.end, b.end) })
		l := make([]int64, len(sp))
		for j, x := range sp {
			l[j] = x.start
			if j > 0 {
				l[j] = max(l[j], l[j-1])
			}
		}
		latest[k] = l
	}
	n := 0
	for _, rd := range reads {
		gotEnd := int64(math.MinInt64) // version 0
		if rd.got != 0 {
			e, ok := ends[[2]int64{rd.key, rd.got}]
			if !ok {
				continue // its Set failed or never returned: not provably stale
			}
			gotEnd = e
		}
		sp := byKey[rd.key]
		j, _ := slices.BinarySearchFunc(sp, rd.start, func(x span, t int64) int { return cmp.Compare(x.end, t) })
		if j > 0 && latest[rd.key][j-1] > gotEnd {
			n++
		}
	}
	return n
}

// redisCPU returns the CPU time redis-server has used so far (INFO cpu:
// used_cpu_sys + used_cpu_user, its main thread and the others), and true.
func redisCPU(ctx context.Context, rdb *redis.Client) (time.Duration, bool) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	var total float64
	found := 0
	for line := range strings.SplitSeq(info, "\n") {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || name != "used_cpu_sys" && name != "used_cpu_user" {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return 0, false
		}
		total += f
		found++
	}
	return time.Duration(total * float64(time.Second)), found == 2
}

// tripCounter is a go-redis hook that counts what the nodes' clients send:
// round trips (a command, or a pipeline) and commands (a pipeline's each).
// A subscription's messages are not sent, and not counted; a command that
// go-redis retries counts once.
type tripCounter struct {
	trips, cmds atomic.Int64
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// cmpErr keeps the first non-nil error.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// svcCleanup deletes the keys of a run: a flush of the server the mix
// started, else the run's keys only (on a shared REDIS_ADDR).
func svcCleanup(b *testing.B, addr string, own bool, name string) {
	rdb := newRedisClient(addr)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if own {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			b.Errorf("flush: %v", err)
		}
		return
	}
	iter := rdb.Scan(ctx, 0, name+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
	if err := iter.Err(); err != nil {
		b.Errorf("cleanup of %s: %v", name, err)
	}
}
