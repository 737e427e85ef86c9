package hybrid

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// GetOrSet returns the value of key: from the memory tier on a fresh hit,
// otherwise from one shared load per key (the memory tier again, then the
// factory), whose result is stored before it is returned.
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
// ctx.Err(), or the factory's error.
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
	if !o.SkipL1Read {
		if e := c.l1.get(key); e != nil {
			now := nowNano()
			if e.fresh(now) && c.valid(e) {
				if c.ev != nil {
					c.emitHit(key, TierL1)
				}
				v, ok := valueOf[T](e)
				if !ok {
					return zero, mismatch[T](key, e.value)
				}
				if e.eagerAt != 0 && now >= e.eagerAt {
					startEagerRefresh(ctx, c, key, e, f, o)
				}
				return v, nil
			}
		}
	}
	return getOrSetSlow(ctx, c, key, f, o)
}

func getOrSetSlow[T any](ctx context.Context, c *Cache, key string, f Factory[T], o *EntryOptions) (T, error) {
	var zero T
	if c.ev != nil && !o.SkipL1Read {
		c.emitMiss(key, TierL1)
	}
	cl, leader := c.flights.join(key)
	if leader {
		// The load is detached from this caller's cancellation but not from
		// its values (trace spans, request-scoped loggers).
		lctx := context.WithoutCancel(ctx)
		if !c.goBackground(func() { load(lctx, c, cl, key, f, o, nil) }) {
			cl.deliver(nil, ErrClosed) // for callers that joined meanwhile
			c.flights.release(key, cl)
			return zero, ErrClosed
		}
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	if cl.panicked {
		if leader {
			panic(cl.panicVal)
		}
		return zero, fmt.Errorf("%w: key %q", ErrFactoryPanic, key)
	}
	if cl.err != nil {
		return zero, cl.err
	}
	p, ok := cl.val.(*T)
	if !ok {
		return zero, mismatch[T](key, cl.val)
	}
	return *p, nil
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
	var e *entry
	if !o.SkipL1Read {
		e = c.l1.get(key)
		if e != nil && e.fresh(nowNano()) && c.valid(e) {
			return tryGetHit[T](c, key, e)
		}
	}
	return tryGetSlow[T](ctx, c, key, o, e)
}

// tryGetHit answers TryGet with the fresh, valid memory entry e.
func tryGetHit[T any](c *Cache, key string, e *entry) (v T, ok bool, err error) {
	if c.ev != nil {
		c.emitHit(key, TierL1)
	}
	v, ok = valueOf[T](e)
	if !ok {
		return v, false, mismatch[T](key, e.value)
	}
	return v, true, nil
}

// tryGetSlow answers TryGet when the memory tier has no fresh value: the
// distributed tier, then a stale value if the options allow it.
func tryGetSlow[T any](ctx context.Context, c *Cache, key string, o *EntryOptions, e *entry) (v T, ok bool, err error) {
	if c.ev != nil && !o.SkipL1Read {
		c.emitMiss(key, TierL1)
	}
	now := nowNano()
	var stale *entry
	if e != nil && (e.fresh(now) || e.usableStale(now)) {
		switch c.learnThenCheck(ctx, e, o, false) {
		case valid:
			if e.fresh(now) {
				// The hit path could not tell without the distributed
				// tier's invalidation records; now it can.
				return tryGetHit[T](c, key, e)
			}
			stale = e
		case invalidStale:
			if e.usableStale(now) {
				stale = e
			}
		}
	}
	if c.l2 != nil && c.bp != nil {
		c.readers.add(key)
		defer c.readers.done(key)
	}
	l2e := readL2[T](ctx, c, key, o, stale != nil && o.AllowStaleOnRead)
	if l2e != nil {
		if cur := c.l1.get(key); cur != nil && cur.ts > l2e.ts {
			l2e = nil // a newer change (or a removal) arrived meanwhile
		}
	}
	if l2e != nil && l2e.tombstone {
		stale = c.removedInL2(l2e, stale, o)
		l2e = nil
	}
	if l2e != nil {
		now = nowNano()
		switch c.learnThenCheck(ctx, l2e, o, true) {
		case valid:
			if l2e.fresh(now) {
				if !o.SkipL1Write {
					c.l1.set(l2e, o.Size)
				}
				if c.ev != nil {
					c.emitHit(key, TierL2)
				}
				v, _ := valueOf[T](l2e)
				return v, true, nil
			}
			if l2e.usableStale(now) && l2e.newer(stale) {
				stale = l2e
			}
		case invalidStale:
			if l2e.usableStale(now) && l2e.newer(stale) {
				stale = l2e
			}
		}
	}
	if c.ev != nil && c.readsL2(o) {
		c.emitMiss(key, TierL2)
	}
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	if o.AllowStaleOnRead && stale != nil {
		v, ok := valueOf[T](stale)
		if !ok {
			return v, false, mismatch[T](key, stale.value)
		}
		return v, true, nil
	}
	return v, false, nil
}

// Set stores v under key in every tier, with the cache's entry options
// overridden by opts. When it returns nil, a read of key on this process
// sees v (unless capacity evicted it or a newer write replaced it).
//
// Errors: ErrInvalidKey, ErrInvalidOptions, ErrClosed, ctx.Err().
func Set[T any](ctx context.Context, c *Cache, key string, v T, opts ...Option) error {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	e := newEntry(key, v, stamp(), nowNano(), o, meta{})
	var enc []byte
	if c.l2 != nil && !o.SkipL2Write {
		if enc, err = c.encode(e); err != nil {
			return err
		}
	}
	c.store(e, o, enc)
	return nil
}

// store writes e to the memory tier and, with its envelope enc, to the
// distributed tier, as o allows.
func (c *Cache) store(e *entry, o *EntryOptions, enc []byte) {
	if !o.SkipL1Write {
		c.l1.set(e, o.Size)
	}
	if enc != nil {
		c.propagate(pending{op: opSet, key: e.key, ts: e.ts, val: enc, physUntil: e.physUntil}, o)
	}
}

// propagate sends a change to the distributed tier, in the background
// when o.BackgroundL2Operations is set.
//
// The backplane hears of the change once the distributed tier has it (or
// at once, without one), unless o.SkipBackplane is set.
func (c *Cache) propagate(p pending, o *EntryOptions) {
	p.skipBP = o.SkipBackplane || c.bp == nil
	if c.l2 == nil || o.SkipL2Write {
		if p.skipBP {
			return
		}
		if o.BackgroundL2Operations && c.goBackground(func() { c.publish(p) }) {
			return
		}
		c.publish(p)
		return
	}
	if o.BackgroundL2Operations && c.goBackground(func() { c.writeL2(p, o) }) {
		return
	}
	c.writeL2(p, o)
}

// load is the shared load of key, run on a background goroutine for the
// callers waiting on cl. With eager set it is an eager refresh of that
// entry: the memory tier is not re-read, L2 only counts if it holds a newer
// entry, and the current value is the fallback of the factory timeouts.
func load[T any](ctx context.Context, c *Cache, cl *call, key string, f Factory[T], o *EntryOptions, eager *entry) {
	defer c.flights.release(key, cl)
	now := nowNano()

	// The newest stale value, the fallback for fail-safe.
	var stale *entry
	if eager != nil {
		stale = eager
	} else if !o.SkipL1Read {
		if e := c.l1.get(key); e != nil {
			switch c.learnThenCheck(ctx, e, o, false) {
			case valid:
				if e.fresh(now) {
					c.flights.release(key, cl) // a finished load: new callers start afresh
					cl.deliver(e.value, nil)
					return
				}
				stale = e
			case invalidStale:
				stale = e
			}
		}
	}
	if !stale.usableStale(now) {
		stale = nil
	}
	if l2e := readL2[T](ctx, c, key, o, stale != nil); l2e != nil {
		now = nowNano()
		cur := c.l1.get(key)
		switch {
		case cur != nil && l2e.ts < cur.ts:
			// Memory holds a newer change (a removal included).
		case l2e.tombstone:
			stale = c.removedInL2(l2e, stale, o)
		default:
			switch c.learnThenCheck(ctx, l2e, o, true) {
			case valid:
				if l2e.fresh(now) && (eager == nil || l2e.ts > eager.ts) {
					if !o.SkipL1Write {
						c.l1.set(l2e, o.Size)
					}
					if c.ev != nil {
						c.emitHit(key, TierL2)
					}
					c.flights.release(key, cl) // a finished load: new callers start afresh
					cl.deliver(l2e.value, nil)
					return
				}
				if eager == nil && l2e.usableStale(now) && l2e.newer(stale) {
					stale = l2e
				}
			case invalidStale:
				if eager == nil && l2e.usableStale(now) && l2e.newer(stale) {
					stale = l2e
				}
			}
		}
	}
	if c.ev != nil && c.readsL2(o) {
		c.emitMiss(key, TierL2)
	}

	fc := &FactoryContext[T]{key: key, opts: *o}
	if stale != nil {
		if v, ok := valueOf[T](stale); ok {
			fc.stale, fc.hasStale = v, true
			fc.staleETag, fc.staleLastMod = stale.etag, stale.lastMod
		} else {
			stale = nil
		}
	}
	// A value that may serve as a fallback: fail-safe on and a stale value.
	fallback := o.FailSafe && stale != nil

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // Close cancels the factory
	defer stop()

	timedOut := make(chan struct{})
	{
		timeout := o.FactoryHardTimeout
		if fallback && o.FactorySoftTimeout > 0 && (timeout == 0 || o.FactorySoftTimeout < timeout) {
			timeout = o.FactorySoftTimeout
		}
		if timeout > 0 {
			t := time.AfterFunc(timeout, func() {
				defer close(timedOut)
				if fallback {
					c.serveFallback(cl, key, stale, o, FailSafeFactoryTimeout, false)
				} else {
					cl.deliver(nil, fmt.Errorf("%w: key %q after %v", ErrFactoryTimeout, key, timeout))
				}
				if o.DisableBackgroundCompletion {
					cancel()
					c.flights.release(key, cl)
				}
			})
			defer t.Stop()
		}
	}

	var began int64 // for the FactoryCall event
	if c.ev != nil {
		began = nowNano()
	}
	start := stamp()
	v, err, panicked, pv := callFactory(fctx, f, fc)
	now = nowNano()
	if c.ev != nil {
		ferr := err
		if panicked {
			ferr = ErrFactoryPanic
		}
		c.emitFactoryCall(key, time.Duration(now-began), ferr, eager != nil)
	}
	if panicked {
		c.log.Error("factory panicked", c.keyAttr(key), slog.Any("panic", pv))
		c.flights.release(key, cl) // a finished load: new callers start afresh
		cl.deliverPanic(pv)
		return
	}
	if o.DisableBackgroundCompletion && isClosed(timedOut) {
		return // the caller got the fallback or the timeout; drop the result
	}
	if err == nil {
		err = fc.opts.Validate()
	}
	if err != nil {
		switch {
		case eager != nil:
			// Do not retry on every hit: the entry stays as it was, minus
			// its eager refresh point.
			x := eager.clone()
			x.eagerAt = 0
			c.l1.set(x, o.Size)
			c.flights.release(key, cl) // a finished load: new callers start afresh
			cl.deliver(eager.value, nil)
			c.log.Warn("eager refresh failed", c.keyAttr(key), slog.Any("err", err))
		case fallback:
			c.serveFallback(cl, key, stale, o, FailSafeFactoryError, true)
		default:
			c.flights.release(key, cl) // a finished load: new callers start afresh
			if !cl.deliver(nil, fmt.Errorf("hybrid: factory %q: %w", key, err)) {
				c.log.Warn("background factory failed", c.keyAttr(key), slog.Any("err", err))
			}
		}
		return
	}
	if fc.notModified {
		v = fc.stale
	}
	eo := fc.opts.withDefaults()
	e := newEntry(key, v, start, now, &eo, fc.meta())
	var enc []byte
	if c.l2 != nil && !eo.SkipL2Write {
		var err error
		if enc, err = c.encode(e); err != nil {
			c.log.Warn("factory result kept in memory only", c.keyAttr(key), slog.Any("err", err))
		}
	}
	c.store(e, &eo, enc)
	c.flights.release(key, cl) // a finished load: new callers start afresh
	cl.deliver(e.value, nil)
}

// serveFallback delivers the stale value of a failed or timed-out load and
// keeps it in the memory tier as fresh for the throttle duration, so that
// a failing source is not called again at once. Nothing goes to the
// distributed tier or the backplane.
//
// The copy passes invalidations made before now (Clear, RemoveByTag) for
// the throttle's length, or the throttle would not hold after them. A value
// that is still fresh (an eager refresh that timed out) is served as it is.
//
// With release, the load is over: the key is released once the throttled
// copy is stored, so that no caller in between calls the source again.
func (c *Cache) serveFallback(cl *call, key string, stale *entry, o *EntryOptions, why FailSafeReason, release bool) {
	now := nowNano()
	if stale.fresh(now) && c.valid(stale) {
		if release {
			c.flights.release(key, cl)
		}
		cl.deliver(stale.value, nil)
		return
	}
	x := stale.clone()
	x.vts = stamp()
	x.freshUntil = now + int64(o.FailSafeThrottleDuration)
	x.physUntil = max(x.physUntil, x.freshUntil)
	x.eagerAt = 0
	c.l1.set(x, o.Size)
	if release {
		c.flights.release(key, cl)
	}
	if cl.deliver(stale.value, nil) {
		c.log.Warn("fail-safe activated", c.keyAttr(key), slog.String("reason", why.logText()))
		if c.ev != nil {
			c.emitFailSafe(key, why)
		}
	}
}

// callFactory runs f, turning a panic into a value.
func callFactory[T any](ctx context.Context, f Factory[T], fc *FactoryContext[T]) (v T, err error, panicked bool, pv any) {
	defer func() {
		if r := recover(); r != nil {
			panicked, pv = true, r
		}
	}()
	v, err = f(ctx, fc)
	return v, err, false, nil
}

// startEagerRefresh starts one background refresh of e, unless a load of
// the key is already running. Like a leader load, the refresh keeps the
// values of the caller's ctx (trace spans, request-scoped loggers) but not
// its cancellation.
func startEagerRefresh[T any](ctx context.Context, c *Cache, key string, e *entry, f Factory[T], o *EntryOptions) {
	cl, leader := c.flights.join(key)
	if !leader {
		return
	}
	lctx := context.WithoutCancel(ctx)
	if !c.goBackground(func() { load(lctx, c, cl, key, f, o, e) }) {
		cl.deliver(nil, ErrClosed)
		c.flights.release(key, cl)
		return
	}
	if c.ev != nil {
		c.emitEagerRefresh(key)
	}
}

// mismatch reports that key holds got (a *X, or nil) and was read as T.
func mismatch[T any](key string, got any) error {
	held := strings.TrimPrefix(fmt.Sprintf("%T", got), "*")
	return fmt.Errorf("%w: key %q holds %s, read as %T", ErrTypeMismatch, key, held, *new(T))
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// removedInL2 applies a removal record t read from the distributed tier:
// memory keeps it (unless it holds a newer change), so that an older write
// racing the removal cannot be stored there either, and a fallback older
// than the removal is dropped. It returns the fallback that remains.
func (c *Cache) removedInL2(t, stale *entry, o *EntryOptions) *entry {
	if !o.SkipL1Write {
		c.l1.set(t, 1) // newest wins: refused if memory holds a newer change
	}
	if stale != nil && stale.ts < t.ts {
		return nil
	}
	return stale
}
