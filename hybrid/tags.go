package hybrid

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
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
	longest := max(addDur(o.Duration, o.JitterMaxDuration), o.FailSafeMaxDuration)
	return max(24*time.Hour, addDur(longest, longest))
}

// mergeTag combines two states of a tag: the later of each time.
func mergeTag(a, b tagInvalidation) tagInvalidation {
	return tagInvalidation{at: max(a.at, b.at), removeAt: max(a.removeAt, b.removeAt), checked: max(a.checked, b.checked)}
}

// invalidation records travel as envelopes: Timestamp is the expire time
// (the later of the two), Value the remove time, 8 bytes big-endian.
func encodeInvalidation(ti tagInvalidation) []byte {
	env := envelope.Envelope{Timestamp: ti.at, FreshUntil: ti.at, Type: tagEnvelope,
		Value: binary.BigEndian.AppendUint64(nil, uint64(ti.removeAt))}
	return env.Append(nil)
}

func decodeInvalidation(b []byte) (tagInvalidation, bool) {
	env, err := envelope.Decode(b)
	if err != nil || env.Type != tagEnvelope || len(env.Value) != 8 {
		return tagInvalidation{}, false
	}
	return tagInvalidation{at: env.Timestamp, removeAt: int64(binary.BigEndian.Uint64(env.Value))}, true
}

// RemoveByTag invalidates every entry that carries one of tags and was
// created before the call: such an entry is treated as expired when next
// read (still a fail-safe fallback if it was written with FailSafe). It is
// RemoveByTagWith(ctx, ExpireTagged, tags...).
func (c *Cache) RemoveByTag(ctx context.Context, tags ...string) error {
	return c.RemoveByTagWith(ctx, ExpireTagged, tags...)
}

// TagRemoval says what RemoveByTagWith does to the entries it invalidates.
type TagRemoval uint8

const (
	// ExpireTagged treats the entries as expired: the next read reloads
	// them, and those written with FailSafe remain fail-safe fallbacks (what
	// RemoveByTag does).
	ExpireTagged TagRemoval = iota
	// DeleteTagged treats the entries as removed: never served again, not
	// even as a fail-safe fallback.
	DeleteTagged
)

// RemoveByTagWith invalidates every entry that carries one of tags and was
// created before the call, as mode says: ExpireTagged (still fail-safe
// fallbacks if written with FailSafe) or DeleteTagged (gone). An unknown mode is ErrInvalidOptions.
//
// Each tag gets one small record in the distributed tier (kept for the
// cache's tag TTL, see docs/tags.md in the repository), announced on the backplane; nothing
// scans Redis. Other instances apply it when the message arrives, and an
// instance that starts later reads it when it first meets the tag. An
// unknown tag changes nothing but that record.
func (c *Cache) RemoveByTagWith(ctx context.Context, mode TagRemoval, tags ...string) (err error) {
	if c.closed.Load() {
		return ErrClosed
	}
	if mode > DeleteTagged {
		return fmt.Errorf("%w: RemoveByTagWith mode %d", ErrInvalidOptions, mode)
	}
	allowFailSafe := mode == ExpireTagged
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range tags {
		if err := validateTag(t); err != nil {
			return fmt.Errorf("%w (RemoveByTag)", err)
		}
	}
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanRemoveByTag, "")
		span.SetAttributes(slog.Int(AttrTagsCount, len(tags)))
		defer func() { span.End(c.spanError(err)) }()
	}
	if len(tags) > 1 {
		tags = uniqueTags(tags)
	}
	if len(tags) == 0 {
		return nil
	}
	ti := newInvalidation(allowFailSafe)
	merged := make([]tagInvalidation, len(tags))
	for i, t := range tags {
		merged[i] = c.mergeStored(ctx, tagKeyPrefix+t, ti)
	}
	// One snapshot for the call: the tags are invalidated together, and a
	// call with n tags copies the snapshot's map once, not n times.
	c.invalidate(func(inv *invalidations) {
		for i, t := range tags {
			inv.tags[t] = mergeTag(inv.tags[t], merged[i])
		}
	})
	for i, t := range tags {
		c.propagateInvalidation(ctx, tagKeyPrefix+t, merged[i], allowFailSafe)
	}
	return nil
}

func newInvalidation(allowFailSafe bool) tagInvalidation {
	ts := stamp()
	ti := tagInvalidation{at: ts}
	if !allowFailSafe {
		ti.removeAt = ts
	}
	return ti
}

// mergeStored adds what the distributed tier's record of key holds to ti,
// so that writing the record back keeps an earlier removal.
func (c *Cache) mergeStored(ctx context.Context, key string, ti tagInvalidation) tagInvalidation {
	if c.l2 == nil {
		return ti
	}
	if cur, found, ok := c.loadInvalidation(ctx, key, &c.entry); ok && found {
		ti.removeAt = max(ti.removeAt, cur.removeAt)
	}
	return ti
}

// uniqueTags returns tags with each tag once, in the order of first
// appearance (the order of the records and messages, as the caller listed
// them), without changing the caller's slice.
func uniqueTags(tags []string) []string {
	seen := make(map[string]struct{}, len(tags))
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if _, dup := seen[t]; !dup {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}

// Clear invalidates every entry of the cache created before the call. With
// allowFailSafe, entries are expired (still fail-safe fallbacks if written
// with FailSafe); without, they are removed. Like RemoveByTag it writes one record (as if every
// entry carried a tag of the cache's own) and never scans Redis.
func (c *Cache) Clear(ctx context.Context, allowFailSafe bool) (err error) {
	if err := c.usable(ctx); err != nil {
		return err
	}
	if c.tr != nil {
		var span Span
		ctx, span = c.startOp(ctx, SpanClear, "")
		defer func() { span.End(c.spanError(err)) }()
	}
	ti := c.mergeStored(ctx, clearKey, newInvalidation(allowFailSafe))
	c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
	c.propagateInvalidation(ctx, clearKey, ti, allowFailSafe)
	return nil
}

func (inv *invalidations) applyClear(ti tagInvalidation) {
	inv.expireBefore = max(inv.expireBefore, ti.at)
	inv.removeBefore = max(inv.removeBefore, ti.removeAt)
}

// propagateInvalidation writes an invalidation record to the distributed
// tier and announces it as an Expire or Remove of its reserved key.
func (c *Cache) propagateInvalidation(ctx context.Context, key string, ti tagInvalidation, allowFailSafe bool) {
	kind := backplane.KindExpire
	if !allowFailSafe {
		kind = backplane.KindRemove
	}
	p := pending{op: opSet, key: key, ts: ti.at, bpKind: kind,
		val: encodeInvalidation(ti), physUntil: after(nowNano(), c.tagTTL), ctx: ctx}
	// Every node and every later reader must learn of it: the cache's
	// default SkipBackplane and SkipL2Write, meant for its entries, do not
	// keep an invalidation local (BackgroundL2Operations still applies).
	o := c.entry
	o.SkipBackplane, o.SkipL2Write = false, false
	c.propagate(p, &o)
}

// applyInvalidationMessage applies another instance's RemoveByTag or Clear.
func (c *Cache) applyInvalidationMessage(m backplane.Message) {
	ti := tagInvalidation{at: m.Timestamp}
	if m.Kind == backplane.KindRemove {
		ti.removeAt = m.Timestamp
	}
	switch {
	case m.Key == clearKey:
		c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
	case strings.HasPrefix(m.Key, tagKeyPrefix):
		t := m.Key[len(tagKeyPrefix):]
		c.invalidate(func(inv *invalidations) { inv.tags[t] = mergeTag(inv.tags[t], ti) })
	}
}

// learn makes sure the invalidations of the distributed tier that concern
// e are known in memory: the cache's Clear record once, and each of e's
// tags once (a tag never invalidated is remembered in memory, evictably,
// for the cache's Duration). After a backplane gap, what was read before
// it is read again. Each record is read with stampede protection, with
// ctx (and its L2 budget, withL2Budget) and o's L2 hard timeout. A record
// that cannot be read (the tier is unavailable or too slow) stays unknown,
// so the entry is checked again next time; and for recordRetry no record
// is asked for, so that a tier that hangs costs one timeout, not one per
// load, per key of a batch, or per tag.
// learn is a step of the load path: the hit path never calls it.
func (c *Cache) learn(ctx context.Context, e *entry, o *EntryOptions) {
	if c.l2 == nil || nowNano() < c.recordsRetryAt.Load() {
		return
	}
	if !c.clearKnown.Load() {
		if ti, found, ok := c.loadInvalidation(ctx, clearKey, o); ok {
			if found {
				c.invalidate(func(inv *invalidations) { inv.applyClear(ti) })
			}
			c.clearKnown.Store(true)
		}
	}
	now := nowNano()
	for _, t := range e.tags() {
		inv := c.inv.Load()
		if c.tagKnown(t, inv, now) {
			continue
		}
		read := stamp()
		ti, found, ok := c.loadInvalidation(ctx, tagKeyPrefix+t, o)
		switch {
		case !ok:
			// The tier is unavailable: ask again next time.
		case found:
			ti.checked = read
			c.invalidate(func(inv *invalidations) { inv.tags[t] = mergeTag(inv.tags[t], ti) })
		default:
			if cur, known := inv.tags[t]; known {
				cur.checked = read
				c.invalidate(func(inv *invalidations) { inv.tags[t] = mergeTag(inv.tags[t], cur) })
				continue
			}
			c.l1.set(&entry{key: tagCheckPrefix + t, value: true, ts: read, verified: read,
				freshUntil: after(now, c.entry.Duration), physUntil: after(now, c.entry.Duration)})
		}
	}
}

// recordRetry is how long learn leaves the invalidation records alone after
// a read of one failed or timed out.
const recordRetry = time.Second

// loadInvalidation reads one invalidation record, one read per key at a
// time (singleflight), bounded by o's L2 hard timeout (defaultL2IOTimeout
// when off) and by Close; a caller whose ctx ends stops waiting. ok is
// false when the tier could not answer.
func (c *Cache) loadInvalidation(ctx context.Context, key string, o *EntryOptions) (ti tagInvalidation, found, ok bool) {
	type record struct {
		ti        tagInvalidation
		found, ok bool
	}
	ch := c.tagSF.DoChan(key, func() (any, error) {
		if !c.enterBackground() {
			return record{}, nil
		}
		defer c.wg.Done()
		// The first caller's values (its span), Close's cancellation.
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		defer context.AfterFunc(c.ctx, cancel)()
		b, ok := c.getL2(rctx, key, l2Timeout(o))
		if !ok && c.ctx.Err() == nil {
			c.recordsRetryAt.Store(after(nowNano(), recordRetry))
		}
		r := record{ok: ok}
		if ok && b != nil {
			r.ti, r.found = decodeInvalidation(b)
		}
		return r, nil
	})
	select {
	case res := <-ch:
		r := res.Val.(record)
		return r.ti, r.found, r.ok
	case <-ctx.Done():
		return ti, false, false
	}
}
