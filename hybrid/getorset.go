package hybrid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// GetOrSet returns the value of key: from the memory tier on a fresh hit,
// otherwise from one shared load per key (the memory tier again, then the
// distributed tier, then the factory), whose result is stored before it is
// returned.
//
// WARNING: concurrent callers of a key share one factory run: every caller
// gets the result of whichever caller's factory started the load. Every
// factory used with a key must compute the same value. A factory that
// calls GetOrSet with its ctx for the key it loads (directly or through
// another key's factory) gets ErrLoadCycle; with another context (such as
// context.Background()) that call joins the load it is part of and waits
// for itself.
//
// Every concurrent caller of a key waits for the same load; a caller whose
// ctx ends stops waiting and gets ctx.Err(), while the load goes on for the
// others. A factory error is returned wrapped with the key, unless fail-safe
// serves a stale value instead (with a nil error). If the factory panics,
// the caller that started the load panics with the same value and the
// other callers get ErrFactoryPanic.
//
// Errors: ErrInvalidKey, ErrNilFactory, ErrInvalidOptions, ErrClosed,
// ErrTypeMismatch (the key holds another type), ErrFactoryTimeout,
// ErrNotFound (the factory said FactoryContext.NotFound), ErrFactoryPanic,
// ErrLoadCycle, ctx.Err(), or the factory's error.
func GetOrSet[T any](ctx context.Context, c *Cache, key string, f Factory[T], opts ...Option) (T, error) {
	var zero T
	if err := c.check(ctx, key); err != nil {
		return zero, err
	}
	if f == nil {
		return zero, ErrNilFactory
	}
	o, err := c.resolve(opts)
	if err != nil {
		return zero, err
	}
	if e, now := c.hitL1(ctx, key, o); e != nil {
		// The common value, a *T, is read here: through valueOf the
		// value would be copied once per call it passes.
		p, isT := e.value.(*T)
		if !isT {
			return getOrSetHitOther(ctx, c, key, e, now, f, o)
		}
		if e.eagerDue(now) {
			startEagerRefresh(ctx, c, key, e, f, o)
		}
		return *p, nil
	}
	return getOrSetSlow(ctx, c, key, f, o)
}

// getOrSetHitOther is GetOrSet's hit on an entry whose value is not a *T:
// an auto-clone or lazily decoded value of T, or another type.
func getOrSetHitOther[T any](ctx context.Context, c *Cache, key string, e *entry, now int64, f Factory[T], o *EntryOptions) (T, error) {
	v, ok := valueOf[T](e)
	if !ok {
		return v, mismatch[T](key, e.value)
	}
	if e.eagerDue(now) {
		startEagerRefresh(ctx, c, key, e, f, o)
	}
	return v, nil
}

// hitL1 returns the fresh, valid memory entry of key (and the time it
// was read at), or nil: the hit path, a lookup and a pure check, then the
// hit counted (a striped counter) and reported.
func (c *Cache) hitL1(ctx context.Context, key string, o *EntryOptions) (*entry, int64) {
	if o.SkipL1Read {
		return nil, 0
	}
	e := c.l1.get(key)
	if e == nil {
		return nil, 0
	}
	var now int64
	if c.clock != nil {
		now = c.clock.read()
		if now >= e.freshUntil-c.clock.margin {
			now = nowNano() // near its expiry: the precise time decides
		}
	} else {
		now = nowNano()
	}
	if !e.fresh(now) || !c.valid(e) {
		return nil, 0
	}
	c.stats.l1Hits.add()
	if c.ev != nil {
		c.emitHit(ctx, key, TierL1)
	}
	if s := e.sliding(); s != nil && now >= s.at {
		c.extend(ctx, e, now)
	}
	return e, now
}

// extend is sliding expiration: a hit past the entry's extension point
// keeps it fresh for another window (never past its limit), in memory at
// once and in the distributed tier in the background (same timestamp: the
// write replaces the stored copy; not announced, since the value did not
// change). The write is the caller's background work: it keeps ctx's
// values (the caller's span, profiler labels), not its cancellation.
func (c *Cache) extend(ctx context.Context, e *entry, now int64) {
	s := e.sliding()
	x := e.clone()
	x.freshUntil = min(after(now, time.Duration(s.window)), s.max)
	x.l2Fresh = x.freshUntil
	x.physUntil = max(x.physUntil, x.freshUntil)
	x.setSlide(sliding{}) // at the limit: no more extensions
	if x.freshUntil < s.max {
		x.setSlide(newSliding(x.freshUntil, s.window, s.max))
	}
	c.l1.set(x)
	if c.l2 == nil {
		return
	}
	enc, err := c.encode(x)
	if err != nil {
		return
	}
	ctx = uncancelled(ctx)
	p := pending{op: opSet, key: x.key, ts: x.ts, val: enc, physUntil: x.physUntil, skipBP: true, ctx: ctx}
	c.goBackground(ctx, func() { c.writeL2(p, &c.entry) })
}

// droppedAnswer is what the callers still waiting on a load whose result
// DisableBackgroundCompletion drops get, as at their own timeout (timeouts
// activate fail-safe): the fallback, else the FailSafeDefaultValue, else
// ErrFactoryTimeout.
func droppedAnswer[T any](c *Cache, o *EntryOptions, key string, timeout time.Duration, fallback bool, stale *entry) (any, error) {
	if fallback {
		return stale.value, nil
	}
	if d, ok := failSafeDefaultAnswer[T](c, o); ok {
		return d, nil
	}
	return nil, fmt.Errorf("%w: key %q after %v", ErrFactoryTimeout, key, timeout)
}

// dropRefreshPoint keeps the entry of an eager refresh that changed
// nothing (it failed, or answered "not found" not to be cached) as it was,
// minus its eager refresh point, so that hits do not start the refresh
// again; unless memory holds another copy by now (a fail-safe throttle, a
// sliding extension, a newer write), which stays.
func (c *Cache) dropRefreshPoint(eager *entry) {
	x := eager.clone()
	x.noEager()
	c.l1.setIfHeld(x, eager)
}

// getOrSetSlow joins (or starts) the load of key and waits for it, for the
// caller's ctx, and for the factory timeouts (fallback or ErrFactoryTimeout;
// the load goes on and keeps the key).
func getOrSetSlow[T any](ctx context.Context, c *Cache, key string, f Factory[T], o *EntryOptions) (_ T, err error) {
	var zero T
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanGetOrSet, key)
		defer func() {
			// The factory's panic, re-raised here (result): the
			// operation failed, and the panic goes on.
			if p := recover(); p != nil {
				span.End(c.spanError(fmt.Errorf("%w: key %q", ErrFactoryPanic, key)))
				panic(p)
			}
			span.End(c.spanError(err))
		}()
	}
	if !o.SkipL1Read {
		c.miss(ctx, key, TierL1)
	}
	if c.inLoadOf(ctx, key) {
		// A factory asking for the key it is loading: the load would
		// wait for itself.
		return zero, loadCycle(key)
	}
	// The load is detached from this caller's cancellation but not from
	// its values (trace spans, request-scoped loggers).
	lctx := c.detachLoad(ctx, key)
	ran := false // read only after the result: singleflight orders it
	run := func() (any, error) {
		ran = true
		defer lctx.ended.Store(true)
		return load(lctx, c, key, f, o, nil)
	}
	if ctx.Done() == nil && o.FactorySoftTimeout == 0 && o.FactoryHardTimeout == 0 {
		// Nothing can make this caller stop waiting: the load needs no
		// goroutine of its own.
		r, ok := c.flightHere(key, run)
		if !ok {
			return zero, ErrClosed
		}
		if !ran && c.tr != nil {
			annotate(ctx, slog.Bool(AttrJoined, true))
		}
		return result[T](key, r, ran)
	}
	ch, ok := c.flight(lctx, key, run)
	if !ok {
		return zero, ErrClosed
	}
	w := newWaitTimers(o)
	defer w.stop()
	for {
		select {
		case r := <-ch:
			if !ran && c.tr != nil {
				annotate(ctx, slog.Bool(AttrJoined, true))
			}
			return result[T](key, r, ran)
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-w.soft:
			w.soft = nil
			if e := c.answeredMeanwhile(key, o); e != nil {
				return result[T](key, singleflight.Result{Val: e.value}, false)
			}
			if v, ok := fallbackFor[T](ctx, c, key, o); ok {
				c.factoryTimedOut(ctx, key, o, TimeoutSoft, true)
				c.timedOut(key, o)
				return v, nil
			}
		case <-w.hard:
			if e := c.answeredMeanwhile(key, o); e != nil {
				return result[T](key, singleflight.Result{Val: e.value}, false)
			}
			c.timedOut(key, o)
			v, ok := fallbackFor[T](ctx, c, key, o)
			c.factoryTimedOut(ctx, key, o, TimeoutHard, ok)
			if ok {
				return v, nil
			}
			if d, ok := failSafeDefaultAnswer[T](c, o); ok {
				if v, ok := valueAs[T](d); ok {
					return v, nil
				}
			}
			return zero, fmt.Errorf("%w: key %q after %v", ErrFactoryTimeout, key, o.FactoryHardTimeout)
		}
	}
}

// answeredMeanwhile is a caller's look at memory when a factory timer
// fires: a fresh, valid entry there means the load's factory has answered
// and its synchronous write to the distributed tier is what is still out
// (or another write stored a value meanwhile). The caller takes that entry
// as the load's result, not as a timeout: no ErrFactoryTimeout, no
// fail-safe activation. It returns nil when memory has no such entry (a
// fail-safe copy is not one), and with SkipL1Read.
func (c *Cache) answeredMeanwhile(key string, o *EntryOptions) *entry {
	if o.SkipL1Read {
		return nil
	}
	e := c.l1.get(key)
	// (A fail-safe copy that another caller's timeout made fresh for the
	// throttle has a renewed validity timestamp: that caller's timeout
	// goes on as one, through fallbackFor.)
	if e == nil || !e.fresh(nowNano()) || e.vts() != e.ts || !c.valid(e) {
		return nil
	}
	return e
}

// timedOut is called when a caller stops waiting for the factory at a
// timeout. With DisableBackgroundCompletion the load's factory is
// cancelled at that moment (its own deadline) and its result dropped; the
// key is released at once, so that the next caller starts afresh even if
// the factory ignores its cancellation.
func (c *Cache) timedOut(key string, o *EntryOptions) {
	if o.DisableBackgroundCompletion {
		c.sf.Forget(key)
	}
}

// factoryTimedOut counts and reports a caller that stopped waiting for
// the factory at a timeout; failSafe says whether a stale value answered.
func (c *Cache) factoryTimedOut(ctx context.Context, key string, o *EntryOptions, k TimeoutKind, failSafe bool) {
	c.stats.factoryTimeouts.Add(1)
	if c.tr != nil {
		annotate(ctx, slog.String(AttrTimeout, k.String()))
	}
	c.log.Warn("factory timeout", c.keyAttr(key), slog.String("timeout", k.String()),
		slog.Bool("fail_safe", failSafe), slog.Bool("background", !o.DisableBackgroundCompletion))
	if c.ev != nil {
		c.emitFactoryTimeout(ctx, key, k, failSafe, !o.DisableBackgroundCompletion)
	}
}

// TryGet returns the value of key if the cache holds a fresh one (or, with
// AllowStaleOnRead, a stale fail-safe one); ok is false on a miss. It never
// calls a factory.
//
// Errors: ErrInvalidKey, ErrInvalidOptions, ErrClosed, ErrTypeMismatch,
// ctx.Err().
func TryGet[T any](ctx context.Context, c *Cache, key string, opts ...Option) (v T, ok bool, err error) {
	if err := c.check(ctx, key); err != nil {
		return v, false, err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return v, false, err
	}
	if e, _ := c.hitL1(ctx, key, o); e != nil {
		if p, isT := e.value.(*T); isT {
			return *p, true, nil // see GetOrSet
		}
		return typedValue[T](key, e)
	}
	return tryGetSlow[T](ctx, c, key, o)
}

// tryGetSlow answers TryGet when the memory tier has no fresh value it can
// vouch for: the memory entry checked against the distributed tier's
// invalidation records, then the distributed tier, then a stale value if
// the options allow it.
func tryGetSlow[T any](ctx context.Context, c *Cache, key string, o *EntryOptions) (v T, ok bool, err error) {
	e, err := tryGetEntry[T](ctx, c, key, o)
	if e == nil || err != nil {
		return v, false, err
	}
	return typedValue[T](key, e)
}

// tryGetEntry is TryGet's slow path: the entry that answers (fresh, or
// stale with AllowStaleOnRead), or nil for a miss.
func tryGetEntry[T any](ctx context.Context, c *Cache, key string, o *EntryOptions) (_ *entry, err error) {
	if c.tr != nil && c.l2 != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanTryGet, key)
		defer func() { span.End(c.spanError(err)) }()
	}
	lctx, stale, e := c.memoryAgain(ctx, key, o, nil)
	if !o.SkipL1Read {
		if e != nil {
			c.hit(ctx, key, TierL1)
		} else {
			c.miss(ctx, key, TierL1)
		}
	}
	if e != nil {
		if c.tr != nil {
			annotate(ctx, slog.String(AttrTier, TierL1.String()), slog.Bool(AttrHit, true))
		}
		// The hit path could not tell without the distributed tier's
		// invalidation records; now it can.
		return e, nil
	}
	if c.l2 != nil && c.bp != nil {
		c.readers.add(key)
		defer c.readers.done(key)
	}
	if !o.AllowStaleOnRead && (c.l2 == nil || !c.unverifiedOnly(stale)) {
		// The stale copy cannot answer this read: the distributed tier gets
		// the hard timeout, not the soft one (which applies only when a
		// stale value could answer instead). A copy stale only for a
		// backplane gap can (readThroughL2).
		stale, lctx = nil, ctx
	}
	hit, stale := readThroughL2[T](lctx, c, key, o, stale, nil)
	if hit != nil {
		return hit, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.AllowStaleOnRead && stale != nil {
		c.stats.staleServed.Add(1)
		if c.tr != nil {
			annotate(ctx, slog.Bool(AttrHit, false), slog.Bool(AttrStale, true))
		}
		if c.ev != nil {
			c.emitStaleServed(ctx, key)
		}
		return stale, nil
	}
	if c.tr != nil {
		annotate(ctx, slog.Bool(AttrHit, false))
	}
	return nil, nil
}

// typedValue returns e's value as a T for TryGet: a cached "not found" is
// a miss, a value of another type ErrTypeMismatch.
func typedValue[T any](key string, e *entry) (v T, ok bool, err error) {
	v, ok = valueOf[T](e)
	if !ok {
		if e.value == notFoundValue {
			return v, false, nil
		}
		return v, false, mismatch[T](key, e.value)
	}
	return v, true, nil
}

// Set stores v under key in every tier, with the cache's entry options
// overridden by opts. When it returns nil, a read of key on this process
// sees v (unless capacity evicted it or a newer write replaced it).
//
// Errors: ErrInvalidKey, ErrInvalidOptions, ErrClosed, ctx.Err(); with a
// distributed tier also ErrValueTooLarge (the entry's envelope exceeds
// Options.MaxValueSize; nothing is stored, in any tier) and the
// serializer's error, wrapped with the key. A failed write to the
// distributed tier is not returned: it is logged (and, after a transient
// error, queued for auto-recovery).
func Set[T any](ctx context.Context, c *Cache, key string, v T, opts ...Option) (err error) {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanSet, key)
		defer func() { span.End(c.spanError(err)) }()
	}
	e := newEntry(key, v, stamp(), nowNano(), o, meta{})
	if err := makeAutoClone(e, v, o, c.ser); err != nil {
		return err
	}
	var enc []byte
	if c.l2 != nil && !o.SkipL2Write {
		if enc, err = c.encode(e); err != nil {
			return err
		}
	}
	c.store(ctx, e, o, enc)
	// A load of key already running started before this write: later
	// callers start their own (which finds this write in memory) instead
	// of joining it and getting an older value.
	c.release(key)
	return nil
}

// load is the shared load of key, the function that flight runs once for
// every caller of the key, in three steps: the memory tier again (another
// load may have finished meanwhile), the distributed tier, the factory. It
// returns the value (a *T) for the callers. With eager set it is an eager
// refresh of that entry: the memory tier is not re-read, the distributed
// tier only counts if it holds a newer entry, and the current value is the
// fallback of a failed factory.
func load[T any](ctx context.Context, c *Cache, key string, f Factory[T], o *EntryOptions, eager *entry) (any, error) {
	if c.bp != nil {
		c.readers.add(key) // see bpHandler.HandleMessage
		defer c.readers.done(key)
	}
	rctx := ctx
	if eager == nil {
		rctx = c.withFactoryShare(ctx, o)
	}
	lctx, stale, e := c.memoryAgain(rctx, key, o, eager)
	if e != nil {
		if c.tr != nil {
			annotate(ctx, slog.String(AttrTier, TierL1.String()), slog.Bool(AttrHit, true))
		}
		return e.value, nil
	}
	e, stale = readThroughL2[T](lctx, c, key, o, stale, eager)
	if e != nil {
		return e.value, nil
	}
	if c.locks(o) {
		var outcome lockOutcome
		var held *heldLock
		var err error
		outcome, e, stale, held, err = distributedLock[T](ctx, c, key, o, stale, eager)
		switch {
		case err != nil:
			return nil, err
		case outcome == lockAnswer:
			return e.value, nil
		case outcome == lockBusy:
			return eager.value, nil // another process refreshes it
		case outcome == lockHeld:
			// Released once the value is in the distributed tier: the
			// write is not left to the background.
			defer held.release()
			if o.BackgroundL2Operations {
				fg := *o
				fg.BackgroundL2Operations = false
				o = &fg
			}
		}
	}
	return runFactory(ctx, c, key, f, o, stale, eager)
}

// memoryAgain is the first step of a load (and of TryGet's slow path):
// the memory entry of key, checked with the distributed tier's invalidation
// records read if needed. It returns the entry if it is fresh and valid,
// else the usable stale value, the fail-safe fallback (for an eager
// refresh: the entry being refreshed).
//
// When e can serve as the fallback and o has an L2 soft timeout, the
// returned context carries an L2 budget of that timeout (withL2Budget):
// reading the invalidation records here and the entry in readThroughL2
// wait that long in all, not a hard timeout and then a soft one. The
// caller reads the distributed tier with it.
func (c *Cache) memoryAgain(ctx context.Context, key string, o *EntryOptions, eager *entry) (_ context.Context, stale, fresh *entry) {
	return c.memoryAgainBy(ctx, key, o, eager, 0)
}

// memoryAgainBy is memoryAgain with the end of the L2 budget given (unix
// ns; 0: o's L2 soft timeout from now): the keys of a batch share one
// budget, as a single key's records and entry do (l2Budget).
func (c *Cache) memoryAgainBy(ctx context.Context, key string, o *EntryOptions, eager *entry, end int64) (_ context.Context, stale, fresh *entry) {
	if eager != nil {
		return ctx, eager, nil
	}
	if o.SkipL1Read {
		return ctx, nil, nil
	}
	e := c.l1.get(key)
	if e == nil {
		return ctx, nil, nil
	}
	if o.L2SoftTimeout > 0 && c.l2 != nil {
		if now := nowNano(); e.usableStale(now) {
			if end == 0 {
				end = after(now, o.L2SoftTimeout)
			}
			ctx = withL2Budget(ctx, end)
		}
	}
	switch c.learnThenCheck(ctx, e, o, false) {
	case valid:
		if e.fresh(nowNano()) {
			return ctx, nil, e
		}
		stale = e
	case invalidStale:
		stale = e
	}
	if !stale.usableStale(nowNano()) {
		return ctx, nil, nil
	}
	return ctx, stale, nil
}

// readThroughL2 is the second step: the distributed tier's entry of key,
// merged with memory (mergeL2). It returns a fresh entry, already in
// memory, or nil and the newest usable stale value.
//
// If the tier could not answer and memory's stale entry is stale only
// because it dates from before a backplane gap (fresh and valid
// otherwise), that entry is the answer: whether it is still the newest
// cannot be known while the tier is away, and a cache without a backplane
// would serve it too, rather than reload every key it held. It stays
// unverified, so the next read asks the tier again. (A cache without a
// distributed tier cannot verify at all: its entries from before a gap are
// reloaded, as docs/backplane.md says.)
func readThroughL2[T any](ctx context.Context, c *Cache, key string, o *EntryOptions, stale, eager *entry) (fresh, _ *entry) {
	l2e, answered := readL2[T](ctx, c, key, o, stale != nil)
	if l2e != nil {
		if fresh, stale = c.mergeL2(ctx, key, o, l2e, stale, eager); fresh != nil {
			c.hit(ctx, key, TierL2)
			if c.tr != nil {
				annotate(ctx, slog.String(AttrTier, TierL2.String()), slog.Bool(AttrHit, true))
			}
			return fresh, stale
		}
	}
	if c.readsL2(o) {
		c.miss(ctx, key, TierL2)
	}
	if !answered && c.l2 != nil && eager == nil && c.unverifiedOnly(stale) {
		return stale, stale
	}
	return nil, stale
}

// unverifiedOnly reports whether e is fresh and valid but for the
// backplane gap rule (it dates from before a gap and was not verified
// since).
func (c *Cache) unverifiedOnly(e *entry) bool {
	if e == nil || !e.fresh(nowNano()) {
		return false
	}
	inv := c.inv.Load()
	return max(e.ts, e.verified) < inv.verifyBefore && c.checkEntry(e, inv, true) == valid
}

// mergeL2 decides what the entry l2e read from the distributed tier gives,
// newest wins: nothing if memory holds a newer change (a removal
// included); a removal record, which memory keeps and which drops an older
// fallback; a fresh, valid entry, which goes to memory and is the answer
// (during an eager refresh only if newer than the refreshed entry); or a
// usable stale one, which becomes the fallback if it is newer than stale
// and is put in memory too, so that a caller that times out waiting for the
// factory finds it there (fallbackFor).
func (c *Cache) mergeL2(ctx context.Context, key string, o *EntryOptions, l2e, stale, eager *entry) (fresh, _ *entry) {
	if cur := c.l1.get(key); cur != nil && l2e.ts < cur.ts {
		// A newer change reached memory during the read (a Set, a
		// message): it is the answer if it is a fresh value.
		if !cur.tombstone() && cur.fresh(nowNano()) && c.valid(cur) && (eager == nil || cur.ts > eager.ts) {
			return cur, stale
		}
		return nil, stale
	}
	if eager == nil && stale != nil && !l2e.newer(stale) && c.unverifiedOnly(stale) {
		// Memory's copy, stale only for a backplane gap, is still the
		// newest: it is verified and answers as it is. (L2 may hold it
		// expired while memory keeps it fresh: a fail-safe throttle,
		// which a gap must not end, or the source would be called again.)
		x := stale.clone()
		x.verified = nowNano()
		if !o.SkipL1Write {
			c.l1.set(x)
		}
		return x, stale
	}
	if l2e.tombstone() {
		return nil, c.removedInL2(l2e, stale, o)
	}
	v := c.learnThenCheck(ctx, l2e, o, true)
	now := nowNano()
	if v == valid && l2e.fresh(now) && (eager == nil || l2e.ts > eager.ts) {
		if !o.SkipL1Write {
			c.l1.set(l2e)
		}
		return l2e, stale
	}
	if v != invalidGone && eager == nil && l2e.usableStale(now) && l2e.newer(stale) {
		if !o.SkipL1Write && (stale == nil || stale.ts < l2e.ts) {
			c.l1.set(l2e)
		}
		stale = l2e
	}
	return nil, stale
}

// runFactory is the last step of a load: it calls the factory and stores
// its result, or answers with the fallback (fail-safe) or the error.
func runFactory[T any](ctx context.Context, c *Cache, key string, f Factory[T], o *EntryOptions, stale, eager *entry) (any, error) {
	fc := &FactoryContext[T]{key: key, opts: *o}
	if stale != nil {
		if v, ok := valueOf[T](stale); ok {
			fc.stale, fc.hasStale = v, true
			fc.staleETag, fc.staleLastMod = stale.etag(), stale.lastMod()
		} else {
			stale = nil
		}
	}
	// A value that may serve as a fallback: fail-safe on and a stale value.
	fallback := o.FailSafe && stale != nil
	timeout := factoryTimeout(o, fallback)

	// ctx is detached (see detach): Close cancels the factory.
	fctx := ctx
	if o.DisableBackgroundCompletion && timeout > 0 {
		// The callers stop waiting at the timeout; so does the factory.
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	var fspan Span
	if c.tr != nil {
		annotate(ctx, slog.Bool(AttrHit, false))
		fctx, fspan = c.startChild(fctx, SpanFactory, key)
	}
	began := nowNano()
	start := stamp()
	v, err, panicked, pv := callFactory(fctx, f, fc)
	now := nowNano()
	ferr := err
	if panicked {
		ferr = ErrFactoryPanic
	}
	c.stats.factoryCalls.Add(1)
	if ferr != nil {
		c.stats.factoryErrors.Add(1)
	}
	if fspan != nil {
		fspan.SetAttributes(slog.Bool(AttrEager, eager != nil),
			slog.Bool(AttrBackground, timeout > 0 && now-began >= int64(timeout)))
		fspan.End(ferr)
	}
	if c.ev != nil {
		c.emitFactoryCall(ctx, key, time.Duration(now-began), ferr, eager != nil)
	}
	if panicked {
		c.log.Error("factory panicked", c.keyAttr(key), c.panicAttr(key, pv))
		if eager != nil {
			c.dropRefreshPoint(eager) // a panic is a failure: not retried on every hit
		}
		return nil, &panicError{pv}
	}
	// Whether the callers stopped waiting at a timeout: the result is
	// then a background completion nobody waits for.
	late := timeout > 0 && now-began >= int64(timeout)
	if o.DisableBackgroundCompletion && late {
		// The callers that stopped waiting got the fallback or the
		// timeout; the result is dropped. Callers still waiting (they
		// joined later: their timers have not fired yet) answer as they
		// would have at their timeout.
		return droppedAnswer[T](c, o, key, timeout, fallback, stale)
	}
	if err == nil {
		err = fc.opts.Validate()
	}
	if err != nil {
		if eager != nil {
			c.dropRefreshPoint(eager)
			c.log.Warn("eager refresh failed", c.keyAttr(key), c.errAttr(key, err))
			if eager.fresh(now) {
				return eager.value, nil // nobody waits: hits still have the entry
			}
			// The entry expired while the refresh ran, and callers that
			// came since wait for it: they answer as for any failed load
			// (the fallback if fail-safe allows it, else the error).
		}
		if !late && stale != nil && !stale.usableStale(now) {
			// Its fail-safe life (FailSafeMaxDuration) ended while the
			// factory ran: no fallback any more, as if there had been none.
			fallback, stale = false, nil
		}
		switch {
		case fallback && o.failSafeFor(err) && !late:
			c.serveStale(ctx, key, stale, o, FailSafeFactoryError, err)
			return stale.value, nil
		}
		if late {
			c.log.Warn("background factory failed", c.keyAttr(key), c.errAttr(key, err))
			if fallback && o.failSafeFor(err) {
				// The callers had the stale value at the timeout, which
				// counted the fail-safe activation and started the throttle.
				return stale.value, nil
			}
		}
		if d, ok := failSafeDefaultAnswer[T](c, o); ok && stale == nil && o.failSafeFor(err) {
			return d, nil
		}
		return nil, fmt.Errorf("hybrid: factory %q: %w", key, err)
	}
	eo := fc.opts.withDefaults()
	if fc.notFound {
		if eo.NotFoundDuration <= 0 {
			if eager != nil {
				c.dropRefreshPoint(eager) // not cached: the entry stays, not refreshed on every hit
			}
			return notFoundValue, nil // answered, not cached
		}
		e := newNotFound[T](key, start, now, &eo)
		var enc []byte
		if c.l2 != nil && !eo.SkipL2Write {
			enc, _ = c.encode(e) // a record without a value cannot be too large
		}
		c.store(ctx, e, &eo, enc)
		return e.value, nil
	}
	if fc.notModified {
		v = fc.stale
	}
	e := newEntry(key, v, start, now, &eo, fc.meta())
	if err := makeAutoClone(e, v, &eo, c.ser); err != nil {
		return nil, err
	}
	var enc []byte
	if c.l2 != nil && !eo.SkipL2Write {
		var err error
		if enc, err = c.encode(e); err != nil {
			c.keptInMemoryOnly(ctx, key, err)
		}
	}
	c.storeAs(ctx, e, &eo, enc, stale == nil && eager == nil)
	return e.value, nil
}

// callFactory runs f, turning a panic into a value. The error is not the
// last result (staticcheck ST1008) on purpose: it is f's error, returned
// beside whether f panicked, not an error of callFactory.
//
//lint:ignore ST1008 f's error, beside the panic it may have raised instead
func callFactory[T any](ctx context.Context, f Factory[T], fc *FactoryContext[T]) (v T, err error, panicked bool, pv any) {
	defer func() {
		if r := recover(); r != nil {
			panicked, pv = true, r
		}
	}()
	v, err = f(ctx, fc)
	return v, err, false, nil
}

// keptInMemoryOnly logs a factory result that could not be encoded for the
// distributed tier: a serialization error at Error (as FusionCache), a
// value too large as a warning; the same for GetOrSet and GetOrSetMany.
func (c *Cache) keptInMemoryOnly(ctx context.Context, key string, err error) {
	level := slog.LevelError
	if errors.Is(err, ErrValueTooLarge) {
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "factory result kept in memory only", c.keyAttr(key), c.errAttr(key, err))
}

// startEagerRefresh starts one background refresh of e, unless a load of
// the key is already running (then it joins nothing and returns). Like a
// leader load, the refresh keeps the values of the caller's ctx (trace
// spans, request-scoped loggers) but not its cancellation.
func startEagerRefresh[T any](ctx context.Context, c *Cache, key string, e *entry, f Factory[T], o *EntryOptions) {
	d := c.detachLoad(ctx, key)
	lctx := context.Context(d)
	c.flight(lctx, key, func() (v any, err error) {
		defer d.ended.Store(true)
		c.stats.eagerRefreshes.Add(1)
		if c.ev != nil {
			c.emitEagerRefresh(ctx, key)
		}
		if c.tr != nil {
			// Nobody waits for it: a trace of its own, linked to the hit.
			var span Span
			lctx, span = c.startSpan(lctx, SpanEagerRefresh, key, true)
			lctx = context.WithValue(lctx, opSpanKey{}, span)
			defer func() { span.End(c.spanError(err)) }()
		}
		return load(lctx, c, key, f, o, e)
	})
}

// mismatch reports that key holds got (a *X, or nil) and was read as T;
// for a cached "not found" it is ErrNotFound.
func mismatch[T any](key string, got any) error {
	if got == notFoundValue {
		return fmt.Errorf("%w: key %q", ErrNotFound, key)
	}
	held := strings.TrimPrefix(fmt.Sprintf("%T", got), "*")
	if ac, ok := got.(*autoClone); ok {
		held = ac.typ
	}
	if lv, ok := got.(*lazyValue); ok {
		held = lv.typ
	}
	if p, ok := got.(*any); ok && *p != nil {
		held = fmt.Sprintf("%s (holding a %T)", held, *p) // stored as Set[any]
	}
	if held == typeName[T]() { // an auto-clone or lazily decoded T that did not decode
		return fmt.Errorf("%w: key %q holds a %s that the serializer cannot decode", ErrTypeMismatch, key, held)
	}
	return fmt.Errorf("%w: key %q holds %s, read as %T", ErrTypeMismatch, key, held, *new(T))
}

// removedInL2 applies a removal record t read from the distributed tier:
// memory keeps it (unless it holds a newer change), so that an older write
// racing the removal cannot be stored there either, and a fallback older
// than the removal is dropped. It returns the fallback that remains.
func (c *Cache) removedInL2(t, stale *entry, o *EntryOptions) *entry {
	if !o.SkipL1Write {
		c.l1.set(t) // newest wins: refused if memory holds a newer change
	}
	if stale != nil && stale.ts < t.ts {
		return nil
	}
	return stale
}
