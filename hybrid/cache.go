package hybrid

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/serializer"
)

// Cache is a named hybrid cache. It is safe for concurrent use. Read and
// write values with the generic functions GetOrSet, TryGet and Set.
type Cache struct {
	name       string
	entry      EntryOptions // defaults applied
	l1         *l1
	ev         *Events            // nil: no callbacks; next to l1, which every hit loads
	clock      *hitClock          // nil: the hit path reads the clock (PreciseHitClock)
	sf         singleflight.Group // loads of keys: see flight
	claims     claims             // which loads hold which keys, for batches: see claimFlight
	tagSF      singleflight.Group // loads of tag and clear records from the distributed tier
	tagTTL     time.Duration
	clearKnown atomic.Bool // the distributed tier's Clear state was read
	// recordsRetryAt (unix ns): a read of an invalidation record failed or
	// timed out; until then learn does not ask the tier again (see learn).
	recordsRetryAt atomic.Int64
	readers        readers
	log            *slog.Logger
	redactKeys     bool
	maxKey         int

	l2              L2
	locker          Locker      // l2 as a Locker; nil when it is not one
	noLockerWarned  atomic.Bool // DistributedLock asked of an L2 without a lock: logged
	prefix          string
	ser             serializer.Serializer
	comp            serializer.Compressor // nil: none
	compMin         int
	maxValue        int
	breaker         breaker
	recovery        recovery
	writing         ownWrites // background writes in flight (see ownWritePending)
	configErrLog    rateLimit
	transientErrLog rateLimit
	stats           stats
	bp              backplane.Backplane
	l2Feeds         bool // l2 announces its writes on bp (FeedL2)
	bpValueMax      int  // the largest envelope a Set message carries; 0: none
	id              string

	inv        atomic.Pointer[invalidations]
	invMu      sync.Mutex
	tagsPruned int64 // unix ns of the last pruneTags; guarded by invMu

	hookPanic  atomic.Bool // an event callback panicked (logged once)
	subscribed atomic.Bool // the backplane subscription was confirmed
	tr         Tracer      // nil: no spans
	traceKeys  bool        // keys as span attributes (never with redactKeys)

	co *l2Coalescers // the distributed tier's calls, when it can coalesce them

	bgWork    chan bgJob   // to an idle background worker (unbuffered)
	bgWorkers atomic.Int32 // background workers running
	closed    atomic.Bool
	mu        sync.RWMutex // guards starting background work against Close
	wg        sync.WaitGroup
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New creates a cache from o. It returns an error that names the field at
// fault when o is invalid.
func New(o Options) (*Cache, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w (cache %q)", err, o.Name)
	}
	o = o.withDefaults()
	mem, err := newL1(o.L1MaxEntries)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		name:       o.Name,
		entry:      o.Entry.withDefaults(),
		l1:         mem,
		ev:         newEvents(o.Events),
		log:        o.Logger.With("cache", o.Name),
		redactKeys: o.RedactKeys,
		maxKey:     o.MaxKeyLength,
		l2:         o.L2,
		prefix:     o.KeyPrefix,
		ser:        o.Serializer,
		comp:       o.Compressor,
		compMin:    o.CompressMinSize,
		maxValue:   o.MaxValueSize,
		tr:         o.Tracer,
		traceKeys:  o.TraceKeys && !o.RedactKeys,
	}
	c.locker, _ = o.L2.(Locker)
	if !o.DisableBackplaneValues {
		c.bpValueMax = o.BackplaneValueMaxSize
	}
	c.bp, c.id = o.Backplane, o.InstanceID
	c.l2Feeds = feeds(o.L2, o.Backplane)
	if c.id == "" {
		c.id = newInstanceID()
	}
	c.tagTTL = tagTTL(&c.entry)
	c.breaker.d = o.L2CircuitBreakerDuration
	if c.breaker.d > 0 {
		c.breaker.changed = c.breakerChanged
	}
	c.recovery.max = o.AutoRecoveryMaxItems
	c.entry.Tags = append([]string(nil), o.Entry.Tags...)
	c.inv.Store(&invalidations{})
	c.bgWork = make(chan bgJob)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if l2, ok := o.L2.(coalescingL2); ok && !o.DisableL2Coalescing {
		c.co = newL2Coalescers(c, l2)
	}
	if !o.PreciseHitClock {
		c.clock = newHitClock(cmp.Or(o.HitClockResolution, DefaultHitClockResolution), c.stats.l1Hits.load)
		done := c.ctx.Done()
		c.wg.Go(func() { c.clock.run(done) })
	}
	if err := c.subscribe(o.WaitForInitialBackplaneSubscribe); err != nil {
		c.cancel()
		c.wg.Wait()
		mem.close()
		return nil, fmt.Errorf("hybrid: cache %q: subscribe: %w", o.Name, err)
	}
	return c, nil
}

// Name returns the name of the cache.
func (c *Cache) Name() string { return c.name }

// Close stops the cache's background work (refreshes, timed-out factories,
// whose contexts it cancels), waits for it, and releases the memory tier.
// Every later operation returns ErrClosed (a batch call with no keys
// returns its empty result). Close is idempotent and returns nil.
//
// WARNING: Close waits for the running loads: called from a factory (or
// from an event callback that a load runs) it waits for itself.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		if c.bp != nil {
			c.bp.Close()
		}
		c.l1.close()
	})
	return nil
}

// goBackground runs f on a goroutine that Close waits for, with the
// profiler labels of ctx (runtime/pprof.Do on the caller; none for
// context.Background), so
// that work done on a caller's behalf counts as the caller's in a labelled
// profile. It reports false, without running f, once the cache is closed.
//
// An idle background worker takes f if there is one; else a new worker
// starts (up to maxBackgroundWorkers, then a plain goroutine). A worker
// waits backgroundIdle for more work before it ends, so that a stream of
// background writes reuses a few goroutines and their grown stacks
// instead of starting (and growing) one per write.
func (c *Cache) goBackground(ctx context.Context, f func()) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return false
	}
	j := bgJob{ctx, f}
	select {
	case c.bgWork <- j:
		return true
	default:
	}
	if c.bgWorkers.Add(1) > maxBackgroundWorkers {
		c.bgWorkers.Add(-1)
		c.wg.Go(j.run)
		return true
	}
	c.wg.Go(func() { c.backgroundWorker(j) })
	return true
}

// bgJob is one piece of background work and the context whose profiler
// labels it runs with.
type bgJob struct {
	ctx context.Context
	f   func()
}

// run runs f with the labels of ctx, and drops them after.
func (j bgJob) run() {
	if j.ctx != nil {
		pprof.SetGoroutineLabels(j.ctx)
		defer pprof.SetGoroutineLabels(context.Background())
	}
	j.f()
}

// The background workers: how many at most, and how long one waits idle.
const (
	maxBackgroundWorkers = 64
	backgroundIdle       = time.Second
)

// backgroundWorker runs j, then what goBackground hands it, until it has
// been idle for backgroundIdle or the cache closes.
func (c *Cache) backgroundWorker(j bgJob) {
	defer c.bgWorkers.Add(-1)
	pprof.SetGoroutineLabels(context.Background()) // not its starter's: each job brings its own
	idle := time.NewTimer(backgroundIdle)
	defer idle.Stop()
	for {
		j.run()
		idle.Reset(backgroundIdle)
		select {
		case j = <-c.bgWork:
		case <-idle.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// check validates what every operation receives.
func (c *Cache) check(ctx context.Context, key string) error {
	if len(key) == 0 || len(key) > c.maxKey || isReserved(key) {
		return c.ValidateKey(key)
	}
	return c.usable(ctx)
}

// usable returns ErrClosed once c is closed, else ctx.Err(): what check
// returns for a valid key.
func (c *Cache) usable(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// ValidateKey returns the error every operation of c returns for key, an
// ErrInvalidKey (empty, longer than Options.MaxKeyLength, or with the
// reserved prefix), or nil: a caller that fans a request out (a batch
// over its own source, an HTTP server) can refuse it whole before it does
// anything. It does not look at whether c is closed.
func (c *Cache) ValidateKey(key string) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > c.maxKey:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidKey, len(key), c.maxKey)
	case isReserved(key):
		return fmt.Errorf("%w: the prefix %q is reserved", ErrInvalidKey, reservedPrefix)
	}
	return nil
}

// keyAttr is the log attribute of a key, redacted if so configured.
func (c *Cache) keyAttr(key string) slog.Attr {
	if c.redactKeys {
		return slog.String("key", "[redacted]")
	}
	return slog.String("key", key)
}

// errAttr is the log attribute of err, an error about key. With RedactKeys
// the key is taken out of its text too: errors name keys quoted (the
// cache's, "%q", and the distributed tier's, with the prefix), and such an
// error would carry the key into the log that keyAttr keeps it out of.
func (c *Cache) errAttr(key string, err error) slog.Attr {
	if !c.redactKeys || err == nil || key == "" {
		return slog.Any("err", err)
	}
	return slog.String("err", c.redacted(key, err))
}

// panicAttr is the attribute of a factory's panic value pv for a log line
// about key: with RedactKeys, its text with the key taken out, as for
// errors (errAttr, redactedText).
func (c *Cache) panicAttr(key string, pv any) slog.Attr {
	if !c.redactKeys || key == "" {
		return slog.Any("panic", pv)
	}
	return slog.String("panic", c.redactedText(key, fmt.Sprint(pv)))
}

// redacted is the text of err, an error about key, with the key taken out
// (with the distributed tier's prefix or without; see redactedText).
func (c *Cache) redacted(key string, err error) string { return c.redactedText(key, err.Error()) }

// redactedText is msg with key taken out wherever it is quoted, and, for
// a key of redactRawMin bytes or more, wherever it stands unquoted too: a
// factory's own error or panic names its key as it likes ("no row for
// user:7"). A shorter key is taken out only where quoted: its bytes would
// stand for the key in every word that holds them.
func (c *Cache) redactedText(key, msg string) string {
	for _, k := range [...]string{c.prefix + key, key} {
		msg = strings.ReplaceAll(msg, strconv.Quote(k), `"[redacted]"`)
	}
	if len(key) >= redactRawMin {
		msg = strings.ReplaceAll(msg, c.prefix+key, "[redacted]")
		msg = strings.ReplaceAll(msg, key, "[redacted]")
	}
	return msg
}

// redactRawMin is the length from which RedactKeys takes a key out of a
// logged text also where it is not quoted.
const redactRawMin = 4

// Remove deletes key from the cache. A read that raced the removal cannot
// put the old value back. SkipL1Write leaves the memory tier as it is
// (the removal goes to the distributed tier and the other nodes only);
// SkipL2Write and SkipBackplane keep it from those.
func (c *Cache) Remove(ctx context.Context, key string, opts ...Option) (err error) {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanRemove, key)
		defer func() { span.End(c.spanError(err)) }()
	}
	now := stamp()
	if !o.SkipL1Write {
		c.l1.set(newTombstone(key, now))
	}
	c.release(key)
	c.propagate(pending{op: opRemove, key: key, ts: now, ctx: ctx}, o)
	return nil
}

// Expire marks key as expired: reads miss it, but an entry written with
// FailSafe remains a fail-safe fallback until its physical expiry, in
// memory and in the distributed tier (one written without it is replaced
// by a removal marker, and by a removal record there: no fallback). How the
// entry was written decides when this node holds it; for a key it does not
// hold, the call's FailSafe does: on, the distributed copy is kept stale
// for FailSafeMaxDuration; off, it is removed. The Skip*Write and
// SkipBackplane options apply as for Remove.
func (c *Cache) Expire(ctx context.Context, key string, opts ...Option) (err error) {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanExpire, key)
		defer func() { span.End(c.spanError(err)) }()
	}
	ts, now := stamp(), nowNano()
	e := c.l1.get(key)
	held := e != nil && !e.tombstone()
	// keep: this node holds a copy that stays a fallback once expired (an
	// entry written with fail-safe, alive, not invalidated for good).
	keep := held && e.fallbackWhenExpired() && now < e.physUntil && c.checkEntry(e, c.inv.Load(), false) != invalidGone
	if !o.SkipL1Write {
		if keep {
			c.l1.set(expiredCopy(e, ts, now))
		} else {
			// Nothing to mark stale (or an entry written without
			// fail-safe, which is no fallback): a marker at the expiry's
			// timestamp, so that a read that raced the expiry, or an
			// older change's message, cannot store a fresh copy from
			// before it. (A stale copy in the distributed tier carries
			// the same timestamp and, being a value, beats the marker: it
			// stays a fallback.)
			c.l1.set(newTombstone(key, ts))
		}
	}
	c.release(key)
	var phys int64 // 0: the distributed copy is replaced by a removal record
	switch {
	case keep:
		phys = e.physUntil // as long as the entry itself
	case held:
		// Written without fail-safe, or dead: nothing to keep.
	case o.FailSafe:
		phys = after(now, o.FailSafeMaxDuration)
	}
	c.propagate(pending{op: opExpire, key: key, ts: ts, physUntil: phys, ctx: ctx}, o)
	return nil
}

// expiredCopy is e marked stale at now. It takes the expiry's timestamp ts,
// so a read that raced the expiry cannot bring the fresh copy back, but
// keeps its validity timestamp, so an earlier Clear or RemoveByTag still
// applies.
func expiredCopy(e *entry, ts, now int64) *entry {
	x := e.clone()
	x.ts = max(e.ts, ts)
	// Stale for any clock: a hit reads the hit clock, which may be behind
	// now by more than its margin (a late tick), and must not serve the
	// copy an Expire or a change of another node has just made stale.
	x.freshUntil = 0
	x.l2Fresh = min(e.l2Fresh, now)
	x.noEager()
	return x
}
