package hybrid

import "maps"

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

// valid reports whether e survives every invalidation. Once an entry has
// been checked against a generation, the check costs two atomic loads.
func (c *Cache) valid(e *entry) bool {
	inv := c.inv.Load()
	if e.checked.Load() == inv.gen {
		return true
	}
	return c.validity(e, inv) == valid
}

func (c *Cache) validity(e *entry, inv *invalidations) validity {
	changed, complete := c.learn(e, inv)
	if changed {
		inv = c.inv.Load()
	}
	if e.vts < inv.removeBefore {
		return invalidGone
	}
	v := valid
	if e.vts < inv.expireBefore || max(e.ts, e.verified) < inv.verifyBefore {
		v = invalidStale
	}
	for _, t := range e.tags {
		if ti, ok := inv.tags[t]; ok && e.vts < ti.at {
			if e.vts < ti.removeAt {
				return invalidGone
			}
			v = invalidStale
		}
	}
	if v == valid && complete {
		e.checked.Store(inv.gen)
	}
	return v
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
	c.inv.Store(next)
}
