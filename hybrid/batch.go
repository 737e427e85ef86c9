package hybrid

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// MaxBatchKeys is the most keys one batch call accepts (duplicates
// included); more fail the call with ErrTooManyKeys. It bounds the size of
// one MGET, one pipeline and one burst of backplane messages (each
// receiver queues them; see backplane.RedisOptions.QueueSize).
const MaxBatchKeys = 1000

var (
	// ErrTooManyKeys is returned by the batch functions for more than
	// MaxBatchKeys keys. Nothing is done.
	ErrTooManyKeys = errors.New("hybrid: too many keys")
)

// Result is the outcome of one key of a batch call.
//
// Found reports whether Value is the key's value. Found is false with a
// nil Err for a miss: TryGetMany found no value, or GetOrSetMany's
// factory did not return the key. Err is the key's own error (an invalid
// key, a type mismatch, the factory's error, a timeout); the other keys
// of the call are not affected by it.
type Result[T any] struct {
	Value T
	Found bool
	Err   error
}

// BatchFactory loads the values of many keys in one call, such as one
// `WHERE id IN (...)` query. It is asked only for the keys that neither
// tier could answer and that no other load (single-key or batch) is
// loading already; bc.Keys lists them, without duplicates. It returns the
// values it found. A key it leaves out is a "not found", as if it had
// called bc.For(key).NotFound: a miss for the batch, ErrNotFound for a
// GetOrSet waiting on it, and cached as such for
// EntryOptions.NotFoundDuration when that is positive. (A key it marked
// NotModified keeps its stale value instead, and an eager refresh that
// leaves a key out without marking it NotFound keeps the entry as it was;
// one marked NotFound replaces it with the "not found".) Keys it returns that it was
// not asked for are ignored and logged.
//
// An error fails every key of the call: each key with a stale value gets
// it (fail-safe), the others get the error; bc.Fail fails one key alone.
// Its context is detached from the callers' cancellation, as a Factory's
// is.
type BatchFactory[T any] func(ctx context.Context, bc *BatchContext[T]) (map[string]T, error)

// BatchContext is handed to a BatchFactory: the keys to load and, per key,
// a FactoryContext with what the cache holds for it (stale value, ETag,
// last-modified time) and the options of the entry to produce (duration,
// fail-safe, tags, ETag: adaptive caching per key).
type BatchContext[T any] struct {
	keys   []string
	fcs    map[string]*FactoryContext[T]
	failed map[string]error // Fail's; nil until a key fails
}

// Fail fails key alone with err, as a Factory returning err fails its key:
// with fail-safe on and a stale value the key gets that value (throttled);
// else its Result.Err (or a GetOrSet waiting on it) wraps err. The other
// keys are answered with what the factory returns for them. A value
// returned for key as well is ignored. Fail of a key that was not asked
// for, or with a nil err, does nothing. Call it before the factory
// returns, from its goroutine (as For).
func (bc *BatchContext[T]) Fail(key string, err error) {
	if err == nil {
		return
	}
	if _, ok := bc.fcs[key]; !ok {
		return
	}
	if bc.failed == nil {
		bc.failed = make(map[string]error)
	}
	bc.failed[key] = err
}

// Keys returns the keys to load, each once. The slice must not be changed.
func (bc *BatchContext[T]) Keys() []string { return bc.keys }

// For returns the FactoryContext of key: its stale value and metadata, and
// the options of its entry. For a key that was not asked for it returns a
// context whose changes are ignored.
func (bc *BatchContext[T]) For(key string) *FactoryContext[T] {
	if fc, ok := bc.fcs[key]; ok {
		return fc
	}
	return &FactoryContext[T]{key: key}
}

// Stale returns the stale value the cache holds for key, if any. It is
// bc.For(key).Stale().
func (bc *BatchContext[T]) Stale(key string) (T, bool) { return bc.For(key).Stale() }

// batchKeys checks the keys of a batch call. It returns the distinct keys
// (in the order of first appearance) and, when some key is a duplicate or
// invalid, the index of each key's distinct key in them (-1 for an invalid
// key, whose error is in errs); idx is nil when distinct is keys itself
// (the common case: no copy, no allocation).
func (c *Cache) batchKeys(ctx context.Context, keys []string) (distinct []string, idx []int, errs map[int]error, err error) {
	if len(keys) > MaxBatchKeys {
		return nil, nil, nil, fmt.Errorf("%w: %d, the maximum is %d", ErrTooManyKeys, len(keys), MaxBatchKeys)
	}
	if c.closed.Load() {
		return nil, nil, nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	var small [256]int32
	set := newKeySet(len(keys), small[:])
	distinct = keys
	for i, k := range keys {
		// The key alone: closed and ctx were checked once, above. A ctx
		// that ends meanwhile is the wait's (the call's error), never a
		// key's own error behind a nil one for the call.
		kerr := c.ValidateKey(k)
		j := -1
		if kerr == nil {
			j = set.add(k, distinct)
		}
		if idx == nil {
			if kerr == nil && j < 0 {
				set.setLast(i)
				continue // still aligned: distinct is keys[:i+1]
			}
			// The first duplicate or invalid key: from now on distinct is
			// a copy and idx maps the keys to it.
			idx = make([]int, len(keys))
			for x := range i {
				idx[x] = x
			}
			distinct = append(make([]string, 0, len(keys)), keys[:i]...)
		}
		switch {
		case kerr != nil:
			if errs == nil {
				errs = make(map[int]error)
			}
			errs[i] = kerr
			idx[i] = -1
		case j >= 0:
			idx[i] = j
		default:
			set.setLast(len(distinct))
			idx[i] = len(distinct)
			distinct = append(distinct, k)
		}
	}
	return distinct, idx, errs, nil
}

// keySet finds the duplicates among the keys of a batch call: an
// open-addressing table of indexes into the distinct keys, hashed with
// maphash (in the caller's stack array for up to 128 keys).
type keySet struct {
	slots []int32 // 1 + the index in distinct of the key in the slot; 0 = empty
	mask  uint64
	last  int // the slot of the last key add did not find
}

var keySeed = maphash.MakeSeed()

// newKeySet returns a keySet for n keys, in small if it is large enough.
func newKeySet(n int, small []int32) keySet {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if size > len(small) {
		small = make([]int32, size)
	}
	return keySet{slots: small[:size], mask: uint64(size - 1)}
}

// add looks k up among distinct: its index there if it holds it, else -1,
// and then a following setLast records k's index once it is known.
func (s *keySet) add(k string, distinct []string) int {
	h := maphash.String(keySeed, k) & s.mask
	for {
		v := s.slots[h]
		if v == 0 {
			s.last = int(h)
			return -1
		}
		if distinct[v-1] == k {
			return int(v - 1)
		}
		h = (h + 1) & s.mask
	}
}

// setLast records at the slot found by the last add the index j of its key.
func (s *keySet) setLast(j int) { s.slots[s.last] = int32(j + 1) }

// spread returns the results of the distinct keys laid out along the keys
// of the call, duplicates included (idx nil: already aligned).
func spread[T any](res []Result[T], idx []int, errs map[int]error) []Result[T] {
	if idx == nil {
		return res
	}
	out := make([]Result[T], len(idx))
	for i, j := range idx {
		if j < 0 {
			out[i].Err = errs[i]
			continue
		}
		out[i] = res[j]
	}
	return out
}

// GetOrSetMany is GetOrSet for many keys. It returns one Result per key,
// aligned with keys; a key listed twice is looked up and loaded once and
// its Result repeated. The keys the memory tier does not answer are read
// from the distributed tier in one round trip, and the keys neither tier
// answers are loaded with one call of f, whose results are written to the
// distributed tier in one pipeline and announced on the backplane in one
// batch.
//
// Every rule of GetOrSet holds per key: a key already being loaded (by
// GetOrSet or another batch) is not asked of f again, the call waits for
// that load; fail-safe, the factory timeouts and the throttle apply to
// each key with its own stale value; eager refresh starts one background
// batch for the keys that reached their threshold.
//
// The call's error is non-nil when nothing was done: ErrNilFactory,
// ErrTooManyKeys, ErrInvalidOptions, ErrClosed, or ctx.Err() on entry.
// It is ctx.Err() too when ctx ended before every key was answered; then
// the keys answered by then have their Results and the others carry
// ctx.Err() (their loads go on for the other callers). An
// empty keys returns an empty slice and nil. An invalid key gets
// ErrInvalidKey in its Result and the other keys are served.
//
// If f panics, a caller that started the load of one of the keys panics
// with the same value; the other callers get ErrFactoryPanic for those
// keys.
func GetOrSetMany[T any](ctx context.Context, c *Cache, keys []string, f BatchFactory[T], opts ...Option) (res []Result[T], err error) {
	if c.tr != nil && len(keys) > 0 {
		var span Span
		ctx, span = c.startOp(ctx, SpanGetOrSetMany, "")
		span.SetAttributes(slog.Int(AttrKeysCount, len(keys)))
		defer func() {
			// The batch factory's panic, re-raised by getOrSetMany: the
			// operation failed, and the panic goes on.
			if p := recover(); p != nil {
				span.End(c.spanError(ErrFactoryPanic))
				panic(p)
			}
			span.End(c.spanError(err))
		}()
	}
	return getOrSetMany(ctx, c, keys, f, opts...)
}

// The body of the exported function above, which traces it.
func getOrSetMany[T any](ctx context.Context, c *Cache, keys []string, f BatchFactory[T], opts ...Option) ([]Result[T], error) {
	if f == nil {
		return nil, ErrNilFactory
	}
	if len(keys) == 0 {
		return []Result[T]{}, nil
	}
	o, err := c.resolve(opts)
	if err != nil {
		return nil, err
	}
	distinct, idx, kerrs, err := c.batchKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	res := make([]Result[T], len(distinct))
	// The keys memory does not answer, in one slice for the call, made at
	// the first of them (a call answered by memory allocates nothing more):
	// the claims the call leads live in it (batchKey.own), so it is never
	// grown; open[j].i is the key's index in distinct.
	var open []batchKey
	var eager []*batchKey
	var call *batchCall[T] // made at the first key that needs a load
	for i, key := range distinct {
		if e, now := c.hitL1(ctx, key, o); e != nil {
			res[i] = typedResult[T](key, e)
			if res[i].Found && e.eagerDue(now) {
				// Unless a load of the key runs: one background batch
				// for every such key of the call.
				if call == nil {
					call = newBatchCall(ctx, c, f, o)
				}
				b := &batchKey{i: i, key: key, eager: e}
				if call.claim(b) {
					eager = append(eager, b)
				}
			}
			continue
		}
		if !o.SkipL1Read {
			c.miss(ctx, key, TierL1)
		}
		if c.inLoadOf(ctx, key) {
			// A factory asking for a key it is loading (see GetOrSet).
			res[i].Err = loadCycle(key)
			continue
		}
		if call == nil {
			call = newBatchCall(ctx, c, f, o)
		}
		if open == nil {
			open = make([]batchKey, 0, len(distinct)-i)
		}
		open = append(open, batchKey{i: i, key: key})
		call.claim(&open[len(open)-1])
	}
	if len(eager) > 0 {
		lctx := call.lctx
		started := c.goBackground(lctx, func() {
			for _, b := range eager {
				c.stats.eagerRefreshes.Add(1)
				if c.ev != nil {
					c.emitEagerRefresh(ctx, b.key)
				}
			}
			loadMany(lctx, c, eager, f, o)
		})
		if !started {
			for _, b := range eager {
				c.finishKey(b.key, b.tok, nil, ErrClosed)
			}
		}
	}
	if len(open) == 0 {
		return spread(res, idx, kerrs), nil
	}
	var led []*batchKey
	for j := range open {
		if open[j].tok != nil {
			if led == nil {
				led = make([]*batchKey, 0, len(open)-j)
			}
			led = append(led, &open[j])
		}
	}
	// done is closed when the keys this call leads are answered; nil when
	// they were answered here, before the wait.
	var done chan struct{}
	switch {
	case len(led) == 0:
	case ctx.Done() == nil && o.FactorySoftTimeout == 0 && o.FactoryHardTimeout == 0:
		// Nothing can make this caller stop waiting: the load runs here,
		// without a goroutine of its own (as flightHere for one key).
		if c.enterBackground() {
			loadMany(call.lctx, c, led, f, o)
			c.wg.Done()
		} else {
			for _, b := range led {
				c.finishKey(b.key, b.tok, nil, ErrClosed)
			}
		}
	default:
		done = make(chan struct{})
		if !c.goBackground(call.lctx, func() { defer close(done); loadMany(call.lctx, c, led, f, o) }) {
			for _, b := range led {
				c.finishKey(b.key, b.tok, nil, ErrClosed)
			}
			close(done)
		}
	}

	w := newWaitTimers(o)
	defer w.stop()
	var cut error
	var panicVal any
	panicked := false
	for j := range open {
		b := &open[j]
		if b.tok != nil && done == nil && !b.answered {
			// Led and loaded here: the claim holds the answer. Every
			// finishKey of the claims this call leads ran on this
			// goroutine (loadMany above), so no lock is needed to read it.
			b.answered = true
			r := b.own.res
			if !b.own.done {
				r = singleflight.Result{Err: ErrClosed} // not reached: loadMany answers every key
			}
			res[b.i] = batchResult[T](b.key, r)
			if p, ok := errors.AsType[*panicError](r.Err); ok && !panicked {
				panicked, panicVal = true, p.value
			}
			continue
		}
		for !b.answered && cut == nil {
			wait := b.ch
			var ledDone <-chan struct{}
			if b.tok != nil {
				wait, ledDone = nil, done
			}
			var r singleflight.Result
			select {
			case r = <-wait:
			case <-ledDone:
				var ok bool
				if r, ok = c.finished(b.key, b.tok); !ok {
					r = singleflight.Result{Err: ErrClosed} // not reached: loadMany answers every key
				}
			case <-ctx.Done():
				cut = ctx.Err()
				continue
			case <-w.soft:
				w.soft = nil
				answerFallbacks(ctx, c, open, res, o, false)
				continue
			case <-w.hard:
				w.hard = nil
				answerFallbacks(ctx, c, open, res, o, true)
				continue
			}
			b.answered = true
			res[b.i] = batchResult[T](b.key, r)
			if p, ok := errors.AsType[*panicError](r.Err); ok && b.tok != nil && !panicked {
				panicked, panicVal = true, p.value
			}
		}
	}
	short := false
	for j := range open {
		if !open[j].answered {
			res[open[j].i].Err = cut
			short = true
		}
	}
	if panicked {
		panic(panicVal)
	}
	if !short {
		cut = nil
	}
	return spread(res, idx, kerrs), cut
}

// batchCall is what the loads of one batch call share.
type batchCall[T any] struct {
	c *Cache
	// The loads are detached from the caller's cancellation but not from
	// its values (trace spans, request-scoped loggers), and cancelled by
	// Close (see detach).
	lctx context.Context
	f    BatchFactory[T]
	o    *EntryOptions
}

func newBatchCall[T any](ctx context.Context, c *Cache, f BatchFactory[T], o *EntryOptions) *batchCall[T] {
	return &batchCall[T]{c: c, lctx: c.detach(ctx), f: f, o: o}
}

// claim claims b's key for the call (an eager refresh of b.eager when it
// is set) and reports whether the call leads it: then b.tok is set (to
// b.own), else b.ch (the channel on which the key's current load answers).
func (bc *batchCall[T]) claim(b *batchKey) bool {
	led, ch := bc.c.claimBatch(b.key, &b.own, b.eager, bc)
	if led {
		b.tok = &b.own
	} else {
		b.ch = ch
	}
	return led
}

// loadAlone is the call's load of one key, alone: the single-key load the
// call joined for it was forgotten meanwhile (see claimBatch).
func (bc *batchCall[T]) loadAlone(key string, eager *entry) (any, error) {
	if !bc.c.enterBackground() {
		return nil, ErrClosed
	}
	defer bc.c.wg.Done()
	return loadOne(bc.lctx, bc.c, key, bc.f, bc.o, eager)
}

// answerFallbacks is a timeout of the batch caller's wait, per key as for
// GetOrSet: every key still unanswered gets the value memory holds if its
// load answered meanwhile (answeredMeanwhile), else its fail-safe fallback; at the
// hard timeout, the others get ErrFactoryTimeout (and, with
// DisableBackgroundCompletion, their keys are released).
func answerFallbacks[T any](ctx context.Context, c *Cache, open []batchKey, res []Result[T], o *EntryOptions, hard bool) {
	for j := range open {
		b := &open[j]
		if b.answered {
			continue
		}
		if e := c.answeredMeanwhile(b.key, o); e != nil {
			b.answered = true
			res[b.i] = batchResult[T](b.key, singleflight.Result{Val: e.value})
			continue
		}
		if hard {
			c.timedOut(b.key, o)
		}
		v, ok := fallbackFor[T](ctx, c, b.key, o)
		var dflt any
		hasDflt := false
		if !ok && hard {
			dflt, hasDflt = failSafeDefaultAnswer[T](c, o)
		}
		if hard && b.tok != nil && o.DisableBackgroundCompletion {
			// Released at once, as GetOrSet's key: the next caller
			// starts afresh; this load's late result is dropped. Callers
			// that joined it get what this one gets: the fallback, the
			// default value, or the timeout.
			switch {
			case ok:
				c.finishKey(b.key, b.tok, &v, nil)
			case hasDflt:
				c.finishKey(b.key, b.tok, dflt, nil)
			default:
				c.finishKey(b.key, b.tok, nil, fmt.Errorf("%w: key %q after %v", ErrFactoryTimeout, b.key, o.FactoryHardTimeout))
			}
		}
		if ok {
			if hard {
				c.factoryTimedOut(ctx, b.key, o, TimeoutHard, true)
			} else {
				c.factoryTimedOut(ctx, b.key, o, TimeoutSoft, true)
				c.timedOut(b.key, o)
			}
			b.answered = true
			res[b.i] = Result[T]{Value: v, Found: true}
			continue
		}
		if hard {
			c.factoryTimedOut(ctx, b.key, o, TimeoutHard, false)
			b.answered = true
			if dv, ok := valueAs[T](dflt); hasDflt && ok {
				res[b.i] = Result[T]{Value: dv, Found: true} // as GetOrSet's FailSafeDefaultValue
				continue
			}
			res[b.i].Err = fmt.Errorf("%w: key %q after %v", ErrFactoryTimeout, b.key, o.FactoryHardTimeout)
		}
	}
}

// batchResult turns one key's load result into its Result: what GetOrSet
// would return (result), with a "not found" as a miss.
func batchResult[T any](key string, r singleflight.Result) Result[T] {
	v, err := result[T](key, r, false)
	switch {
	case errors.Is(err, ErrNotFound):
		return Result[T]{}
	case err != nil:
		return Result[T]{Err: err}
	}
	return Result[T]{Value: v, Found: true}
}

// loadOne loads one key with the batch factory, on the calling goroutine.
func loadOne[T any](ctx context.Context, c *Cache, key string, f BatchFactory[T], o *EntryOptions, eager *entry) (any, error) {
	b := &batchKey{key: key, eager: eager} // a claim of its own, not registered
	b.own.batch = true
	b.tok = &b.own
	loadMany(ctx, c, []*batchKey{b}, f, o)
	r, _ := c.finished(key, b.tok)
	return r.Val, r.Err
}

// batchKey is one key of a batch call and of its load.
type batchKey struct {
	i   int
	key string
	tok *claimToken                // the call's claim (&own): it leads the key
	ch  <-chan singleflight.Result // else: the key's current load answers here
	own claimToken                 // the storage of tok

	eager    *entry // an eager refresh of this entry
	stale    *entry
	answered bool // the call has the key's Result
	fallback bool
	out      bool // answered from a tier; not asked of the factory
}

// loadMany is load for many keys: the memory tier again, one read of the
// distributed tier for the keys still open, then one factory call for the
// rest. It answers each key's claim once (finishKey), which hands the
// result to every caller waiting on the key.
func loadMany[T any](ctx context.Context, c *Cache, ks []*batchKey, f BatchFactory[T], o *EntryOptions) {
	if c.bp != nil {
		for _, k := range ks {
			c.readers.add(k.key) // see bpHandler.HandleMessage
		}
		defer func() {
			for _, k := range ks {
				c.readers.done(k.key)
			}
		}()
	}
	answer := func(k *batchKey, v any, err error) {
		k.out = true
		c.finishKey(k.key, k.tok, v, err)
	}
	defer func() {
		for _, k := range ks { // a safety net: every claim ends
			if !k.out {
				c.finishKey(k.key, k.tok, nil, ErrClosed)
			}
		}
	}()
	haveAllStale := true
	// One L2 budget for the batch, as for a single key (memoryAgain): the
	// invalidation records read for the keys with a fallback and the read
	// of their entries wait o's soft timeout in all.
	budget := c.l2Budget(o)
	lctx := ctx // the reads' context: see withFactoryShare
	for _, k := range ks {
		if k.eager == nil {
			lctx = c.withFactoryShare(ctx, o)
			break
		}
	}
	for _, k := range ks {
		_, stale, fresh := c.memoryAgainBy(lctx, k.key, o, k.eager, budget)
		if fresh != nil {
			answer(k, fresh.value, nil)
			continue
		}
		k.stale = stale
		haveAllStale = haveAllStale && stale != nil
	}

	// The distributed tier: one read for every key still open.
	if c.readsL2(o) {
		n := 0
		for _, k := range ks {
			if !k.out {
				n++
			}
		}
		if n > 0 {
			timeout := o.L2HardTimeout
			if haveAllStale && o.L2SoftTimeout > 0 && (timeout == 0 || o.L2SoftTimeout < timeout) {
				timeout = o.L2SoftTimeout
			}
			names := make([]string, 0, n)
			for _, k := range ks {
				if !k.out {
					names = append(names, k.key)
				}
			}
			rctx := lctx
			if haveAllStale && budget != 0 {
				rctx = withL2Budget(lctx, budget)
			}
			start := stamp()
			vals, unanswered := c.getL2Many(rctx, names, timeout)
			j := 0
			for _, k := range ks {
				if k.out {
					continue // answered by memory (the read left it out)
				}
				b := vals[j]
				noAnswer := unanswered != nil && unanswered[j]
				j++
				if b != nil {
					if l2e := decodeL2[T](c, k.key, b, o, start); l2e != nil {
						var fresh *entry
						if fresh, k.stale = c.mergeL2(ctx, k.key, o, l2e, k.stale, k.eager); fresh != nil {
							c.hit(ctx, k.key, TierL2)
							answer(k, fresh.value, nil)
							continue
						}
					}
				}
				c.miss(ctx, k.key, TierL2)
				if noAnswer && k.eager == nil && c.unverifiedOnly(k.stale) {
					// Stale only for a backplane gap, and the tier cannot
					// tell: memory's copy answers (see readThroughL2).
					answer(k, k.stale.value, nil)
				}
			}
		}
	}

	// The factory: one call for every key still open.
	n := 0
	for _, k := range ks {
		if !k.out {
			n++
		}
	}
	if n == 0 {
		return
	}
	bc := &BatchContext[T]{keys: make([]string, 0, n), fcs: make(map[string]*FactoryContext[T], n)}
	need := make([]*batchKey, 0, n)
	allFallback := true
	for _, k := range ks {
		if k.out {
			continue
		}
		fc := &FactoryContext[T]{key: k.key, opts: *o}
		if k.stale != nil {
			if v, ok := valueOf[T](k.stale); ok {
				fc.stale, fc.hasStale = v, true
				fc.staleETag, fc.staleLastMod = k.stale.etag(), k.stale.lastMod()
			} else {
				k.stale = nil
			}
		}
		k.fallback = o.FailSafe && k.stale != nil
		allFallback = allFallback && k.fallback
		bc.keys = append(bc.keys, k.key)
		bc.fcs[k.key] = fc
		need = append(need, k)
	}
	// The callers stop waiting at the factory timeouts (see answerFallbacks);
	// with DisableBackgroundCompletion so does the factory, once the last
	// of them has.
	timeout := factoryTimeout(o, allFallback)
	fctx := ctx // detached (see detach): Close cancels the factory
	if o.DisableBackgroundCompletion && timeout > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	var fspan Span
	if c.tr != nil {
		fctx, fspan = c.startChild(fctx, SpanFactory, "")
	}
	began := nowNano()
	start := stamp()
	marked := &batchLoading{Context: fctx, c: c, keys: bc.keys}
	vals, panicked, pv, err := callBatchFactory(marked, f, bc)
	marked.ended.Store(true)
	now := nowNano()
	ferr := err
	if panicked {
		ferr = ErrFactoryPanic
	}
	// One run of the batch factory, one call in Stats (an error if it
	// failed, or failed a key: bc.Fail); an event per key, with its error.
	c.stats.factoryCalls.Add(1)
	if ferr != nil || len(bc.failed) > 0 {
		c.stats.factoryErrors.Add(1)
	}
	if fspan != nil {
		eager := false
		for _, k := range need {
			eager = eager || k.eager != nil
		}
		fspan.SetAttributes(slog.Bool(AttrEager, eager),
			slog.Bool(AttrBackground, timeout > 0 && now-began >= int64(timeout)))
		fspan.End(ferr)
	}
	if c.ev != nil {
		for _, k := range need {
			kerr := ferr
			if kerr == nil {
				kerr = bc.failed[k.key]
			}
			c.emitFactoryCall(ctx, k.key, time.Duration(now-began), kerr, k.eager != nil)
		}
	}
	if panicked {
		c.log.Error("batch factory panicked", slog.Int("keys", len(need)), c.keyAttr(need[0].key), c.panicAttr(need[0].key, pv))
		for _, k := range need {
			answer(k, nil, &panicError{pv})
		}
		return
	}
	if err == nil {
		if extra := len(vals) - countAsked(vals, bc); extra > 0 {
			c.log.Warn("batch factory returned keys it was not asked for; ignored", slog.Int("count", extra))
		}
	}
	var entries []*entry
	var entryKeys []*batchKey
	var writes []pending
	for _, k := range need {
		// Whether the key's callers stopped waiting at a timeout: its
		// result is then a background completion nobody waits for.
		kt := factoryTimeout(o, k.fallback)
		late := kt > 0 && now-began >= int64(kt)
		if o.DisableBackgroundCompletion && late {
			// The callers that stopped waiting got the fallback or the
			// timeout; the result is dropped. Callers still waiting (they
			// joined later) answer as at their timeout, as GetOrSet's.
			v, derr := droppedAnswer[T](c, o, k.key, kt, k.fallback, k.stale)
			answer(k, v, derr)
			continue
		}
		fc := bc.fcs[k.key]
		kerr := err
		if kerr == nil && bc.failed != nil {
			kerr = bc.failed[k.key]
		}
		v, found := vals[k.key]
		if kerr == nil {
			if fc.notModified && !found {
				v, found = fc.stale, true
			}
			if found {
				kerr = fc.opts.Validate()
			}
		}
		if k.eager != nil && (kerr != nil || !found && !fc.notFound) {
			// Failed, or left out without a NotFound: do not retry on every
			// hit; the entry stays as it was, minus its eager refresh point.
			c.dropRefreshPoint(k.eager)
			if kerr != nil {
				c.log.Warn("eager refresh failed", c.keyAttr(k.key), c.errAttr(k.key, kerr))
			}
			if k.eager.fresh(nowNano()) {
				answer(k, k.eager.value, nil)
				continue
			}
			// The entry expired while the refresh ran: callers that joined
			// it answer as for any failed (or left out) key, below.
		}
		if kerr != nil {
			if late {
				// As GetOrSet's: nobody waits for this error.
				c.log.Warn("background factory failed", c.keyAttr(k.key), c.errAttr(k.key, kerr))
			}
			kstale, kfallback := k.stale, k.fallback
			if !late && kstale != nil && !kstale.usableStale(nowNano()) {
				kstale, kfallback = nil, false // its fail-safe life ended while the factory ran
			}
			switch d, hasDefault := failSafeDefaultAnswer[T](c, o); {
			case kfallback && o.failSafeFor(kerr):
				if !late { // else the callers had it at the timeout, which counted the activation
					c.serveStale(ctx, k.key, kstale, o, FailSafeFactoryError, kerr)
				}
				answer(k, kstale.value, nil)
			case hasDefault && kstale == nil && o.failSafeFor(kerr):
				answer(k, d, nil)
			default:
				answer(k, nil, fmt.Errorf("hybrid: batch factory %q: %w", k.key, kerr))
			}
			continue
		}
		eo := fc.opts.withDefaults()
		if !found || fc.notFound {
			// Left out, or fc.NotFound: a "not found", cached for
			// NotFoundDuration if positive, as GetOrSet's.
			if eo.NotFoundDuration <= 0 {
				answer(k, notFoundValue, nil)
				continue
			}
			e := newNotFound[T](k.key, start, now, &eo)
			if c.l2 != nil && !eo.SkipL2Write {
				if enc, err := c.encode(e); err == nil {
					writes = append(writes, pending{op: opSet, key: e.key, ts: e.ts, val: enc, physUntil: e.physUntil,
						noValue: k.stale == nil && k.eager == nil, ctx: uncancelled(ctx)})
				}
			} else {
				writes = append(writes, pending{op: opSet, key: e.key, ts: e.ts, physUntil: e.physUntil, ctx: uncancelled(ctx)})
			}
			entries = append(entries, e)
			entryKeys = append(entryKeys, k)
			continue
		}
		if fc.notModified {
			v = fc.stale
		}
		e := newEntry(k.key, v, start, now, &eo, fc.meta())
		if err := makeAutoClone(e, v, &eo, c.ser); err != nil {
			answer(k, nil, err)
			continue
		}
		if c.l2 != nil && !eo.SkipL2Write {
			enc, err := c.encode(e)
			if err != nil {
				c.keptInMemoryOnly(ctx, k.key, err)
			} else {
				// A key no tier held: its message carries no entry (see storeAs).
				writes = append(writes, pending{op: opSet, key: e.key, ts: e.ts, val: enc, physUntil: e.physUntil,
					noValue: k.stale == nil && k.eager == nil, ctx: uncancelled(ctx)})
			}
		} else {
			// No distributed tier to write: the backplane is told at once
			// (as store does).
			writes = append(writes, pending{op: opSet, key: e.key, ts: e.ts, physUntil: e.physUntil, ctx: uncancelled(ctx)})
		}
		entries = append(entries, e)
		entryKeys = append(entryKeys, k)
	}
	if !o.SkipL1Write {
		c.l1.setMany(entries)
	}
	c.propagateMany(writes, o)
	for i := len(entryKeys) - 1; i >= 0; i-- { // see GetOrSetMany's wait: the first key last
		answer(entryKeys[i], entries[i].value, nil)
	}
}

func countAsked[T any](vals map[string]T, bc *BatchContext[T]) int {
	n := 0
	for k := range vals {
		if _, ok := bc.fcs[k]; ok {
			n++
		}
	}
	return n
}

// batchLoading is the context of a batch factory: the keys it loads, so
// that the factory cannot wait for them (see inLoadOf).
type batchLoading struct {
	context.Context
	c     *Cache
	keys  []string
	ended atomic.Bool // the factory has returned
}

func (b *batchLoading) Value(key any) any {
	if _, ok := key.(loadingKey); ok {
		return b
	}
	return b.Context.Value(key)
}

func (b *batchLoading) loads(c *Cache, key string) bool {
	return b.c == c && !b.ended.Load() && slices.Contains(b.keys, key)
}

func (b *batchLoading) outer() context.Context { return b.Context }

// callBatchFactory runs f, turning a panic into a value.
func callBatchFactory[T any](ctx context.Context, f BatchFactory[T], bc *BatchContext[T]) (vals map[string]T, panicked bool, pv any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, pv = true, r
		}
	}()
	vals, err = f(ctx, bc)
	return vals, false, nil, err
}

// TryGetMany is TryGet for many keys: one Result per key, aligned with
// keys (duplicates answered once and repeated), Found false on a miss. The
// keys the memory tier does not answer are read from the distributed tier
// in one round trip. It never calls a factory.
//
// The call's error is ErrTooManyKeys, ErrInvalidOptions, ErrClosed or
// ctx.Err() of a context already done, and then nothing was done; an
// empty keys returns an empty slice and nil. A context that ends during
// the call gives ctx.Err() with the results read until then (a key not
// read from the distributed tier is Found false). An invalid key gets
// ErrInvalidKey in its Result.
func TryGetMany[T any](ctx context.Context, c *Cache, keys []string, opts ...Option) (res []Result[T], err error) {
	if c.tr != nil && len(keys) > 0 {
		var span Span
		ctx, span = c.startOp(ctx, SpanTryGetMany, "")
		span.SetAttributes(slog.Int(AttrKeysCount, len(keys)))
		defer func() { span.End(c.spanError(err)) }()
	}
	return tryGetMany[T](ctx, c, keys, opts...)
}

// The body of the exported function above, which traces it.
func tryGetMany[T any](ctx context.Context, c *Cache, keys []string, opts ...Option) ([]Result[T], error) {
	if len(keys) == 0 {
		return []Result[T]{}, nil
	}
	o, err := c.resolve(opts)
	if err != nil {
		return nil, err
	}
	distinct, idx, kerrs, err := c.batchKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	res := make([]Result[T], len(distinct))
	stale := make([]*entry, len(distinct))
	var miss []int
	budget := c.l2Budget(o) // one for the batch (see loadMany)
	for i, key := range distinct {
		if e, _ := c.hitL1(ctx, key, o); e != nil {
			res[i] = typedResult[T](key, e)
			continue
		}
		// As TryGet's slow path: the memory entry checked against the
		// distributed tier's invalidation records, if needed.
		_, s, e := c.memoryAgainBy(ctx, key, o, nil, budget)
		if !o.SkipL1Read {
			if e != nil {
				c.hit(ctx, key, TierL1)
			} else {
				c.miss(ctx, key, TierL1)
			}
		}
		if e != nil {
			res[i] = typedResult[T](key, e)
			continue
		}
		stale[i] = s
		miss = append(miss, i)
	}
	if len(miss) > 0 && c.readsL2(o) {
		names := make([]string, len(miss))
		haveAllStale := true
		for j, i := range miss {
			names[j] = distinct[i]
			// As TryGet: the soft timeout only if every stale copy could
			// answer (AllowStaleOnRead, or stale only for a backplane gap).
			canAnswer := stale[i] != nil && (o.AllowStaleOnRead || c.unverifiedOnly(stale[i]))
			haveAllStale = haveAllStale && canAnswer
		}
		if c.bp != nil {
			for _, k := range names {
				c.readers.add(k)
			}
			defer func() {
				for _, k := range names {
					c.readers.done(k)
				}
			}()
		}
		timeout := o.L2HardTimeout
		if haveAllStale && o.L2SoftTimeout > 0 && (timeout == 0 || o.L2SoftTimeout < timeout) {
			timeout = o.L2SoftTimeout
		}
		rctx := ctx
		if haveAllStale && budget != 0 {
			rctx = withL2Budget(ctx, budget)
		}
		start := stamp()
		vals, unanswered := c.getL2Many(rctx, names, timeout)
		for j, i := range miss {
			key := distinct[i]
			if vals[j] != nil {
				if l2e := decodeL2[T](c, key, vals[j], o, start); l2e != nil {
					var fresh *entry
					if fresh, stale[i] = c.mergeL2(ctx, key, o, l2e, stale[i], nil); fresh != nil {
						c.hit(ctx, key, TierL2)
						res[i] = typedResult[T](key, fresh)
						continue
					}
				}
			}
			c.miss(ctx, key, TierL2)
			if unanswered != nil && unanswered[j] && c.unverifiedOnly(stale[i]) {
				res[i] = typedResult[T](key, stale[i]) // as TryGet (readThroughL2)
			}
		}
	}
	for _, i := range miss {
		if !res[i].Found && res[i].Err == nil && o.AllowStaleOnRead && stale[i] != nil {
			res[i] = typedResult[T](distinct[i], stale[i])
			c.stats.staleServed.Add(1)
			if c.ev != nil {
				c.emitStaleServed(ctx, distinct[i])
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return spread(res, idx, kerrs), err
	}
	return spread(res, idx, kerrs), nil
}

// typedResult is the Result of the entry e of key.
func typedResult[T any](key string, e *entry) Result[T] {
	if e.value == notFoundValue {
		return Result[T]{} // a cached "not found": a miss
	}
	v, ok := valueOf[T](e)
	if !ok {
		return Result[T]{Err: mismatch[T](key, e.value)}
	}
	return Result[T]{Value: v, Found: true}
}

// SetMany stores every value of values under its key, in every tier, as
// Set does for one: the memory tier at once, the distributed tier in one
// pipelined newest-wins write, the backplane in one batch.
//
// It checks everything first: if a key is invalid or a value cannot be
// encoded (ErrInvalidKey, ErrValueTooLarge, a serializer error), it
// returns that error, naming the key, and stores nothing. An empty map
// does nothing. Errors: ErrTooManyKeys, ErrInvalidKey, ErrInvalidOptions,
// ErrClosed, ErrValueTooLarge, ctx.Err().
func SetMany[T any](ctx context.Context, c *Cache, values map[string]T, opts ...Option) (err error) {
	if c.tr != nil && len(values) > 0 {
		var span Span
		ctx, span = c.startOp(ctx, SpanSetMany, "")
		span.SetAttributes(slog.Int(AttrKeysCount, len(values)))
		defer func() { span.End(c.spanError(err)) }()
	}
	return setMany(ctx, c, values, opts...)
}

// The body of the exported function above, which traces it.
func setMany[T any](ctx context.Context, c *Cache, values map[string]T, opts ...Option) error {
	if len(values) == 0 {
		return nil
	}
	if len(values) > MaxBatchKeys {
		return fmt.Errorf("%w: %d, the maximum is %d", ErrTooManyKeys, len(values), MaxBatchKeys)
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	for k := range values {
		if err := c.batchKeyError(k); err != nil {
			return err
		}
	}
	if err := c.usable(ctx); err != nil {
		return err
	}
	entries := make([]*entry, 0, len(values))
	var writes []pending
	for k, v := range values {
		e := newEntry(k, v, stamp(), nowNano(), o, meta{})
		if err := makeAutoClone(e, v, o, c.ser); err != nil {
			return err
		}
		if c.l2 != nil && !o.SkipL2Write {
			enc, err := c.encode(e)
			if err != nil {
				return err
			}
			writes = append(writes, pending{op: opSet, key: k, ts: e.ts, val: enc, physUntil: e.physUntil, ctx: uncancelled(ctx)})
		} else if c.bp != nil && !o.SkipBackplane {
			writes = append(writes, pending{op: opSet, key: k, ts: e.ts, ctx: uncancelled(ctx)})
		}
		entries = append(entries, e)
	}
	if !o.SkipL1Write {
		c.l1.setMany(entries)
	}
	for _, e := range entries {
		c.release(e.key) // as Set: no later caller joins an older load
	}
	c.propagateMany(writes, o)
	return nil
}

// RemoveMany removes every key of keys, as Remove does for one: a
// tombstone in the memory tier at once (a read that raced the removal
// cannot put the old value back), then the distributed tier and one batch
// of backplane notifications. Duplicates are removed once.
//
// It checks every key first: for an invalid key it returns ErrInvalidKey,
// naming the key, and removes nothing. Errors: ErrTooManyKeys,
// ErrInvalidKey, ErrInvalidOptions, ErrClosed, ctx.Err().
func (c *Cache) RemoveMany(ctx context.Context, keys []string, opts ...Option) (err error) {
	if c.tr != nil && len(keys) > 0 {
		var span Span
		ctx, span = c.startOp(ctx, SpanRemoveMany, "")
		span.SetAttributes(slog.Int(AttrKeysCount, len(keys)))
		defer func() { span.End(c.spanError(err)) }()
	}
	return c.removeMany(ctx, keys, opts...)
}

// The body of the exported function above, which traces it.
func (c *Cache) removeMany(ctx context.Context, keys []string, opts ...Option) error {
	if len(keys) == 0 {
		return nil
	}
	if len(keys) > MaxBatchKeys {
		return fmt.Errorf("%w: %d, the maximum is %d", ErrTooManyKeys, len(keys), MaxBatchKeys)
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if err := c.batchKeyError(k); err != nil {
			return err
		}
		seen[k] = true
	}
	if err := c.usable(ctx); err != nil {
		return err
	}
	tombs := make([]*entry, 0, len(seen))
	ps := make([]pending, 0, len(seen))
	for _, k := range keys {
		if !seen[k] {
			continue
		}
		seen[k] = false
		now := stamp()
		tombs = append(tombs, newTombstone(k, now))
		ps = append(ps, pending{op: opRemove, key: k, ts: now, ctx: uncancelled(ctx)})
	}
	if !o.SkipL1Write {
		c.l1.setMany(tombs)
	}
	for _, t := range tombs {
		c.release(t.key)
	}
	c.propagateMany(ps, o)
	return nil
}

// batchKeyError is ValidateKey for one key of a batch that refuses the
// whole call for an invalid key (SetMany, RemoveMany): the error names
// the key. As for a single key, every key is checked before whether the
// cache is closed or ctx done (usable), so that the error does not depend
// on the order of the keys (a map's is random).
func (c *Cache) batchKeyError(k string) error {
	if err := c.ValidateKey(k); err != nil {
		return fmt.Errorf("%w (key %q)", err, truncate(k))
	}
	return nil
}

// truncate shortens a key for an error message.
func truncate(k string) string {
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}
