package hybrid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

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

// NewRedisL2 returns the distributed tier on a go-redis client: one GET
// per read, an atomic newest-wins SET (a Lua script) per write. It does
// not own the client and never closes it.
func NewRedisL2(client redis.UniversalClient) L2 {
	return redisstore.New(client)
}

// DefaultMaxValueSize is the largest serialized value written to the
// distributed tier when Options.MaxValueSize is zero: 16 MiB.
const DefaultMaxValueSize = 16 << 20

// MaxMaxValueSize is the largest Options.MaxValueSize accepted: 512 MiB,
// Redis's default proto-max-bulk-len (Redis drops the connection on a
// larger value).
const MaxMaxValueSize = redisstore.HardMaxValueSize

// DefaultL2CircuitBreakerDuration is how long the distributed tier is
// skipped after a transient error, when Options.L2CircuitBreakerDuration
// is zero.
const DefaultL2CircuitBreakerDuration = 30 * time.Second

// defaultL2IOTimeout bounds a write to the distributed tier when
// EntryOptions.L2HardTimeout is off.
const defaultL2IOTimeout = 5 * time.Second

// typeName is the fingerprint of T stored in the envelope.
func typeName[T any]() string { return reflect.TypeFor[T]().String() }

// encode returns the envelope of e, or ErrValueTooLarge.
func (c *Cache) encode(e *entry) ([]byte, error) {
	val, err := c.ser.Marshal(e.value)
	if err != nil {
		return nil, fmt.Errorf("hybrid: serialize %q: %w", e.key, err)
	}
	env := envelope.Envelope{
		Timestamp: e.ts, FreshUntil: e.l2Fresh, LastModified: e.lastMod,
		Type: e.typ, ETag: e.etag, Tags: e.tags, Value: val,
	}
	if e.vts < e.ts {
		env.Created = e.vts
	}
	if n := env.Size(); n > c.maxValue {
		return nil, fmt.Errorf("%w: %q encodes to %d bytes, the maximum is %d", ErrValueTooLarge, e.key, n, c.maxValue)
	}
	return env.Append(nil), nil
}

// decodeL2 turns what the distributed tier holds into an entry of type T.
// A corrupt payload or one of another type is a miss, logged and counted.
func decodeL2[T any](c *Cache, key string, b []byte, o *EntryOptions, now int64) *entry {
	env, err := envelope.Decode(b)
	if err != nil {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 entry unreadable", c.keyAttr(key), slog.Any("err", err))
		return nil
	}
	if env.Removed {
		// A removal record: a miss that still wins over older copies.
		return newTombstone(key, env.Timestamp)
	}
	if want := typeName[T](); env.Type != want {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 entry of another type", c.keyAttr(key), slog.String("stored", env.Type), slog.String("want", want))
		return nil
	}
	var v T
	if err := c.ser.Unmarshal(env.Value, &v); err != nil {
		c.stats.l2Corrupt.Add(1)
		c.log.Warn("l2 value undecodable", c.keyAttr(key), slog.Any("err", err))
		return nil
	}
	e := allocEntry(v)
	e.key, e.typ, e.ts, e.vts, e.verified = key, env.Type, env.Timestamp, env.Timestamp, now
	if env.Created != 0 {
		e.vts = env.Created // an expired copy: invalidations compare with its creation
	}
	e.freshUntil, e.l2Fresh, e.physUntil = env.FreshUntil, env.FreshUntil, env.FreshUntil
	e.lastMod, e.etag, e.tags = env.LastModified, env.ETag, env.Tags
	if o.FailSafe {
		e.physUntil = max(e.physUntil, env.Timestamp+int64(o.FailSafeMaxDuration))
	}
	if o.L1Duration > 0 {
		e.freshUntil = min(e.freshUntil, now+int64(o.L1Duration))
	}
	if o.EagerRefreshThreshold > 0 && env.FreshUntil > env.Timestamp {
		e.eagerAt = env.Timestamp + int64(float64(env.FreshUntil-env.Timestamp)*o.EagerRefreshThreshold)
	}
	return e
}

// readL2 reads key from the distributed tier, bounded by the L2 timeouts
// (the soft one only when a stale value can answer instead). It returns
// nil on a miss, a timeout, an open circuit breaker or an error.
func readL2[T any](ctx context.Context, c *Cache, key string, o *EntryOptions, haveStale bool) *entry {
	if o.SkipL2Read {
		return nil
	}
	timeout := o.L2HardTimeout
	if haveStale && o.L2SoftTimeout > 0 && (timeout == 0 || o.L2SoftTimeout < timeout) {
		timeout = o.L2SoftTimeout
	}
	start := stamp() // a copy read now is verified as of now
	b, ok := c.getL2(ctx, key, timeout)
	if !ok || b == nil {
		return nil
	}
	return decodeL2[T](c, key, b, o, start)
}

// readsL2 reports whether a read with o asks the distributed tier.
func (c *Cache) readsL2(o *EntryOptions) bool { return c.l2 != nil && !o.SkipL2Read }

// getL2 reads the raw value of key, bounded by timeout (0: none). ok is
// false on a timeout, an open circuit breaker or an error (logged and
// counted); a miss is (nil, true).
func (c *Cache) getL2(ctx context.Context, key string, timeout time.Duration) (b []byte, ok bool) {
	if c.l2 == nil || !c.breaker.allow() {
		return nil, false
	}
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	b, err := c.l2.Get(rctx, c.prefix+key)
	if err != nil {
		// The socket deadline can fire just before the context's timer
		// marks it done: look at the clock too.
		dl, hasDL := rctx.Deadline()
		if rctx.Err() != nil || hasDL && !time.Now().Before(dl) {
			// Our own deadline or the caller's cancellation: a miss, not a
			// fault of the tier.
			c.stats.l2Timeouts.Add(1)
			if c.ev != nil {
				c.emitL2Error("get", key, L2ErrorTimeout, err)
			}
			return nil, false
		}
		c.l2Failed("get", key, err)
		return nil, false
	}
	c.breaker.succeeded()
	return b, true
}

// l2Failed logs and classifies an error of the distributed tier. A
// transient error opens the circuit breaker; a configuration error
// (permissions, wrong type) is logged at most once a minute.
func (c *Cache) l2Failed(op, key string, err error) {
	c.stats.l2Errors.Add(1)
	kind := redisstore.Classify(err)
	if c.ev != nil {
		class := L2ErrorOther
		switch kind {
		case redisstore.KindTransient:
			class = L2ErrorTransient
		case redisstore.KindConfig:
			class = L2ErrorConfig
		}
		c.emitL2Error(op, key, class, err)
	}
	switch kind {
	case redisstore.KindTransient:
		if c.breaker.trip() || c.breaker.d <= 0 && c.transientErrLog.allow() {
			c.log.Warn("l2 unavailable, circuit breaker open", slog.String("op", op), c.keyAttr(key),
				slog.Duration("for", c.breaker.d), slog.Any("err", err))
		}
		c.startRecovery()
	case redisstore.KindConfig:
		c.stats.configErrors.Add(1)
		if c.configErrLog.allow() {
			c.log.Error("l2 configuration error", slog.String("op", op), c.keyAttr(key), slog.Any("err", err))
		}
	default:
		c.log.Warn("l2 error", slog.String("op", op), c.keyAttr(key), slog.Any("err", err))
	}
}

// transient reports whether err is worth a retry when the tier is back.
func transient(err error) bool {
	return redisstore.Classify(err) == redisstore.KindTransient || errors.Is(err, context.DeadlineExceeded)
}

// breakerProbeInterval is how often an open breaker lets one call through
// to find out whether the tier is back (half-open).
const breakerProbeInterval = time.Second

// breaker skips the distributed tier for a while after a transient error.
// While open it lets one call a second through as a probe: a success
// closes it at once, so a short outage does not cost the whole duration.
//
// With changed set (the CircuitBreaker event), open tracks the state last
// reported, so that opened and closed alternate: a trip reports opened
// unless already reported; a success, or the first call let through after
// the duration ran out, reports closed unless already reported.
type breaker struct {
	d       time.Duration // 0: disabled
	until   atomic.Int64  // unix ns; 0 = closed
	probe   atomic.Int64  // unix ns: when the next probe may go through
	changed func(open bool)
	open    atomic.Bool // the state last reported to changed
}

// report tells changed about a new state, once per change.
func (b *breaker) report(open bool) {
	if b.changed != nil && b.open.Load() != open && b.open.CompareAndSwap(!open, open) {
		b.changed(open)
	}
}

func (b *breaker) interval() time.Duration { return min(breakerProbeInterval, b.d) }

// isOpen reports whether calls are being skipped.
func (b *breaker) isOpen() bool {
	u := b.until.Load()
	return u != 0 && nowNano() < u
}

// allow reports whether a call may go to the tier: the breaker is closed,
// or this call is the probe.
func (b *breaker) allow() bool {
	u := b.until.Load()
	if u == 0 {
		return true
	}
	now := nowNano()
	if now >= u {
		b.report(false)
		return true
	}
	p := b.probe.Load()
	return now >= p && b.probe.CompareAndSwap(p, now+int64(b.interval()))
}

// trip opens the breaker; it reports whether it was closed before.
func (b *breaker) trip() bool {
	if b.d <= 0 {
		return false
	}
	wasClosed := !b.isOpen()
	now := nowNano()
	b.probe.Store(now + int64(b.interval()))
	b.until.Store(now + int64(b.d))
	b.report(true)
	return wasClosed
}

func (b *breaker) succeeded() {
	b.until.Store(0)
	b.report(false)
}

// remaining is how long until a call may go through (the next probe).
func (b *breaker) remaining() time.Duration {
	if !b.isOpen() {
		return 0
	}
	return max(0, time.Duration(b.probe.Load()-nowNano()))
}

// rateLimit allows one event a minute.
type rateLimit struct{ last atomic.Int64 }

func (r *rateLimit) allow() bool {
	now := nowNano()
	last := r.last.Load()
	return (last == 0 || now-last >= int64(time.Minute)) && r.last.CompareAndSwap(last, now)
}

// l2Timeout is how long one operation may wait for the distributed tier:
// o's hard timeout, or defaultL2IOTimeout when that is off.
func l2Timeout(o *EntryOptions) time.Duration {
	if o.L2HardTimeout > 0 {
		return o.L2HardTimeout
	}
	return defaultL2IOTimeout
}

// ioContext bounds one write to the distributed tier. It is not tied to
// the caller: a write the caller started completes even if it leaves.
func (c *Cache) ioContext(o *EntryOptions) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), l2Timeout(o))
}

// writeL2 writes one change to the distributed tier, or queues it for
// auto-recovery when the tier is unavailable. A change the tier refused
// because it holds a newer one is not announced (the newer change's writer
// announces its own), and a local copy of a refused Set is marked stale, so
// that the next read takes the newer entry from the tier.
func (c *Cache) writeL2(p pending, o *EntryOptions) {
	if !c.breaker.allow() {
		c.enqueue(p)
		return
	}
	ctx, cancel := c.ioContext(o)
	defer cancel()
	written, err := c.apply(ctx, p)
	if err != nil {
		c.l2Failed(p.op.String(), p.key, err)
		if transient(err) {
			c.enqueue(p)
		}
		return
	}
	c.breaker.succeeded()
	if !written {
		c.lostToNewer(p)
		return
	}
	if !p.skipBP {
		c.publish(p)
	}
}

// lostToNewer handles a change that the distributed tier refused because
// it holds a newer one: the memory copy of a refused Set, if it is still
// this change's, is marked stale.
func (c *Cache) lostToNewer(p pending) {
	c.stats.l2Refused.Add(1)
	if p.op != opSet || isReserved(p.key) {
		return
	}
	if e := c.l1.get(p.key); e != nil && !e.tombstone && e.ts == p.ts {
		c.l1.set(expiredCopy(e, e.ts, nowNano()), 1)
	}
}

// apply performs one change on the distributed tier, newest wins: written
// is false when the tier holds a newer change, which is kept.
//
// A removal, and an expiry that leaves nothing to keep, write a removal
// record (a tombstone envelope that lives removalTTL), so that an older
// write from a slow load on another node is refused by the tier too. An
// expiry with fail-safe rewrites the stored entry as stale, with the
// expiry's timestamp (older writes lose against it) and its creation time
// kept for the invalidation checks. Every write is one atomic newest-wins
// step; nothing is deleted unconditionally.
func (c *Cache) apply(ctx context.Context, p pending) (written bool, err error) {
	key := c.prefix + p.key
	now := nowNano()
	switch p.op {
	case opSet:
		ttl := time.Duration(p.physUntil - now)
		if ttl <= 0 {
			return true, nil // expired while waiting: nothing to write
		}
		return c.l2.Set(ctx, key, p.val, ttl)
	case opRemove:
		return c.writeRemoval(ctx, key, p.ts)
	case opExpire:
		if p.physUntil <= now {
			return c.writeRemoval(ctx, key, p.ts) // without fail-safe: nothing to keep
		}
		b, err := c.l2.Get(ctx, key)
		if err != nil {
			return false, err
		}
		env, derr := envelope.Decode(b)
		switch {
		case b == nil || derr != nil || env.Removed:
			return c.writeRemoval(ctx, key, p.ts)
		case env.Timestamp > p.ts:
			return false, nil // a newer write since: it wins
		}
		if env.Created == 0 {
			env.Created = env.Timestamp
		}
		env.Timestamp = p.ts
		env.FreshUntil = min(env.FreshUntil, now)
		return c.l2.Set(ctx, key, env.Append(nil), time.Duration(p.physUntil-now))
	}
	return true, nil
}

// removalTTL is how long a removal record lives in the distributed tier:
// as long as a removal is remembered in memory.
const removalTTL = tombstoneTTL

// writeRemoval writes the removal record of key at ts, newest wins.
func (c *Cache) writeRemoval(ctx context.Context, key string, ts int64) (bool, error) {
	env := envelope.Envelope{Timestamp: ts, FreshUntil: ts, Removed: true}
	return c.l2.Set(ctx, key, env.Append(nil), removalTTL)
}
