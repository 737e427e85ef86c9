// Package soak holds an opt-in, bounded randomized ("Jepsen-lite") test of
// Strata's multi-node guarantees: 3 nodes (each its own provider and go-redis
// client) share one real redis-server (L2 + pub/sub backplane), writes are
// synchronous (BackgroundL2Operations off), several goroutines per node run
// random Set / Remove / Expire / GetOrSet / TryGet on a small key space, and
// every operation is logged with its invocation and completion times
// (monotonic). The history is then checked against what the docs promise.
//
// Knobs (environment): SOAK_SEEDS="1,2,3,4" SOAK_FAULTS="0,0,1,1" SOAK_DUR=10s
// SOAK_DELTA=100ms SOAK_KEYS=20 SOAK_G=4. SOAK_BATCH=1: half of the operations
// go through the batch functions instead (SetMany, RemoveMany, GetOrSetMany,
// TryGetMany, on the one key), which have loads, reads and writes of their
// own (claims, MGET, pipelines) under the same guarantees.
package soak

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type kind uint8

const (
	kSet kind = iota + 1
	kRemove
	kExpire
	kGetOrSet
	kTryGet
	kFactory // the write made by a GetOrSet's own factory
)

func (k kind) String() string {
	return [...]string{"?", "Set", "Remove", "Expire", "GetOrSet", "TryGet", "Factory"}[k]
}

func (k kind) isWrite() bool      { return k == kSet || k == kRemove || k == kExpire || k == kFactory }
func (k kind) isValueWrite() bool { return k == kSet || k == kFactory }

// rec is one operation of the history. Times are monotonic, since the start.
type rec struct {
	id      int
	node, g int
	kind    kind
	key     int
	val     string // Set/Factory: the value written; reads: the value returned
	ok      bool   // reads: a value was returned
	fw      *rec   // GetOrSet: the write of its own factory, if it ran
	err     error
	inv     time.Duration
	comp    time.Duration
	tainted bool // node under faults during the op (see taint)
	batch   bool // made by a batch function (SOAK_BATCH)
}

func (r *rec) String() string {
	s := fmt.Sprintf("#%d [%9.3fms .. %9.3fms] n%d/g%d %-8s k%02d", r.id, ms(r.inv), ms(r.comp), r.node, r.g, r.kind, r.key)
	switch {
	case r.kind.isValueWrite():
		s += " := " + r.val
	case r.kind == kTryGet || r.kind == kGetOrSet:
		if r.fw != nil {
			s += " -> " + r.val + " (own factory)"
		} else if r.ok {
			s += " -> " + r.val
		} else {
			s += " -> miss"
		}
	}
	if r.err != nil {
		s += " ERR " + r.err.Error()
	}
	if r.tainted {
		s += " [fault window]"
	}
	if r.batch {
		s += " [batch]"
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type history struct {
	mu     sync.Mutex
	ops    []*rec
	writes map[string]*rec // value -> its write
	nextID int
}

func (h *history) add(r *rec) {
	h.mu.Lock()
	h.nextID++
	r.id = h.nextID
	h.ops = append(h.ops, r)
	if r.kind.isValueWrite() {
		h.writes[r.val] = r
	}
	h.mu.Unlock()
}

// faultWindow is a period during which node faulty's connection to Redis was
// paused or reset.
type faultWindow struct{ from, to time.Duration }

type config struct {
	seed     uint64
	faults   bool
	dur      time.Duration
	delta    time.Duration // bound on backplane delivery for the checks
	keys     int
	perNode  int
	nodes    int
	taintEnd time.Duration // how long after a fault window the faulty node stays "tainted"
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestCoherenceSoak(t *testing.T) {
	if os.Getenv("STRATA_SOAK") == "" {
		t.Skip("opt-in soak test: STRATA_SOAK=1 go test -race -run TestCoherenceSoak ./internal/soak/")
	}
	redistest.Require(t)
	seeds := strings.Split(envOr("SOAK_SEEDS", "1,2,3,4"), ",")
	faults := strings.Split(envOr("SOAK_FAULTS", "0,0,1,1"), ",")
	dur, _ := time.ParseDuration(envOr("SOAK_DUR", "10s"))
	delta, _ := time.ParseDuration(envOr("SOAK_DELTA", "100ms"))
	keys, _ := strconv.Atoi(envOr("SOAK_KEYS", "20"))
	g, _ := strconv.Atoi(envOr("SOAK_G", "4"))
	taintEnd, _ := time.ParseDuration(envOr("SOAK_TAINT", "2s"))
	for i, s := range seeds {
		seed, _ := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		cfg := config{seed: seed, dur: dur, delta: delta, keys: keys, perNode: g, nodes: 3, taintEnd: taintEnd}
		if i < len(faults) && strings.TrimSpace(faults[i]) == "1" {
			cfg.faults = true
		}
		t.Run(fmt.Sprintf("seed%d_faults%v", seed, cfg.faults), func(t *testing.T) { run(t, cfg) })
	}
}

func keyName(k int) string { return fmt.Sprintf("k%02d", k) }

func run(t *testing.T, cfg config) {
	srv := redistest.Start(t)
	var proxy *tcpproxy.Proxy
	faulty := -1
	if cfg.faults {
		proxy = srv.Proxy(t)
		faulty = cfg.nodes - 1
	}
	nodes := make([]*hybrid.Cache, cfg.nodes)
	for i := range nodes {
		addr := ""
		entry := hybrid.EntryOptions{Duration: time.Hour, FailSafe: true}
		if i == faulty {
			addr = proxy.Addr()
			entry.L2HardTimeout = 300 * time.Millisecond // so that a paused proxy yields timeouts
		}
		d := strata.CacheSettings{Entry: entry, WaitForInitialBackplaneSubscribe: 10 * time.Second}
		p, err := strata.NewProvider(strata.Settings{Redis: &strata.RedisSettings{Client: srv.FastClient(t, addr)}, Defaults: &d, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		c, err := p.Register("app")
		if err != nil {
			t.Fatal(err)
		}
		if entry.BackgroundL2Operations {
			t.Fatal("BackgroundL2Operations must be off") // synchronous writes (zero value)
		}
		nodes[i] = c
	}

	h := &history{writes: map[string]*rec{}}
	var seq atomic.Int64
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	ctx := context.Background()
	noExpire := os.Getenv("SOAK_NOEXPIRE") == "1"
	batches := os.Getenv("SOAK_BATCH") == "1"

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for n := range nodes {
		for g := range cfg.perNode {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(cfg.seed, uint64(n*1000+g)))
				c := nodes[n]
				for now() < cfg.dur {
					key := rng.IntN(cfg.keys)
					k := keyName(key)
					r := &rec{node: n, g: g, key: key}
					p := rng.Float64()
					if noExpire && p >= 0.40 && p < 0.45 {
						p = 0.5 // SOAK_NOEXPIRE: a GetOrSet instead
					}
					batch := batches && rng.IntN(2) == 0
					r.batch = batch && !(p >= 0.40 && p < 0.45) // (Expire has no batch form)
					switch {
					case batch && p < 0.30:
						r.kind = kSet
						r.val = fmt.Sprintf("n%d-s%d", n, seq.Add(1))
						r.inv = now()
						r.err = hybrid.SetMany(ctx, c, map[string]string{k: r.val})
						r.comp = now()
					case batch && p < 0.40:
						r.kind = kRemove
						r.inv = now()
						r.err = c.RemoveMany(ctx, []string{k})
						r.comp = now()
					case batch && p >= 0.45 && p < 0.70:
						r.kind = kGetOrSet
						r.inv = now()
						var fw *rec
						res, err := hybrid.GetOrSetMany(ctx, c, []string{k}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
							fw = &rec{node: n, g: g, key: key, kind: kFactory, inv: r.inv, batch: true,
								val: fmt.Sprintf("n%d-s%d-f", n, seq.Add(1))}
							return map[string]string{k: fw.val}, nil
						})
						r.comp = now()
						if err == nil {
							err = res[0].Err
						}
						if err == nil {
							r.val = res[0].Value
						}
						r.err, r.ok = err, err == nil
						if fw != nil {
							fw.comp = r.comp
							r.fw = fw
							h.add(fw)
						}
					case batch && p >= 0.70:
						r.kind = kTryGet
						r.inv = now()
						res, err := hybrid.TryGetMany[string](ctx, c, []string{k})
						r.comp = now()
						if err == nil {
							err = res[0].Err
						}
						if err == nil {
							r.val, r.ok = res[0].Value, res[0].Found
						}
						r.err = err

					case p < 0.30:
						r.kind = kSet
						r.val = fmt.Sprintf("n%d-s%d", n, seq.Add(1))
						r.inv = now()
						r.err = hybrid.Set(ctx, c, k, r.val)
						r.comp = now()
					case p < 0.40:
						r.kind = kRemove
						r.inv = now()
						r.err = c.Remove(ctx, k)
						r.comp = now()
					case p < 0.45:
						r.kind = kExpire
						r.inv = now()
						r.err = c.Expire(ctx, k)
						r.comp = now()
					case p < 0.70:
						r.kind = kGetOrSet
						r.inv = now()
						var fw *rec
						v, err := hybrid.GetOrSet(ctx, c, k, func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
							fw = &rec{node: n, g: g, key: key, kind: kFactory, inv: r.inv,
								val: fmt.Sprintf("n%d-s%d-f", n, seq.Add(1))}
							return fw.val, nil
						})
						r.comp = now()
						r.val, r.err, r.ok = v, err, err == nil
						if fw != nil {
							fw.comp = r.comp
							r.fw = fw
							h.add(fw)
						}
					default:
						r.kind = kTryGet
						r.inv = now()
						r.val, r.ok, r.err = hybrid.TryGet[string](ctx, c, k)
						r.comp = now()
					}
					h.add(r)
					if rng.IntN(2) == 0 {
						time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					}
				}
			})
		}
	}

	var windows []faultWindow
	var fwg sync.WaitGroup
	if proxy != nil {
		fwg.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.seed, 99))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(200+rng.IntN(1000)) * time.Millisecond):
				}
				if now() > cfg.dur-time.Second {
					return
				}
				w := faultWindow{from: now()}
				switch a := rng.IntN(10); {
				case a < 4:
					proxy.Pause()
					time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
					proxy.Resume()
				case a < 7:
					proxy.ResetAll()
				default:
					proxy.Pause()
					time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
					proxy.ResetAll()
					proxy.Resume()
				}
				w.to = now()
				windows = append(windows, w)
			}
		})
	}
	wg.Wait()
	close(stop)
	fwg.Wait()
	loadEnd := now()

	// Quiet period: auto-recovery drained everywhere, then a little more.
	redistest.Eventually(t, "recovery queues to drain", func() bool {
		for _, c := range nodes {
			if c.Stats().RecoveryPending != 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond)

	// Final state: Redis and every node, per key.
	raw := srv.Client(t)
	type final struct {
		l2State  string // "value", "stale", "removed", "absent", "corrupt"
		l2Val    string
		l2TS     int64
		fresh    []string // plain TryGet per node ("" = miss)
		stale    []string // TryGet with AllowStaleOnRead per node
		errs     []error
		finalSet []*rec // writes not superseded by any write
	}
	finals := make([]final, cfg.keys)
	for key := range cfg.keys {
		f := &finals[key]
		b, err := raw.Get(ctx, "app:"+keyName(key)).Bytes()
		switch {
		case err == redis.Nil:
			f.l2State = "absent"
		case err != nil:
			t.Fatalf("redis GET: %v", err)
		default:
			env, derr := envelope.Decode(b)
			f.l2TS = env.Timestamp
			switch {
			case derr != nil:
				f.l2State = "corrupt"
			case env.Removed:
				f.l2State = "removed"
			default:
				var s string
				if err := msgpack.Unmarshal(env.Value, &s); err != nil {
					f.l2State = "corrupt"
				} else if env.FreshUntil <= time.Now().UnixNano() {
					f.l2State, f.l2Val = "stale", s
				} else {
					f.l2State, f.l2Val = "value", s
				}
			}
		}
		for _, c := range nodes {
			v, ok, err := hybrid.TryGet[string](ctx, c, keyName(key))
			if !ok {
				v = ""
			}
			sv, sok, serr := hybrid.TryGet[string](ctx, c, keyName(key), hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))
			if !sok {
				sv = ""
			}
			f.fresh = append(f.fresh, v)
			f.stale = append(f.stale, sv)
			f.errs = append(f.errs, err, serr)
		}
	}

	for i, c := range nodes {
		st := c.Stats()
		t.Logf("node %d stats: published=%d received=%d gaps=%d values=%d l2errors=%d l2timeouts=%d refused=%d recovered=%d bpErrors=%d",
			i, st.BackplanePublished, st.BackplaneReceived, st.BackplaneGaps, st.BackplaneValues, st.L2Errors, st.L2Timeouts, st.L2Refused, st.Recovered, st.BackplaneErrors)
	}

	// ---- checking ----
	ops := h.ops
	byKey := make([][]*rec, cfg.keys)
	for _, r := range ops {
		byKey[r.key] = append(byKey[r.key], r)
	}
	for _, kops := range byKey {
		sort.Slice(kops, func(i, j int) bool { return kops[i].inv < kops[j].inv })
	}
	taint := func(r *rec) bool {
		if r.node != faulty {
			return false
		}
		for _, w := range windows {
			if r.inv < w.to+cfg.taintEnd && r.comp > w.from {
				return true
			}
		}
		return false
	}
	for _, r := range ops {
		r.tainted = taint(r)
	}
	var nReads, nWrites, nFact int
	for _, r := range ops {
		switch {
		case r.kind == kFactory:
			nFact++
			nWrites++
		case r.kind.isWrite():
			nWrites++
		default:
			nReads++
		}
	}
	t.Logf("history: %d ops (%d reads, %d writes of which %d factory), load %v, %d fault windows, delta %v", len(ops), nReads, nWrites, nFact, loadEnd, len(windows), cfg.delta)

	viol := map[string][]string{}
	report := func(cat, msg string) { viol[cat] = append(viol[cat], msg) }

	// firstObs[node][write] = completion of the first read on node returning write's value.
	firstObs := make([]map[*rec]time.Duration, cfg.nodes)
	for i := range firstObs {
		firstObs[i] = map[*rec]time.Duration{}
	}
	for _, r := range ops {
		if (r.kind == kTryGet || r.kind == kGetOrSet) && r.ok {
			if w := h.writes[r.val]; w != nil {
				if t0, ok := firstObs[r.node][w]; !ok || r.comp < t0 {
					firstObs[r.node][w] = r.comp
				}
			}
		}
	}
	// vis is the time after which write w is "known" to node n:
	//  - own node: at its completion (read your writes);
	//  - another node: delta after its completion (backplane delivery);
	//    for the faulty node, a write whose delivery window meets a fault
	//    window is known only taintEnd after that fault ended (documented:
	//    messages are lost while disconnected; the gap's verify-before-use
	//    follows the reconnect); a write OF the faulty node during a fault
	//    window (queued for auto-recovery) is known to the others delta
	//    after taintEnd after the fault ended;
	//  - in any case once n returned its value (monotonic reads).
	vis := func(w *rec, n int) (time.Duration, string) {
		if w.node == n {
			return w.comp, "own"
		}
		v, why := w.comp+cfg.delta, "remote"
		if w.node == faulty {
			for _, fw := range windows {
				if w.inv < fw.to+cfg.taintEnd && w.comp > fw.from {
					v = max(v, fw.to+cfg.taintEnd+cfg.delta)
				}
			}
		}
		if n == faulty {
			for _, fw := range windows { // in order: a chain of windows extends it
				if fw.from <= v && w.comp <= fw.to+cfg.taintEnd {
					v = max(v, fw.to+cfg.taintEnd)
				}
			}
		}
		if o, ok := firstObs[n][w]; ok && o < v {
			v, why = o, "observed"
		}
		return v, why
	}

	for key := range cfg.keys {
		kops := byKey[key]
		var writes []*rec
		var maxDur, maxLag time.Duration
		for _, r := range kops {
			if r.kind.isWrite() {
				writes = append(writes, r)
				maxDur = max(maxDur, r.comp-r.inv)
			}
		}
		// Per node: the writes sorted by vis, with a prefix max of inv.
		type wv struct {
			w   *rec
			vis time.Duration
			why string
		}
		type nodeIdx struct {
			sorted    []wv
			prefixMax []time.Duration
			visOf     map[*rec]wv
		}
		idx := make([]nodeIdx, cfg.nodes)
		for n := range idx {
			ni := &idx[n]
			ni.visOf = make(map[*rec]wv, len(writes))
			for _, w := range writes {
				v, why := vis(w, n)
				maxLag = max(maxLag, v-w.comp)
				x := wv{w, v, why}
				ni.sorted = append(ni.sorted, x)
				ni.visOf[w] = x
			}
			sort.Slice(ni.sorted, func(i, j int) bool { return ni.sorted[i].vis < ni.sorted[j].vis })
			ni.prefixMax = make([]time.Duration, len(ni.sorted))
			m := time.Duration(-1)
			for i, x := range ni.sorted {
				m = max(m, x.w.inv)
				ni.prefixMax[i] = m
			}
		}
		// writes is sorted by inv (kops is).
		for _, r := range kops {
			if r.err != nil {
				report("unexpected error", r.String())
				continue
			}
			if r.kind != kTryGet && r.kind != kGetOrSet {
				continue
			}
			if r.fw != nil {
				continue // returned its own factory's value
			}
			ni := &idx[r.node]
			// P = writes known to r's node before r began: a prefix of sorted.
			np := sort.Search(len(ni.sorted), func(i int) bool { return ni.sorted[i].vis >= r.inv })
			maxInv := time.Duration(-1)
			if np > 0 {
				maxInv = ni.prefixMax[np-1]
			}
			inP := func(w *rec) bool { return ni.visOf[w].vis < r.inv }
			if r.ok {
				w := h.writes[r.val]
				if w == nil || w.key != key {
					report("phantom value", r.String())
					continue
				}
				var ok bool
				if inP(w) {
					ok = w.comp >= maxInv
				} else {
					ok = w.inv < r.comp
				}
				if !ok {
					// The witness: a write in P that began after w completed;
					// prefer own > observed > remote, then the earliest.
					var wit *rec
					cat := ""
					for _, why := range []string{"own", "observed", "remote"} {
						for _, x := range ni.sorted[:np] {
							if x.why == why && x.w.inv > w.comp && (wit == nil || x.w.comp < wit.comp) {
								wit = x.w
							}
						}
						if wit != nil {
							cat = "stale read: " + r.kind.String() + " returned a value superseded by a " + why + " " + wit.kind.String()
							break
						}
					}
					report(cat, explain(r, w, wit, kops))
				}
				continue
			}
			if np == 0 {
				continue // nothing known written: a miss is fine
			}
			// A miss needs a Remove/Expire among the latest known writes
			// (Max: in P, comp >= maxInv) or the concurrent ones (C: not in
			// P, inv < r.comp).
			allowMiss := false
			var maxW []*rec
			lo := min(maxInv, r.inv-maxLag) - maxDur
			i := sort.Search(len(writes), func(i int) bool { return writes[i].inv >= r.comp })
			for i--; i >= 0 && writes[i].inv >= lo; i-- {
				w := writes[i]
				in := inP(w)
				if in && w.comp < maxInv {
					continue
				}
				if w.kind == kRemove || w.kind == kExpire {
					allowMiss = true
					break
				}
				if in {
					maxW = append(maxW, w)
				}
			}
			if !allowMiss {
				why := "remote"
				var wit *rec
				for _, w := range maxW {
					y := ni.visOf[w].why
					if y == "own" || (y == "observed" && why == "remote") || wit == nil {
						why, wit = y, w
					}
				}
				report("miss although the latest known write is a "+why+" "+wit.kind.String(), explain(r, nil, wit, kops))
			}
		}

		// Convergence.
		f := finals[key]
		var last time.Duration = -1
		for _, w := range writes {
			if w.inv > last {
				last = w.inv
			}
		}
		for _, w := range writes {
			if w.comp >= last {
				f.finalSet = append(f.finalSet, w)
			}
		}
		desc := fmt.Sprintf("k%02d: redis=%s %q (ts %d); nodes fresh=%q stale=%q", key, f.l2State, f.l2Val, f.l2TS, f.fresh, f.stale)
		for _, e := range f.errs {
			if e != nil {
				report("convergence: error", desc+": "+e.Error())
			}
		}
		want := ""
		if f.l2State == "value" {
			want = f.l2Val
		}
		for i, v := range f.fresh {
			if v != want {
				report("convergence: node differs from Redis (fresh read)", fmt.Sprintf("%s: node %d", desc, i)+finalHist(f.finalSet, kops, h))
				break
			}
		}
		wantStale := want
		if f.l2State == "stale" {
			wantStale = f.l2Val
		}
		for i, v := range f.stale {
			if v != wantStale {
				report("convergence: node differs from Redis (AllowStaleOnRead)", fmt.Sprintf("%s: node %d", desc, i)+finalHist(f.finalSet, kops, h))
				break
			}
		}
		if len(writes) > 0 {
			okFinal := false
			for _, w := range f.finalSet {
				switch f.l2State {
				case "value":
					okFinal = okFinal || w.val == f.l2Val
				case "stale":
					okFinal = okFinal || w.kind == kExpire
				case "removed", "absent":
					okFinal = okFinal || w.kind == kRemove || w.kind == kExpire
				}
			}
			if !okFinal {
				report("convergence: Redis holds no newest write", desc+finalHist(f.finalSet, kops, h))
			}
		}
	}

	cats := make([]string, 0, len(viol))
	for c := range viol {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	for _, c := range cats {
		list := viol[c]
		t.Errorf("VIOLATION %s: %d occurrence(s); first %d:", c, len(list), min(3, len(list)))
		for _, m := range list[:min(3, len(list))] {
			t.Logf("---- %s\n%s", c, m)
		}
	}
}

// explain prints the minimal history of a bad read r: the write of the value
// it returned, the witness write that superseded it, and the operations of
// the key in between (bounded).
func explain(r, wv, wit *rec, kops []*rec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  read:    %s\n", r)
	if wv != nil {
		fmt.Fprintf(&b, "  value's write: %s\n", wv)
	}
	if wit != nil {
		fmt.Fprintf(&b, "  superseded by: %s\n", wit)
	}
	from := r.inv
	if wv != nil && wv.inv < from {
		from = wv.inv
	}
	if wit != nil && wit.inv < from {
		from = wit.inv
	}
	from -= 3 * time.Millisecond
	var lines []string
	for _, o := range kops {
		if o.comp >= from && o.inv <= r.comp {
			// keep writes, and reads of the same node
			if o.kind.isWrite() || o.node == r.node || o == r {
				lines = append(lines, "    "+o.String())
			}
		}
	}
	if len(lines) > 40 {
		lines = append([]string{fmt.Sprintf("    ... %d earlier ...", len(lines)-40)}, lines[len(lines)-40:]...)
	}
	fmt.Fprintf(&b, "  key history [%0.3fms .. %0.3fms] (writes, and reads of node %d):\n%s", ms(from), ms(r.comp), r.node, strings.Join(lines, "\n"))
	return b.String()
}

func finalHist(finalSet, kops []*rec, h *history) string {
	var b strings.Builder
	b.WriteString("\n  newest writes (not superseded):\n")
	for _, w := range finalSet {
		fmt.Fprintf(&b, "    %s\n", w)
	}
	// last 15 ops of the key
	from := max(0, len(kops)-15)
	b.WriteString("  last operations of the key:\n")
	for _, o := range kops[from:] {
		fmt.Fprintf(&b, "    %s\n", o)
	}
	return b.String()
}
