package hybrid

import (
	"context"
	"maps"
	"time"
)

// invalidations is an immutable snapshot of what Clear and RemoveByTag
// invalidated; a new one replaces it with a higher generation.
type invalidations struct {
	gen          uint64
	expireBefore int64 // Clear(true): entries created before are stale
	removeBefore int64 // Clear(false): entries created before are gone
	verifyBefore int64 // backplane gap: entries not verified since are stale until checked against L2
	tags         map[string]tagInvalidation
}

// tagInvalidation is what is known of one tag (or of Clear): entries
// created before at are stale, before removeAt gone (removeAt <= at).
type tagInvalidation struct {
	at       int64
	removeAt int64
	checked  int64 // when this was last read from the distributed tier (0: never)
}

type validity uint8

const (
	valid validity = iota
	invalidStale
	invalidGone
)

// valid reports, for the hit path, whether e survives every invalidation
// known in memory. It is a pure check: it never waits for the network.
// When the distributed tier may know of an invalidation that concerns e
// and memory does not (a tag never met, the Clear record not read yet, a
// backplane gap), it returns false and the caller hands over to the load
// path, which reads what is missing with the caller's ctx and the L2
// timeouts (learnThenCheck). Once an entry has passed against a
// generation, the check costs two atomic loads.
func (c *Cache) valid(e *entry) bool {
	inv := c.inv.Load()
	if e.checked.Load() == inv.gen {
		return true
	}
	if c.needsLearn(e, inv) {
		return false
	}
	return c.checkEntry(e, inv, false) == valid
}

// learnThenCheck is the load path's check of e: it first reads from the
// distributed tier what memory does not know of the invalidations that
// concern e (bounded by ctx and o's L2 timeout), then checks e.
//
// fromL2 says that e was just read from the distributed tier: it is then
// the newest copy as of that read, so a backplane gap does not make it
// stale for this caller (it is still verified again on a later read if it
// was read before the gap).
func (c *Cache) learnThenCheck(ctx context.Context, e *entry, o *EntryOptions, fromL2 bool) validity {
	c.learn(ctx, e, o)
	return c.checkEntry(e, c.inv.Load(), fromL2)
}

// checkEntry is the pure check of e against the snapshot inv. A copy that
// passes every rule, including the backplane-gap one, is marked as checked
// against inv's generation, unless the distributed tier could still know
// more (needsLearn).
func (c *Cache) checkEntry(e *entry, inv *invalidations, fromL2 bool) validity {
	vts := e.vts()
	if vts < inv.removeBefore {
		return invalidGone
	}
	v := valid
	unverified := max(e.ts, e.verified) < inv.verifyBefore && !c.ownWritePending(e)
	expired := vts < inv.expireBefore // Clear(true)
	for _, t := range e.tags() {
		if ti, ok := inv.tags[t]; ok && vts < ti.at {
			if vts < ti.removeAt {
				return invalidGone
			}
			expired = true // RemoveByTag
		}
	}
	if expired && !e.fallbackWhenExpired() {
		// Written without fail-safe: no fallback once expired, however
		// that happens (docs/failsafe.md).
		return invalidGone
	}
	if expired || unverified && !fromL2 {
		v = invalidStale
	}
	if v == valid && !unverified && !c.needsLearn(e, inv) {
		e.checked.Store(inv.gen)
	}
	return v
}

// needsLearn reports whether the distributed tier may hold an
// invalidation record that concerns e and that memory has not read: the
// cache's Clear record, or one of e's tags, not read since the last
// backplane gap. It only reads memory.
func (c *Cache) needsLearn(e *entry, inv *invalidations) bool {
	if c.l2 == nil {
		return false
	}
	if !c.clearKnown.Load() {
		return true
	}
	if len(e.tags()) == 0 {
		return false
	}
	now := nowNano()
	for _, t := range e.tags() {
		if !c.tagKnown(t, inv, now) {
			return true
		}
	}
	return false
}

// tagKnown reports whether memory knows the state of tag t as of the last
// backplane gap: an invalidation read or received, or a marker that the
// distributed tier has no record of it.
func (c *Cache) tagKnown(t string, inv *invalidations, now int64) bool {
	if ti, known := inv.tags[t]; known && ti.checked >= inv.verifyBefore {
		return true
	}
	m := c.l1.get(tagCheckPrefix + t)
	return m != nil && m.fresh(now) && m.ts >= inv.verifyBefore
}

// invalidate installs a new snapshot built by f from a copy of the current one.
func (c *Cache) invalidate(f func(*invalidations)) {
	c.invMu.Lock()
	defer c.invMu.Unlock()
	cur := c.inv.Load()
	next := &invalidations{
		gen:          cur.gen + 1,
		expireBefore: cur.expireBefore,
		removeBefore: cur.removeBefore,
		verifyBefore: cur.verifyBefore,
		tags:         maps.Clone(cur.tags),
	}
	if next.tags == nil {
		next.tags = make(map[string]tagInvalidation)
	}
	f(next)
	if now := time.Now().UnixNano(); now-c.tagsPruned >= int64(tagPruneInterval) {
		c.tagsPruned = now
		pruneTags(next.tags, now-int64(tagTTL(&c.entry)))
	}
	c.inv.Store(next)
}

// tagPruneInterval is how often at most invalidate forgets old tags.
const tagPruneInterval = time.Hour

// pruneTags forgets the tags whose invalidations are all older than
// cutoff (unix ns): tagTTL before now, when every entry they could
// concern has physically expired (the distributed tier's records of them
// expire then too). Without it the map kept every tag ever invalidated,
// so that per-entity tags (user:<id>) grew it, and the copy that every
// invalidation makes of it, without bound. A tag forgotten is learned
// again from the distributed tier when an entry needs it.
func pruneTags(tags map[string]tagInvalidation, cutoff int64) {
	for t, ti := range tags {
		if ti.at < cutoff && ti.removeAt < cutoff && ti.checked < cutoff {
			delete(tags, t)
		}
	}
}
