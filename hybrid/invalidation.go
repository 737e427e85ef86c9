package hybrid

import (
	"context"
	"fmt"
	"maps"
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

type tagInvalidation struct {
	at     int64 // entries with the tag created before are invalid
	remove bool  // gone rather than stale
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
	if e.vts < inv.removeBefore {
		return invalidGone
	}
	v := valid
	if e.vts < inv.expireBefore || max(e.ts, e.verified) < inv.verifyBefore {
		v = invalidStale
	}
	for _, t := range e.tags {
		if ti, ok := inv.tags[t]; ok && e.vts < ti.at {
			if ti.remove {
				return invalidGone
			}
			v = invalidStale
		}
	}
	if v == valid {
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

// RemoveByTag invalidates every entry that carries one of tags and was
// created before the call: such an entry is treated as expired when next
// read (still a fail-safe fallback). An unknown tag changes nothing.
func (c *Cache) RemoveByTag(ctx context.Context, tags ...string) error {
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
	now := stamp()
	c.invalidate(func(inv *invalidations) {
		for _, t := range tags {
			inv.tags[t] = tagInvalidation{at: max(now, inv.tags[t].at)}
		}
	})
	return nil
}

// Clear invalidates every entry of the cache created before the call. With
// allowFailSafe, entries are expired (still fail-safe fallbacks); without,
// they are removed.
func (c *Cache) Clear(ctx context.Context, allowFailSafe bool) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := stamp()
	c.invalidate(func(inv *invalidations) {
		inv.expireBefore = max(inv.expireBefore, now)
		if !allowFailSafe {
			inv.removeBefore = max(inv.removeBefore, now)
		}
	})
	return nil
}
