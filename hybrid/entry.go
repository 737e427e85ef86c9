package hybrid

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/strata-cache/strata/serializer"
)

// entry is what the memory tier holds. It is immutable once stored, except
// for checked; a change (expire, throttle) stores a modified copy.
//
// The fields a hit reads come last, right before the value, which lives in
// the same allocation (see typedEntry): a hit on a key not in the CPU's
// caches then costs as few memory round trips as possible. What most
// entries do not have (an ETag, a last-modified time, tags, a validity
// timestamp other than ts) lives in ext, and what a hit may have to do
// besides returning the value (eager refresh, sliding expiration) in hit:
// both nil for the common entry, and in the entry's allocation when set.
// The type name written to the distributed tier is derived from the value
// (see typ), and a tombstone is the entry without a value.
type entry struct {
	key       string
	ext       *entryExt // nil: no ETag, last-modified, tags; vts is ts
	ts        int64     // creation time, unix ns: newest wins
	verified  int64     // known to be the newest as of then (backplane gaps)
	l2Fresh   int64     // logical expiry as written to the distributed tier
	physUntil int64     // physical expiry, unix ns: usable as a fail-safe fallback until then

	freshUntil int64  // logical expiry, unix ns (memory tier: capped by L1Duration)
	hit        *onHit // eager refresh, sliding expiration; nil (the common case) = neither
	// checked is the cache generation at which this entry was last found
	// valid against tag invalidations, Clear and backplane gaps. When it
	// equals the cache's generation, the hit path skips those checks.
	checked atomic.Uint64
	value   any // *T, pointing at the typedEntry's v; nil: a tombstone (see tombstone)
}

// onHit is what a hit on an entry may have to do besides returning its
// value. Like ext, it is immutable once stored.
type onHit struct {
	eagerAt int64   // a hit from then on starts an eager refresh; 0 = off
	slide   sliding // sliding expiration; window 0 = off
}

// tombstone reports whether e is a removal: a miss that still wins over
// older writes. It is the entry without a value.
func (e *entry) tombstone() bool { return e.value == nil }

// eagerDue reports whether a hit at now starts an eager refresh of e.
func (e *entry) eagerDue(now int64) bool {
	h := e.hit
	return h != nil && h.eagerAt != 0 && now >= h.eagerAt
}

// eagerAt returns when a hit starts an eager refresh of e (0 = off).
func (e *entry) eagerAt() int64 {
	if e.hit == nil {
		return 0
	}
	return e.hit.eagerAt
}

// noEager turns e's eager refresh off (e is a clone not stored yet).
func (e *entry) noEager() {
	if e.eagerAt() != 0 {
		e.setHit(onHit{slide: e.hit.slide})
	}
}

// sliding returns e's sliding expiration, or nil when it has none.
func (e *entry) sliding() *sliding {
	if e.hit == nil || e.hit.slide.window == 0 {
		return nil
	}
	return &e.hit.slide
}

// setSlide sets e's sliding expiration (a zero s: none; e is a clone not
// stored yet).
func (e *entry) setSlide(s sliding) {
	e.setHit(onHit{eagerAt: e.eagerAt(), slide: s})
}

// setHit gives e a new onHit h (nil when h is empty), shared with no one.
func (e *entry) setHit(h onHit) {
	e.hit = nil
	if h != (onHit{}) {
		e.hit = &h
	}
}

// entryExt is the part of an entry that most entries do not have. Like
// the entry, it is immutable once stored: clones share it, and a change
// makes a new one (see withVTS).
type entryExt struct {
	etag    string
	lastMod int64 // unix ns, 0 = none
	tags    []string
	typ     string // the type name of a "not found" entry (it holds no T)
	vts     int64  // compared with invalidations (Clear, tags); 0 = ts
	size    int64  // EntryOptions.Size when not 1 (0 = 1): what every copy of the entry costs in memory
}

// empty reports whether x holds nothing, so that an entry needs no ext.
func (x *entryExt) empty() bool {
	return x.etag == "" && x.lastMod == 0 && len(x.tags) == 0 && x.typ == "" && x.vts == 0 && x.size == 0
}

// size returns e's cost in the memory tier: the Size it was written with.
// Every copy of e (Expire, a backplane message marking it stale, a
// fail-safe throttle, a sliding extension) keeps it, whatever the options
// of the call that makes the copy.
func (e *entry) size() int64 {
	if e.ext == nil || e.ext.size == 0 {
		return 1
	}
	return e.ext.size
}

// extSize is what entryExt.size records for an entry of Size s: 0 for
// the default 1, so that the common entry needs no ext.
func extSize(s int64) int64 {
	if s <= 1 {
		return 0
	}
	return s
}

// etag returns e's ETag ("" = none).
func (e *entry) etag() string {
	if e.ext == nil {
		return ""
	}
	return e.ext.etag
}

// lastMod returns e's last-modified time, unix ns (0 = none).
func (e *entry) lastMod() int64 {
	if e.ext == nil {
		return 0
	}
	return e.ext.lastMod
}

// tags returns e's tags.
func (e *entry) tags() []string {
	if e.ext == nil {
		return nil
	}
	return e.ext.tags
}

// vts is the timestamp compared with invalidations (Clear, tags): ts,
// unless a fail-safe throttle renewed it or the entry is an expired copy
// read from the distributed tier (its creation time).
func (e *entry) vts() int64 {
	if e.ext == nil || e.ext.vts == 0 {
		return e.ts
	}
	return e.ext.vts
}

// withVTS sets e's validity timestamp (e is a clone not stored yet); its
// ext, shared with the original, is copied.
func (e *entry) withVTS(vts int64) {
	var x entryExt
	if e.ext != nil {
		x = *e.ext
	}
	x.vts = vts
	if vts == e.ts {
		x.vts = 0
	}
	e.ext = nil
	if !x.empty() {
		e.ext = &x
	}
}

// typ returns the type name of e's value (typeName of T) for the
// distributed tier's envelope: the value is a *T (or an auto-clone value,
// which records it); a "not found" entry keeps it in ext. It is derived on
// each write to the distributed tier rather than stored in every entry.
func (e *entry) typ() string {
	switch v := e.value.(type) {
	case *autoClone:
		return v.typ
	case *lazyValue:
		return v.typ
	case *notFound, nil:
		if e.ext != nil {
			return e.ext.typ
		}
		return ""
	}
	if t := reflect.TypeOf(e.value); t.Kind() == reflect.Pointer {
		return t.Elem().String()
	}
	return "" // an internal marker (a tag check), never written to the distributed tier
}

// typedEntry puts an entry and its value in one allocation, so that the
// value is not a separate object behind an interface.
type typedEntry[T any] struct {
	entry
	v T
}

// allocEntry returns the entry of a new typedEntry holding v, with x as
// its ext and h as its onHit (each copied into the same allocation) unless
// they are empty.
func allocEntry[T any](v T, x *entryExt, h *onHit) *entry {
	hasX, hasH := x != nil && !x.empty(), h != nil && *h != (onHit{})
	switch {
	case !hasX && !hasH:
		te := &typedEntry[T]{v: v}
		te.value = &te.v
		return &te.entry
	case !hasH:
		te := &typedEntryExt[T]{typedEntry: typedEntry[T]{v: v}, x: *x}
		te.value, te.ext = &te.v, &te.x
		return &te.entry
	case !hasX:
		te := &typedEntryHit[T]{typedEntry: typedEntry[T]{v: v}, h: *h}
		te.value, te.hit = &te.v, &te.h
		return &te.entry
	default:
		te := &typedEntryExtHit[T]{typedEntry: typedEntry[T]{v: v}, x: *x, h: *h}
		te.value, te.ext, te.hit = &te.v, &te.x, &te.h
		return &te.entry
	}
}

// typedEntryExt is a typedEntry and its ext in one allocation.
type typedEntryExt[T any] struct {
	typedEntry[T]
	x entryExt
}

// typedEntryHit is a typedEntry and its onHit in one allocation.
type typedEntryHit[T any] struct {
	typedEntry[T]
	h onHit
}

// typedEntryExtHit is a typedEntry, its ext and its onHit in one
// allocation.
type typedEntryExtHit[T any] struct {
	typedEntry[T]
	x entryExt
	h onHit
}

// entryWithExt is an untyped entry (a "not found") and its ext in one
// allocation.
type entryWithExt struct {
	entry
	x entryExt
}

// allocBare returns a new entry without a value, with x as its ext (in the
// same allocation) unless x is empty.
func allocBare(x *entryExt) *entry {
	if x == nil || x.empty() {
		return &entry{}
	}
	ee := &entryWithExt{x: *x}
	ee.ext = &ee.x
	return &ee.entry
}

// valueOf returns e's value as a T; ok is false when e holds another type.
// An auto-clone entry gives a new copy, decoded from its bytes.
func valueOf[T any](e *entry) (v T, ok bool) {
	return valueAs[T](e.value)
}

// valueAs returns val (an entry's value: a *T, or an *autoClone) as a T.
func valueAs[T any](val any) (v T, ok bool) {
	p, ok := val.(*T)
	if !ok {
		return cloneOf[T](val)
	}
	return *p, true
}

// autoClone is the value of an entry written with EntryOptions.AutoClone:
// the value serialized once, decoded anew for every reader, so that a
// reader that changes its copy (a slice, a map, a pointer's target)
// cannot change another's.
type autoClone struct {
	raw []byte
	ser serializer.Serializer
	typ string // typeName of the value's type
}

// cloneOf decodes a new T from val if it is an auto-clone value of T.
func cloneOf[T any](val any) (v T, ok bool) {
	if _, isLazy := val.(*lazyValue); isLazy {
		return lazyOf[T](val)
	}
	ac, isClone := val.(*autoClone)
	if !isClone || ac.typ != typeName[T]() {
		return v, false
	}
	if err := unmarshal(ac.ser, ac.raw, &v); err != nil {
		return v, false
	}
	return v, true
}

// unmarshal is ser.Unmarshal with a panic of the serializer turned into
// an error. A decoder may panic rather than fail: msgpack does when the
// target is an interface type (T = fmt.Stringer) that the decoded value
// cannot be assigned to. What the cache decodes is bytes it stored or
// read, never the caller's code: it must not crash the caller.
func unmarshal(ser serializer.Serializer, data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hybrid: unmarshal into %T panicked: %v", v, r)
		}
	}()
	return ser.Unmarshal(data, v)
}

// marshal is ser.Marshal(v) with a panic of the serializer (a custom one,
// or a value it cannot handle) turned into an error: the write fails and
// stores nothing, as for a value the serializer refuses.
func marshal(ser serializer.Serializer, v any) (raw []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			raw, err = nil, fmt.Errorf("hybrid: marshal of %T panicked: %v", v, r)
		}
	}()
	return ser.Marshal(v)
}

// makeAutoClone turns e, holding v, into an auto-clone entry when o asks
// for it: v is serialized once, here.
func makeAutoClone[T any](e *entry, v T, o *EntryOptions, ser serializer.Serializer) error {
	if !o.AutoClone {
		return nil
	}
	raw, err := marshal(ser, v)
	if err != nil {
		return fmt.Errorf("hybrid: serialize %q for auto-clone: %w", e.key, err)
	}
	if reflect.TypeFor[T]().Kind() == reflect.Interface {
		// A serializer encodes the dynamic value but cannot decode into
		// an interface type (other than any): every read of the copy
		// would fail. Refuse it now, storing nothing.
		var probe T
		if err := unmarshal(ser, raw, &probe); err != nil {
			return fmt.Errorf("hybrid: serialize %q for auto-clone: %T does not decode back into %s: %w", e.key, v, typeName[T](), err)
		}
	}
	e.value = &autoClone{raw: raw, ser: ser, typ: typeName[T]()}
	return nil
}

// fresh reports whether e can be returned as a fresh hit at now.
func (e *entry) fresh(now int64) bool {
	return now < e.freshUntil && !e.tombstone()
}

// usableStale reports whether e can serve as a fail-safe fallback at now.
// A cached "not found" cannot.
func (e *entry) usableStale(now int64) bool {
	return e != nil && !e.tombstone() && now < e.physUntil && e.value != notFoundValue
}

// fallbackWhenExpired reports whether e, made stale before its time (by
// Expire, or another node's), remains a fail-safe fallback: only a value
// written with fail-safe, whose physical expiry lies past its logical one.
// An entry written without it (or a cached "not found") has nothing to
// fall back on once expired, whenever that happens.
func (e *entry) fallbackWhenExpired() bool {
	return !e.tombstone() && e.value != notFoundValue && e.physUntil > e.l2Fresh
}

// failSafePhys is the physical expiry of an entry written with fail-safe,
// fresh being its logical expiry and limit the end of FailSafeMaxDuration:
// the later of the two, and past fresh even when FailSafeMaxDuration is the
// shorter (then the entry lives for its Duration), so that such an entry
// is told apart from one written without fail-safe (fallbackWhenExpired).
func failSafePhys(fresh, limit int64) int64 {
	p := max(fresh, limit)
	if p == fresh && p < math.MaxInt64 {
		p++
	}
	return p
}

// notFound is the value of a cached "not found" (FactoryContext.NotFound).
type notFound struct{}

// notFoundValue is the value of every "not found" entry; reading it as any
// T gives ErrNotFound (see mismatch).
var notFoundValue any = &notFound{}

// newNotFound is the entry of a "not found" answered for key by a factory
// that started at ts, stored at now, cached for o.NotFoundDuration.
func newNotFound[T any](key string, ts, now int64, o *EntryOptions) *entry {
	until := after(now, o.NotFoundDuration)
	e := allocBare(&entryExt{typ: typeName[T](), tags: o.Tags, size: extSize(o.Size)})
	e.key, e.ts, e.verified = key, ts, ts
	e.freshUntil, e.l2Fresh, e.physUntil, e.value = until, until, until, notFoundValue
	return e
}

// newer reports whether e was created after o (a nil o is older than anything).
func (e *entry) newer(o *entry) bool {
	return o == nil || e.ts > o.ts
}

// clone returns a copy of e that can be modified and stored again.
func (e *entry) clone() *entry {
	return &entry{
		key: e.key, value: e.value, ext: e.ext, ts: e.ts, verified: e.verified, freshUntil: e.freshUntil, l2Fresh: e.l2Fresh,
		physUntil: e.physUntil, hit: e.hit,
	}
}

// sliding is the sliding expiration of an entry (EntryOptions.
// SlidingDuration): a hit from at on extends freshness to window past the
// hit, never past max. (The copy an extension stores keeps the entry's
// Size: entry.size.)
type sliding struct {
	at, window, max int64
}

// newSliding returns the sliding state of an entry fresh until fresh.
func newSliding(fresh, window, limit int64) sliding {
	return sliding{at: fresh - window/2, window: window, max: limit}
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
		d = addDur(d, time.Duration(rand.Int64N(int64(o.JitterMaxDuration))))
	}
	fresh := after(now, d)
	freshUntil, l2Fresh := fresh, fresh
	if o.L1Duration > 0 && o.L1Duration < d {
		freshUntil = after(now, o.L1Duration)
	}
	// x and h are copied by allocEntry: they do not escape.
	var x *entryExt
	if m.etag != "" || m.lastMod != 0 || len(o.Tags) > 0 || o.Size > 1 {
		x = &entryExt{etag: m.etag, lastMod: m.lastMod, tags: o.Tags, size: extSize(o.Size)}
	}
	var h onHit
	if o.EagerRefreshThreshold > 0 {
		h.eagerAt = after(now, scaleDur(d, o.EagerRefreshThreshold))
	}
	if o.SlidingDuration > 0 {
		freshUntil = min(freshUntil, after(now, o.SlidingDuration))
		l2Fresh = freshUntil
		h.slide = newSliding(freshUntil, int64(o.SlidingDuration), fresh)
	}
	// Without fail-safe the physical expiry is the logical one: for a
	// sliding entry the end of its window (an extension moves both), not
	// its absolute limit, or an entry left unread past its window would
	// still be a fallback (AllowStaleOnRead, a call with fail-safe on).
	phys := l2Fresh
	if o.FailSafe {
		phys = failSafePhys(fresh, after(now, o.FailSafeMaxDuration))
	}
	e := allocEntry(v, x, &h)
	e.key, e.ts, e.verified = key, ts, ts
	e.freshUntil, e.l2Fresh, e.physUntil = freshUntil, l2Fresh, phys
	return e
}

// tombstoneTTL is how long a removal is remembered in the memory tier, so
// that a read that raced it cannot put the old value back.
const tombstoneTTL = time.Minute

// newTombstone returns a removal of key at ts, remembered for tombstoneTTL
// from now: ts may come from another node's clock (a backplane message, the
// distributed tier) or from before a step of this one's, and a removal
// stamped more than tombstoneTTL behind this node's clock would be
// forgotten at once, letting a read that raced it put the old value back.
func newTombstone(key string, ts int64) *entry {
	return &entry{key: key, ts: ts, verified: ts, physUntil: after(nowNano(), tombstoneTTL)} // no value: a tombstone
}
