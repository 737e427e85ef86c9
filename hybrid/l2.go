package hybrid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redisstore"
)

// L2 is the distributed tier: a store of encoded entries shared by every
// process that uses the cache. Keys arrive already prefixed. NewRedisL2 is
// the implementation on Redis; other stores can implement it.
type L2 interface {
	// Get returns the value at key, or (nil, nil) when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set writes value with the physical lifetime ttl, unless the store
	// holds a newer value (value starts with an envelope header whose
	// timestamp decides); written is false when the newer value was kept.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) (written bool, err error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// RedisL2 is the distributed tier on Redis: one GET per read, one atomic
// newest-wins write (a Lua script) per Set, in which a stored value that
// does not decode never wins. Build it with NewRedisL2.
//
// With a backplane.Redis on the same client and classic (not sharded)
// pub/sub, the script also publishes the write's backplane message when it
// writes (FeedL2): a write and its announcement are one round trip, and a
// write that lost to a newer value announces nothing. On a cluster
// (sharded pub/sub: the channel lives in another slot than the key) the
// message is published after the write, a second round trip.
type RedisL2 struct {
	s      *redisstore.Store
	client redis.UniversalClient
}

var (
	_ L2     = (*RedisL2)(nil)
	_ FeedL2 = (*RedisL2)(nil)
)

// Announces reports whether r's writes can carry bp's messages: bp is a
// backplane.Redis on r's client with classic pub/sub.
func (r *RedisL2) Announces(bp backplane.Backplane) bool {
	rb, ok := bp.(*backplane.Redis)
	return ok && !rb.Sharded() && rb.Client() == r.client
}

// NewRedisL2 returns the distributed tier on a go-redis client (standalone,
// cluster or sentinel failover). It does not own the client and never
// closes it.
func NewRedisL2(client redis.UniversalClient) *RedisL2 {
	return &RedisL2{s: redisstore.New(client), client: client}
}

// Get returns the value at key, or (nil, nil) when there is none.
func (r *RedisL2) Get(ctx context.Context, key string) ([]byte, error) { return r.s.Get(ctx, key) }

// getEach reads keys with pipelined GETs, each as Get would (the reads a
// cache coalesces).
func (r *RedisL2) getEach(ctx context.Context, keys []string) ([][]byte, []error) {
	return r.s.GetEach(ctx, keys)
}

// setEach writes in one pipeline, each as Set would with its change in
// its context (the writes a cache coalesces).
func (r *RedisL2) setEach(ctx context.Context, writes []l2Write) []l2Written {
	items := make([]L2Item, len(writes))
	changes := make([]*Change, len(writes))
	for i, w := range writes {
		items[i] = L2Item{Key: w.key, Value: w.val, TTL: w.ttl}
		changes[i] = w.change
	}
	written, errs := r.setManyAnnounced(ctx, items, changes)
	res := make([]l2Written, len(writes))
	for i := range res {
		res[i].written = written[i]
		if errs != nil {
			res[i].err = errs[i]
		}
	}
	return res
}

// Set writes value (an envelope) with the physical lifetime ttl unless
// Redis holds a valid, newer envelope at key; written is false then.
func (r *RedisL2) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (written bool, err error) {
	if ch, ok := ChangeFromContext(ctx); ok {
		if rb, ok := ch.Backplane().(*backplane.Redis); ok && r.Announces(rb) {
			msg, _ := ch.Message.MarshalBinary() // sized once
			written, published, err := r.s.SetPublish(ctx, key, value, ttl, rb.Channel(), msg)
			if published {
				ch.MarkAnnounced()
			}
			return written, err
		}
	}
	return r.s.Set(ctx, key, value, ttl)
}

// setManyAnnounced writes items newest-wins in one pipeline, each with the
// message of its change published by the same script (see Set).
func (r *RedisL2) setManyAnnounced(ctx context.Context, items []L2Item, changes []*Change) ([]bool, []error) {
	msgs := make([][]byte, len(items))
	channel := ""
	for i, ch := range changes {
		if ch == nil {
			continue
		}
		rb, ok := ch.Backplane().(*backplane.Redis)
		if !ok || !r.Announces(rb) {
			continue
		}
		channel = rb.Channel() // one cache: one channel
		msgs[i], _ = ch.Message.MarshalBinary()
	}
	written, published, errs := r.s.SetPublishMany(ctx, items, channel, msgs)
	for i, p := range published {
		if p {
			changes[i].MarkAnnounced()
		}
	}
	return written, errs
}

var _ batchFeeder = (*RedisL2)(nil)

// Delete removes key; a missing key is not an error.
func (r *RedisL2) Delete(ctx context.Context, key string) error { return r.s.Delete(ctx, key) }

// defaultL2IOTimeout bounds a write to the distributed tier when
// EntryOptions.L2HardTimeout is off.
const defaultL2IOTimeout = 5 * time.Second

// typeName is the fingerprint of T stored in the envelope.
func typeName[T any]() string { return reflect.TypeFor[T]().String() }

// encode returns the envelope of e, or ErrValueTooLarge.
func (c *Cache) encode(e *entry) ([]byte, error) {
	env := envelope.Envelope{
		Timestamp: e.ts, FreshUntil: e.l2Fresh, LastModified: e.lastMod(),
		Type: e.typ(), ETag: e.etag(), Tags: e.tags(), NotFound: e.value == notFoundValue,
	}
	if ac, ok := e.value.(*autoClone); ok {
		env.Value = ac.raw // serialized once, when stored
	} else if lv, ok := e.value.(*lazyValue); ok {
		env.Value = lv.raw // as received in a backplane message
	} else if !env.NotFound {
		val, err := marshal(c.ser, e.value)
		if err != nil {
			return nil, fmt.Errorf("hybrid: serialize %q: %w", e.key, err)
		}
		env.Value = val
	}
	if c.comp != nil && len(env.Value) >= c.compMin && len(env.Value) <= c.maxValue {
		// (A value above the limit is refused below either way; readers
		// decompress at most MaxValueSize bytes.)
		z, err := c.comp.Compress(env.Value)
		if err != nil {
			return nil, fmt.Errorf("hybrid: compress %q: %w", e.key, err)
		}
		if len(z) < len(env.Value) {
			env.Value, env.Compressed = z, true
		}
	}
	if vts := e.vts(); vts < e.ts {
		env.Created = vts
	}
	if n := env.Size(); n > c.maxValue {
		return nil, fmt.Errorf("%w: %q encodes to %d bytes, the maximum is %d", ErrValueTooLarge, e.key, n, c.maxValue)
	}
	return env.Append(nil), nil
}

// decodeL2 turns what the distributed tier holds into an entry of type T.
// A corrupt payload or one of another type is a miss, logged and counted.
func decodeL2[T any](c *Cache, key string, b []byte, o *EntryOptions, now int64) *entry {
	want := typeName[T]()
	env, err := envelope.DecodeShared(b, want) // b is the GET's reply: ours alone
	if err != nil {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 entry unreadable", c.keyAttr(key), c.errAttr(key, err))
		return nil
	}
	if env.Removed {
		// A removal record: a miss that still wins over older copies.
		return newTombstone(key, env.Timestamp)
	}
	if err := c.inflate(&env); err != nil {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 entry unusable", c.keyAttr(key), c.errAttr(key, err))
		return nil
	}
	if env.NotFound {
		return notFoundFromL2(key, &env, o, now, now)
	}
	if env.Type != want {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 entry of another type", c.keyAttr(key), slog.String("stored", env.Type), slog.String("want", want))
		return nil
	}
	x, h, freshUntil, physUntil := fromL2Parts(&env, o, now)
	// Decoded in place, into the entry's own value (a *T): a separate T
	// would escape to the heap through Unmarshal's interface, one more
	// allocation and a copy per read.
	var zero T
	e := allocEntry(zero, &x, &h)
	if err := unmarshal(c.ser, env.Value, e.value); err != nil {
		c.stats.l2Corrupt.Add(1)
		// A serialization error, at Error as FusionCache logs them.
		c.log.Error("l2 value undecodable", c.keyAttr(key), c.errAttr(key, err))
		return nil
	}
	if o.AutoClone {
		e.value = &autoClone{raw: env.Value, ser: c.ser, typ: env.Type} // env.Value is ours (DecodeShared)
	}
	e.key, e.ts, e.verified = key, env.Timestamp, now
	e.freshUntil, e.l2Fresh, e.physUntil = freshUntil, env.FreshUntil, physUntil
	return e
}

// Errors of inflate.
var (
	errNoCompressor   = errors.New("compressed, and this cache has no compressor")
	errUndecompressed = errors.New("value undecompressable")
)

// inflate decompresses env's value in place if the envelope says it is
// compressed.
func (c *Cache) inflate(env *envelope.Envelope) error {
	if !env.Compressed {
		return nil
	}
	if c.comp == nil {
		return errNoCompressor
	}
	raw, err := c.comp.Decompress(env.Value, c.maxValue)
	if err != nil {
		return fmt.Errorf("%w: %w", errUndecompressed, err)
	}
	env.Value = raw
	return nil
}

// fromL2Parts is what an entry of a value from the distributed tier (read,
// or carried by a backplane message) takes from its envelope under o, now
// being when it was read: its rare fields, what a hit may have to do, and
// its logical (in memory) and physical expiries.
func fromL2Parts(env *envelope.Envelope, o *EntryOptions, now int64) (x entryExt, h onHit, freshUntil, physUntil int64) {
	x = entryExt{etag: env.ETag, lastMod: env.LastModified, tags: env.Tags, size: extSize(o.Size)}
	if env.Created != 0 && env.Created != env.Timestamp {
		x.vts = env.Created // an expired copy: invalidations compare with its creation
	}
	freshUntil, physUntil = env.FreshUntil, env.FreshUntil
	if o.L1Duration > 0 {
		freshUntil = min(freshUntil, after(now, o.L1Duration))
	}
	if o.FailSafe {
		physUntil = failSafePhys(physUntil, after(env.Timestamp, o.FailSafeMaxDuration))
	}
	if o.SlidingDuration > 0 {
		h.slide = newSliding(freshUntil, int64(o.SlidingDuration), after(env.Timestamp, o.Duration))
	}
	if o.EagerRefreshThreshold > 0 && env.FreshUntil > env.Timestamp {
		h.eagerAt = after(env.Timestamp, scaleDur(time.Duration(env.FreshUntil-env.Timestamp), o.EagerRefreshThreshold))
	}
	return x, h, freshUntil, physUntil
}

// notFoundFromL2 is the entry of a "not found" record from the distributed
// tier, read at now and known to be the newest as of verified.
func notFoundFromL2(key string, env *envelope.Envelope, o *EntryOptions, now, verified int64) *entry {
	e := allocBare(&entryExt{typ: env.Type, tags: env.Tags, size: extSize(o.Size)})
	e.key, e.ts, e.verified, e.value = key, env.Timestamp, verified, notFoundValue
	e.freshUntil, e.l2Fresh, e.physUntil = env.FreshUntil, env.FreshUntil, env.FreshUntil
	if o.L1Duration > 0 {
		e.freshUntil = min(e.freshUntil, after(now, o.L1Duration))
	}
	return e
}

// readL2 reads key from the distributed tier, bounded by the L2 timeouts
// (the soft one only when a stale value can answer instead). It returns
// nil on a miss, a timeout, an open circuit breaker or an error.
//
// answered is false when the tier did not answer (an error, a timeout, the
// circuit breaker open, or SkipL2Read: not asked): a miss it did not vouch
// for.
func readL2[T any](ctx context.Context, c *Cache, key string, o *EntryOptions, haveStale bool) (_ *entry, answered bool) {
	if o.SkipL2Read {
		return nil, false
	}
	timeout := o.L2HardTimeout
	if haveStale && o.L2SoftTimeout > 0 && (timeout == 0 || o.L2SoftTimeout < timeout) {
		timeout = o.L2SoftTimeout
	}
	start := stamp() // a copy read now is verified as of now
	b, ok := c.getL2(ctx, key, timeout)
	if !ok || b == nil {
		return nil, ok
	}
	return decodeL2[T](c, key, b, o, start), true
}

// readsL2 reports whether a read with o asks the distributed tier.
func (c *Cache) readsL2(o *EntryOptions) bool { return c.l2 != nil && !o.SkipL2Read }

// l2BudgetKey is the context key of an L2 budget (withL2Budget).
type l2BudgetKey struct{}

// withL2Budget returns ctx with a time (unix ns) by which every read of
// the distributed tier made with it (getL2) must end: a load with a stale
// value and an L2 soft timeout waits that long for the tier in all, for
// its invalidation records and its entry together. A budget that ctx
// already has and that ends earlier stays.
func withL2Budget(ctx context.Context, end int64) context.Context {
	if had, ok := ctx.Value(l2BudgetKey{}).(int64); ok && had <= end {
		return ctx
	}
	return context.WithValue(ctx, l2BudgetKey{}, end)
}

// withFactoryShare bounds the distributed tier's reads of a load whose
// callers have a hard factory timeout (their timers count the whole load,
// see getOrSetSlow) to half of that timeout from now, so that a hung tier
// leaves the factory the other half: an L2HardTimeout longer than
// FactoryHardTimeout (strata.ProductionDefaults: 2 s and 1.5 s) would
// otherwise fail a cold load with ErrFactoryTimeout before the factory ran.
func (c *Cache) withFactoryShare(ctx context.Context, o *EntryOptions) context.Context {
	if o.FactoryHardTimeout <= 0 || c.l2 == nil {
		return ctx
	}
	return withL2Budget(ctx, after(nowNano(), o.FactoryHardTimeout/2))
}

// l2Budget returns the end (unix ns) of an L2 budget of o's soft timeout
// that starts now, or 0 when o has none or there is no distributed tier:
// what a batch gives its keys' reads (memoryAgainBy, getL2Many).
func (c *Cache) l2Budget(o *EntryOptions) int64 {
	if o.L2SoftTimeout <= 0 || c.l2 == nil {
		return 0
	}
	return after(nowNano(), o.L2SoftTimeout)
}

// budgetLeft bounds timeout (0: none) by ctx's L2 budget, if any; spent
// is true when the budget is used up.
func budgetLeft(ctx context.Context, timeout time.Duration) (_ time.Duration, spent bool) {
	end, ok := ctx.Value(l2BudgetKey{}).(int64)
	if !ok {
		return timeout, false
	}
	left := time.Duration(end - nowNano())
	if left <= 0 {
		return 0, true
	}
	if timeout <= 0 || left < timeout {
		timeout = left
	}
	return timeout, false
}

// getL2 reads the raw value of key, bounded by timeout (0: none) and by
// ctx's L2 budget, if any (withL2Budget). ok is
// false on a timeout, an open circuit breaker or an error (logged and
// counted); a miss is (nil, true).
func (c *Cache) getL2(ctx context.Context, key string, timeout time.Duration) (b []byte, ok bool) {
	if c.l2 == nil || !c.breaker.allow() {
		return nil, false
	}
	var span Span
	var failed error // the span's error: a failure of the tier, not a timeout
	if c.tr != nil {
		ctx, span = c.startChild(ctx, SpanL2Get, key)
		defer func() {
			span.SetAttributes(slog.String(AttrTier, TierL2.String()), slog.Bool(AttrHit, b != nil))
			span.End(c.spanErr(key, failed))
		}()
	}
	timeout, spent := budgetLeft(ctx, timeout)
	if spent {
		c.l2ReadCut(ctx, span, key, context.DeadlineExceeded)
		return nil, false
	}
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	began := nowNano()
	var err error
	if c.co != nil {
		b, err = c.co.get(rctx, c.prefix+key)
	} else {
		b, err = c.l2.Get(rctx, c.prefix+key)
	}
	if c.ev != nil {
		c.emitL2Call(ctx, "get", key, time.Duration(nowNano()-began), err)
	}
	if err != nil {
		b = nil
		// The socket deadline can fire just before the context's timer
		// marks it done: look at the clock too.
		dl, hasDL := rctx.Deadline()
		if rctx.Err() != nil || hasDL && !time.Now().Before(dl) {
			// Our own deadline or the caller's cancellation: a miss, not a
			// fault of the tier.
			c.l2ReadCut(ctx, span, key, err)
			return nil, false
		}
		if c.ctx.Err() != nil {
			return nil, false // closed meanwhile: a read ended by Close (a coalesced one) is no fault of the tier
		}
		failed = err
		c.l2Failed(ctx, "get", key, err)
		return nil, false
	}
	c.breaker.succeeded()
	return b, true
}

// l2ReadCut counts a read of key cut by the L2 timeouts or the caller's
// context, or not made because the L2 budget was spent (err
// context.DeadlineExceeded): Stats.L2Timeouts, its span (nil without a
// tracer) and an L2Error event of class timeout, so that the three agree.
func (c *Cache) l2ReadCut(ctx context.Context, span Span, key string, err error) {
	c.stats.l2Timeouts.Add(1)
	if span != nil {
		span.SetAttributes(slog.String(AttrTimeout, "l2"))
	}
	if c.ev != nil {
		c.emitL2Error(ctx, "get", key, L2ErrorTimeout, err)
	}
}

// l2Failed logs and classifies an error of the distributed tier. A
// transient error opens the circuit breaker; a configuration error
// (permissions, wrong type) is logged at most once a minute. ctx is the
// operation's (its L2Error event).
func (c *Cache) l2Failed(ctx context.Context, op, key string, err error) {
	c.stats.l2Errors.Add(1)
	kind := classifyL2(err)
	if c.ev != nil {
		class := L2ErrorOther
		switch kind {
		case redisstore.KindTransient:
			class = L2ErrorTransient
		case redisstore.KindConfig:
			class = L2ErrorConfig
		}
		c.emitL2Error(ctx, op, key, class, err)
	}
	switch kind {
	case redisstore.KindTransient:
		if c.breaker.trip() || c.breaker.d <= 0 && c.transientErrLog.allow() {
			c.log.Warn("l2 unavailable, circuit breaker open", slog.String("op", op), c.keyAttr(key),
				slog.String("for", c.breaker.d.String()), c.errAttr(key, err))
		}
		c.startRecovery()
	case redisstore.KindConfig:
		c.stats.configErrors.Add(1)
		if c.configErrLog.allow() {
			c.log.Error("l2 configuration error", slog.String("op", op), c.keyAttr(key), c.errAttr(key, err))
		}
	default:
		c.log.Warn("l2 error", slog.String("op", op), c.keyAttr(key), c.errAttr(key, err))
	}
}

// transient reports whether err is worth a retry when the tier is back.
func transient(err error) bool {
	return classifyL2(err) == redisstore.KindTransient || errors.Is(err, context.DeadlineExceeded)
}

// l2Timeout is how long one operation may wait for the distributed tier:
// o's hard timeout, or defaultL2IOTimeout when that is off.
func l2Timeout(o *EntryOptions) time.Duration {
	if o.L2HardTimeout > 0 {
		return o.L2HardTimeout
	}
	return defaultL2IOTimeout
}
