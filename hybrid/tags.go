package hybrid

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
)

// Keys under reservedPrefix hold the cache's own state in the distributed
// tier: one per invalidated tag ("__strata:tag:<tag>") and one for Clear
// ("__strata:clear"). User keys may not start with it.
const (
	reservedPrefix = "__strata:"
	tagKeyPrefix   = reservedPrefix + "tag:"
	clearKey       = reservedPrefix + "clear"
	tagCheckPrefix = reservedPrefix + "tagok:" // memory only: "checked, not invalidated"
	tagEnvelope    = "strata.invalidation"
)

func isReserved(key string) bool { return strings.HasPrefix(key, reservedPrefix) }

// tagTTL is how long an invalidation record lives in the distributed tier:
// longer than any entry it may have to invalidate (twice the longest
// physical lifetime of the cache's default options, at least 24h).
func tagTTL(o *EntryOptions) time.Duration {
	longest := max(o.Duration+o.JitterMaxDuration, o.FailSafeMaxDuration)
	return max(24*time.Hour, 2*longest)
}

// mergeTag keeps the newest invalidation; at equal times, remove wins.
func mergeTag(cur, next tagInvalidation) tagInvalidation {
	switch {
	case next.at > cur.at:
		return next
	case next.at == cur.at:
		cur.remove = cur.remove || next.remove
	}
	return cur
}

// invalidation records travel as envelopes: Timestamp is the time of the
// invalidation, Value one byte, 1 for remove and 0 for expire.
func encodeInvalidation(at int64, remove bool) []byte {
	v := byte(0)
	if remove {
		v = 1
	}
	env := envelope.Envelope{Timestamp: at, FreshUntil: at, Type: tagEnvelope, Value: []byte{v}}
	return env.Append(nil)
}

func decodeInvalidation(b []byte) (tagInvalidation, bool) {
	env, err := envelope.Decode(b)
	if err != nil || env.Type != tagEnvelope || len(env.Value) != 1 {
		return tagInvalidation{}, false
	}
	return tagInvalidation{at: env.Timestamp, remove: env.Value[0] == 1}, true
}

// RemoveByTag invalidates every entry that carries one of tags and was
// created before the call: such an entry is treated as expired when next
// read (still a fail-safe fallback). It is RemoveByTagWith(ctx, true, tags...).
func (c *Cache) RemoveByTag(ctx context.Context, tags ...string) error {
	return c.RemoveByTagWith(ctx, true, tags...)
}

// RemoveByTagWith invalidates every entry that carries one of tags and was
// created before the call. With allowFailSafe such entries are expired
// (still fail-safe fallbacks); without, they are removed.
//
// Each tag gets one small record in the distributed tier (kept for the
// cache's tag TTL, see docs/tags.md), announced on the backplane; nothing
// scans Redis. Other instances apply it when the message arrives, and an
// instance that starts later reads it when it first meets the tag. An
// unknown tag changes nothing but that record.
func (c *Cache) RemoveByTagWith(ctx context.Context, allowFailSafe bool, tags ...string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range tags {
		if err := validateTag(t); err != nil {
			return fmt.Errorf("%w (RemoveByTag)", err)
		}
	}
	ts := stamp()
	ti := tagInvalidation{at: ts, remove: !allowFailSafe}
	c.invalidate(func(inv *invalidations) {
		for _, t := range tags {
			inv.tags[t] = mergeTag(inv.tags[t], ti)
		}
	})
	for _, t := range tags {
		c.propagateInvalidation(tagKeyPrefix+t, ti)
	}
	return nil
}

// Clear invalidates every entry of the cache created before the call. With
// allowFailSafe, entries are expired (still fail-safe fallbacks); without,
// they are removed. Like RemoveByTag it writes one record (as if every
// entry carried a tag of the cache's own) and never scans Redis.
func (c *Cache) Clear(ctx context.Context, allowFailSafe bool) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ti := tagInvalidation{at: stamp(), remove: !allowFailSafe}
	c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
	c.propagateInvalidation(clearKey, ti)
	return nil
}

func (inv *invalidations) applyClear(ti tagInvalidation) {
	inv.expireBefore = max(inv.expireBefore, ti.at)
	if ti.remove {
		inv.removeBefore = max(inv.removeBefore, ti.at)
	}
}

// propagateInvalidation writes an invalidation record to the distributed
// tier and announces it as an Expire or Remove of its reserved key.
func (c *Cache) propagateInvalidation(key string, ti tagInvalidation) {
	kind := backplane.KindExpire
	if ti.remove {
		kind = backplane.KindRemove
	}
	p := pending{op: opSet, key: key, ts: ti.at, bpKind: kind,
		val: encodeInvalidation(ti.at, ti.remove), physUntil: nowNano() + int64(c.tagTTL)}
	c.propagate(p, &c.entry)
}

// applyInvalidationMessage applies another instance's RemoveByTag or Clear.
func (c *Cache) applyInvalidationMessage(m backplane.Message) {
	ti := tagInvalidation{at: m.Timestamp, remove: m.Kind == backplane.KindRemove}
	switch {
	case m.Key == clearKey:
		c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
	case strings.HasPrefix(m.Key, tagKeyPrefix):
		t := m.Key[len(tagKeyPrefix):]
		c.invalidate(func(inv *invalidations) { inv.tags[t] = mergeTag(inv.tags[t], ti) })
	}
}

// learn makes sure the invalidations of the distributed tier that concern
// e are known locally: the cache's Clear record once, and each of e's tags
// once (a tag never invalidated is remembered in memory, evictably, for
// the cache's Duration). Each record is read with stampede protection. It
// reports whether it learned anything new (the snapshot changed).
func (c *Cache) learn(e *entry, inv *invalidations) bool {
	if c.l2 == nil {
		return false
	}
	changed := false
	if !c.clearKnown.Load() {
		if ti, found, ok := c.loadInvalidation(clearKey); ok {
			if found {
				c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
				changed = true
			}
			c.clearKnown.Store(true)
		}
	}
	now := nowNano()
	for _, t := range e.tags {
		if _, known := inv.tags[t]; known {
			continue
		}
		if m := c.l1.get(tagCheckPrefix + t); m != nil && m.fresh(now) {
			continue
		}
		ti, found, ok := c.loadInvalidation(tagKeyPrefix + t)
		switch {
		case !ok:
			// The tier is unavailable: assume nothing, ask again next time.
		case found:
			c.invalidate(func(inv *invalidations) { inv.tags[t] = mergeTag(inv.tags[t], ti) })
			changed = true
		default:
			ts := stamp()
			c.l1.set(&entry{key: tagCheckPrefix + t, value: true, ts: ts, vts: ts, verified: ts,
				freshUntil: now + int64(c.entry.Duration), physUntil: now + int64(c.entry.Duration)}, 1)
		}
	}
	return changed
}

// loadInvalidation reads one invalidation record, one read per key at a
// time. ok is false when the tier could not answer.
func (c *Cache) loadInvalidation(key string) (ti tagInvalidation, found, ok bool) {
	type result struct {
		ti        tagInvalidation
		found, ok bool
	}
	cl, leader := c.tagLoads.join(key)
	if leader {
		timeout := c.entry.L2HardTimeout
		if timeout <= 0 {
			timeout = defaultL2IOTimeout
		}
		b, ok := c.getL2(context.Background(), key, timeout)
		r := result{ok: ok}
		if ok && b != nil {
			r.ti, r.found = decodeInvalidation(b)
		}
		cl.deliver(r, nil)
		c.tagLoads.release(key, cl)
	}
	<-cl.done
	r := cl.val.(result)
	return r.ti, r.found, r.ok
}
