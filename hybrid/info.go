package hybrid

import (
	"context"
	"time"
)

// EntryInfo describes the entry that answered a TryGetInfo: what an HTTP
// front end needs for Age, ETag, Last-Modified and a stale marker.
type EntryInfo struct {
	// Created is when the value was created (for a factory result, when
	// the factory started): the entry's timestamp.
	Created time.Time
	// Stale reports a value past its logical expiry, served because the
	// read allowed it (AllowStaleOnRead).
	Stale bool
	// ETag and LastModified are what the factory stored with the value
	// (FactoryContext.SetETag, SetLastModified); empty and zero if none.
	ETag         string
	LastModified time.Time
}

// TryGetInfo is TryGet that also describes the entry it answered with.
// ok is false on a miss, and then info is zero. Errors as for TryGet.
func TryGetInfo[T any](ctx context.Context, c *Cache, key string, opts ...Option) (v T, info EntryInfo, ok bool, err error) {
	if err := c.check(ctx, key); err != nil {
		return v, info, false, err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return v, info, false, err
	}
	e, _ := c.hitL1(ctx, key, o)
	if e == nil {
		if e, err = tryGetEntry[T](ctx, c, key, o); e == nil || err != nil {
			return v, info, false, err
		}
	}
	if v, ok, err = typedValue[T](key, e); !ok || err != nil {
		return v, info, ok, err
	}
	info = EntryInfo{Created: time.Unix(0, e.ts), Stale: !e.fresh(nowNano()), ETag: e.etag(), LastModified: unixTime(e.lastMod())}
	return v, info, true, nil
}

// BackplaneSubscribed reports whether the cache's backplane subscription
// has been confirmed (false before that, for example while Redis is down
// at start-up; New does not wait for it). A cache without a backplane
// reports false.
func (c *Cache) BackplaneSubscribed() bool { return c.subscribed.Load() }
