package hybrid

import (
	"context"
	"log/slog"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
)

// The change model: what a write (Set, a factory result, Remove, Expire,
// RemoveByTag, Clear) becomes on its way out of the process. The memory
// tier takes it at once (store); propagate sends it to the distributed tier
// (writeL2 -> apply, one newest-wins write) and then announces it on the
// backplane (publish, backplane.go). A change that fails for a transient
// reason is queued for auto-recovery (recovery.go).

// op is the kind of a change.
type op uint8

const (
	opSet op = iota + 1
	opRemove
	opExpire
)

// String names the operation in logs.
func (o op) String() string {
	switch o {
	case opSet:
		return "set"
	case opRemove:
		return "remove"
	case opExpire:
		return "expire"
	}
	return "unknown"
}

// pending is one change to the distributed tier (and its backplane
// notification) not yet applied.
type pending struct {
	op        op
	key       string
	ts        int64          // the change's timestamp: newest wins
	val       []byte         // opSet: the envelope
	physUntil int64          // opSet: when the value dies; opExpire: physical end of the stale copy
	l2Done    bool           // the distributed tier has it; only the notification is pending
	skipBP    bool           // no backplane notification
	noValue   bool           // opSet: the notification does not carry val (see storeAs)
	bpKind    backplane.Kind // the message's kind; zero: derived from op
	// ctx is the context of the operation that made the change (its span,
	// for the spans of the write and the publish, and the caller's values
	// for events), never cancelled; nil: none. A change queued for
	// auto-recovery keeps it until replayed.
	ctx context.Context
}

// context returns the context of the change's operation, or
// context.Background().
func (p *pending) context() context.Context {
	if p.ctx == nil {
		return context.Background()
	}
	return p.ctx
}

// store writes e to the memory tier and, with its envelope enc, to the
// distributed tier, as o allows.
//
// Without a distributed tier (or with SkipL2Write) the change is only
// announced; with one, a value that could not be encoded (kept in memory
// only, logged) is neither written nor announced.
func (c *Cache) store(ctx context.Context, e *entry, o *EntryOptions, enc []byte) {
	c.storeAs(ctx, e, o, enc, false)
}

// storeAs is store; cold says that e is the first value of a key that no
// tier held (a load without a stale value): its backplane message carries
// no entry, since the other instances are unlikely to hold the key.
func (c *Cache) storeAs(ctx context.Context, e *entry, o *EntryOptions, enc []byte, cold bool) {
	if !o.SkipL1Write {
		c.l1.set(e)
	}
	if enc != nil || c.l2 == nil || o.SkipL2Write {
		c.propagate(pending{op: opSet, key: e.key, ts: e.ts, val: enc, physUntil: e.physUntil, noValue: cold, ctx: ctx}, o)
	}
}

// uncancelled is ctx without its cancellation, for a change that outlives
// the call (a background write, the auto-recovery queue).
func uncancelled(ctx context.Context) context.Context {
	if ctx == nil || ctx.Done() == nil {
		return ctx // nothing to strip (context.Background): no allocation
	}
	return context.WithoutCancel(ctx)
}

// propagate sends a change to the distributed tier, in the background
// when o.BackgroundL2Operations is set.
//
// The backplane hears of the change once the distributed tier has it (or
// at once, without one), unless o.SkipBackplane is set. p.ctx is the
// caller's: the change keeps its values, not its cancellation (uncancelled,
// only for a change that goes somewhere).
func (c *Cache) propagate(p pending, o *EntryOptions) {
	p.skipBP = o.SkipBackplane || c.bp == nil
	noL2 := c.l2 == nil || o.SkipL2Write
	if noL2 && p.skipBP {
		return // no other tier or node to tell
	}
	p.ctx = uncancelled(p.ctx)
	if noL2 {
		if o.BackgroundL2Operations && c.goBackground(p.ctx, func() { c.publish(p) }) {
			return
		}
		c.publish(p)
		return
	}
	if o.BackgroundL2Operations && c.writeInBackground(func() { c.writeL2(p, o) }, p) {
		return
	}
	c.writeL2(p, o)
}

// writeInBackground runs write, the distributed tier's writes of ps, on a
// background worker; ps's Sets count as this process's pending writes
// until it is done (ownWritePending). It returns false, having run
// nothing, when the cache is closing.
func (c *Cache) writeInBackground(write func(), ps ...pending) bool {
	track := func(f func(key string, ts int64)) {
		if c.bp == nil { // the backplane-gap check needs them only with a backplane
			return
		}
		for _, p := range ps {
			if p.op == opSet {
				f(p.key, p.ts)
			}
		}
	}
	track(c.writing.add)
	if c.goBackground(ps[0].ctx, func() { write(); track(c.writing.done) }) {
		return true
	}
	track(c.writing.done)
	return false
}

// ioContext bounds one write to the distributed tier (or one publish). It
// keeps the values of parent (the span of the operation, for the spans of
// the Redis client) but not its cancellation: a write the caller started
// completes even if it leaves.
func (c *Cache) ioContext(parent context.Context, o *EntryOptions) (context.Context, context.CancelFunc) {
	if parent.Done() != nil { // (a change's context is uncancelled already)
		parent = context.WithoutCancel(parent)
	}
	return context.WithTimeout(parent, l2Timeout(o))
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
	pctx := p.context()
	sctx, span := c.startChild(pctx, SpanL2Set, p.key)
	ctx, cancel := c.ioContext(sctx, o)
	began := nowNano()
	written, announced, err := c.applyFeed(ctx, p)
	cancel()
	if c.ev != nil {
		c.emitL2Call(pctx, p.op.String(), p.key, time.Duration(nowNano()-began), err)
	}
	if span != nil {
		span.SetAttributes(slog.String(AttrTier, TierL2.String()), slog.String(AttrOp, p.op.String()))
		if announced {
			span.SetAttributes(slog.Bool(AttrAnnounced, true))
		}
		span.End(c.spanErr(p.key, err))
	}
	if err != nil {
		c.l2Failed(pctx, p.op.String(), p.key, err)
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
	if !p.skipBP && !announced {
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
	if e := c.l1.get(p.key); e != nil && !e.tombstone() && e.ts == p.ts {
		c.l1.set(expiredCopy(e, e.ts, nowNano()))
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
		return c.setL2(ctx, key, p.val, ttl)
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
		case derr == nil && env.Removed:
			// Removed before this expiry (a Remove on another node whose
			// message had not arrived): the key is gone, so the stale copy
			// this node kept as a fallback must go too. It carries the
			// expiry's timestamp, which a removal at that same timestamp
			// does not replace (a value wins a tie): one nanosecond later.
			written, err := c.writeRemoval(ctx, key, p.ts)
			if err == nil && written {
				if e := c.l1.get(p.key); e != nil && !e.tombstone() && e.ts == p.ts {
					c.l1.set(newTombstone(p.key, p.ts+1))
				}
			}
			return written, err
		case b == nil || derr != nil:
			return c.writeRemoval(ctx, key, p.ts)
		case env.Timestamp > p.ts:
			return false, nil // a newer write since: it wins
		}
		if env.Created == 0 {
			env.Created = env.Timestamp
		}
		env.Timestamp = p.ts
		env.FreshUntil = min(env.FreshUntil, now)
		return c.setL2(ctx, key, env.Append(nil), time.Duration(p.physUntil-now))
	}
	return true, nil
}

// setL2 is L2.Set (key prefixed), coalesced with the writes in flight when
// the tier allows it.
func (c *Cache) setL2(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if c.co != nil {
		return c.co.set(ctx, key, val, ttl)
	}
	return c.l2.Set(ctx, key, val, ttl)
}

// removalTTL is how long a removal record lives in the distributed tier:
// as long as a removal is remembered in memory.
const removalTTL = tombstoneTTL

// writeRemoval writes the removal record of key at ts, newest wins.
func (c *Cache) writeRemoval(ctx context.Context, key string, ts int64) (bool, error) {
	env := envelope.Envelope{Timestamp: ts, FreshUntil: ts, Removed: true}
	return c.setL2(ctx, key, env.Append(nil), removalTTL)
}

func (o op) kind() backplane.Kind {
	switch o {
	case opRemove:
		return backplane.KindRemove
	case opExpire:
		return backplane.KindExpire
	}
	return backplane.KindSet
}
