package hybrid

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// entry is what the memory tier holds. It is immutable once stored, except
// for checked; a change (expire, throttle) stores a modified copy.
type entry struct {
	key        string
	value      any    // the caller's T, boxed once when stored
	typ        string // typeName of T, for the distributed tier
	ts         int64  // creation time, unix ns: newest wins
	vts        int64  // compared with invalidations (Clear, tags); ts unless noted
	verified   int64  // known to be the newest as of then (backplane gaps)
	freshUntil int64  // logical expiry, unix ns (memory tier: capped by L1Duration)
	l2Fresh    int64  // logical expiry as written to the distributed tier
	physUntil  int64  // physical expiry, unix ns: usable as a fail-safe fallback until then
	eagerAt    int64  // a hit from then on starts an eager refresh; 0 = off
	lastMod    int64  // unix ns, 0 = none
	etag       string
	tags       []string
	tombstone  bool // a removal: a miss that still wins over older writes

	// checked is the cache generation at which this entry was last found
	// valid against tag invalidations, Clear and backplane gaps. When it
	// equals the cache's generation, the hit path skips those checks.
	checked atomic.Uint64
}

// fresh reports whether e can be returned as a fresh hit at now.
func (e *entry) fresh(now int64) bool {
	return !e.tombstone && now < e.freshUntil
}

// usableStale reports whether e can serve as a fail-safe fallback at now.
func (e *entry) usableStale(now int64) bool {
	return e != nil && !e.tombstone && now < e.physUntil
}

// newer reports whether e was created after o (a nil o is older than anything).
func (e *entry) newer(o *entry) bool {
	return o == nil || e.ts > o.ts
}

// clone returns a copy of e that can be modified and stored again.
func (e *entry) clone() *entry {
	return &entry{
		key: e.key, value: e.value, typ: e.typ, ts: e.ts, vts: e.vts, verified: e.verified, freshUntil: e.freshUntil, l2Fresh: e.l2Fresh,
		physUntil: e.physUntil, eagerAt: e.eagerAt, lastMod: e.lastMod, etag: e.etag,
		tags: e.tags, tombstone: e.tombstone,
	}
}

// meta is what a factory or Set may attach to a value.
type meta struct {
	etag    string
	lastMod int64
}

// newEntry builds the entry for value v created at ts and stored at now
// with the options o (defaults already applied).
func newEntry[T any](key string, v T, ts, now int64, o *EntryOptions, m meta) *entry {
	d := o.Duration
	if o.JitterMaxDuration > 0 {
		d += time.Duration(rand.Int64N(int64(o.JitterMaxDuration)))
	}
	fresh := now + int64(d)
	phys := fresh
	if o.FailSafe {
		phys = max(fresh, now+int64(o.FailSafeMaxDuration))
	}
	e := &entry{
		key: key, value: v, typ: typeName[T](), ts: ts, vts: ts, verified: ts, freshUntil: fresh, l2Fresh: fresh, physUntil: phys,
		lastMod: m.lastMod, etag: m.etag, tags: o.Tags,
	}
	if o.L1Duration > 0 && o.L1Duration < d {
		e.freshUntil = now + int64(o.L1Duration)
	}
	if o.EagerRefreshThreshold > 0 {
		e.eagerAt = now + int64(float64(d)*o.EagerRefreshThreshold)
	}
	return e
}

// tombstoneTTL is how long a removal is remembered in the memory tier, so
// that a read that raced it cannot put the old value back.
const tombstoneTTL = time.Minute

func newTombstone(key string, ts int64) *entry {
	return &entry{key: key, ts: ts, vts: ts, verified: ts, tombstone: true, physUntil: ts + int64(tombstoneTTL)}
}
