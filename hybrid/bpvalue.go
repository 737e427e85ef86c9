package hybrid

import (
	"sync/atomic"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/serializer"
)

// Set messages that carry the entry (Options.BackplaneValueMaxSize): the
// writer puts the envelope it wrote to the distributed tier in its
// backplane message when it is small, and a receiver that holds an older
// copy of the key replaces it with the message's entry instead of marking
// it stale, sparing the read of the distributed tier that would follow.
// A receiver that does not hold the key ignores the value (it does not fill
// its memory with keys it never asked for).

// DefaultBackplaneValueMaxSize is the largest encoded entry a Set's
// backplane message carries when Options.BackplaneValueMaxSize is zero.
const DefaultBackplaneValueMaxSize = 4 << 10

// messageValue returns what p's backplane message carries: the envelope of
// a Set small enough, else "". A tag or Clear record (written as a set,
// announced as an Expire or Remove of its reserved key) carries nothing:
// its receivers need only the message's timestamp.
func (c *Cache) messageValue(p *pending) string {
	if p.op != opSet || p.bpKind != 0 && p.bpKind != backplane.KindSet ||
		p.noValue || len(p.val) == 0 || len(p.val) > c.bpValueMax {
		return ""
	}
	return string(p.val)
}

// lazyValue is the value of an entry that arrived in a backplane message:
// the receiver does not know its Go type, so it keeps the serialized bytes
// and the first reader of the right type decodes them, once; later
// readers share that decoded value, as they share any entry's value.
type lazyValue struct {
	raw     []byte
	ser     serializer.Serializer
	typ     string       // typeName of the value's type
	decoded atomic.Value // a *T, once decoded
}

// lazyOf returns val's value as a T if it is a lazyValue of T.
func lazyOf[T any](val any) (v T, ok bool) {
	lv, isLazy := val.(*lazyValue)
	if !isLazy {
		return v, false
	}
	if p, ok := lv.decoded.Load().(*T); ok {
		return *p, true // decoded: no type name to compare
	}
	if lv.typ != typeName[T]() {
		return v, false
	}
	p := new(T)
	if err := unmarshal(lv.ser, lv.raw, p); err != nil {
		return v, false
	}
	if !lv.decoded.CompareAndSwap(nil, p) {
		p = lv.decoded.Load().(*T) // another reader decoded it first: share its copy
	}
	return *p, true
}

// fromMessage returns the entry a Set message carries, to replace the
// local copy, or nil when it carries none or one this cache cannot use (it
// is then handled as a message without a value).
func (c *Cache) fromMessage(key string, ts int64, value string) *entry {
	if value == "" {
		return nil
	}
	env, err := envelope.Decode([]byte(value))
	switch {
	case err != nil:
		c.log.Warn("backplane message value unreadable", c.keyAttr(key), c.errAttr(key, err))
		return nil
	case env.Removed || env.Timestamp != ts:
		c.log.Warn("backplane message value is not the message's write", c.keyAttr(key))
		return nil
	}
	if err := c.inflate(&env); err != nil {
		c.log.Warn("backplane message value unusable", c.keyAttr(key), c.errAttr(key, err))
		return nil
	}
	// The entry is known to be the newest as of its write, not as of now:
	// the dispatcher may apply a message after a gap that came later
	// (messages queued before a dropped one are delivered after the gap is
	// handled), and an entry verified as of now would pass the gap's check
	// while a later change of the key was lost.
	now := stamp()
	if env.NotFound {
		return notFoundFromL2(key, &env, &c.entry, now, env.Timestamp)
	}
	x, h, freshUntil, physUntil := fromL2Parts(&env, &c.entry, now)
	e := allocBare(&x)
	e.key, e.ts, e.verified = key, env.Timestamp, env.Timestamp
	e.freshUntil, e.l2Fresh, e.physUntil = freshUntil, env.FreshUntil, physUntil
	if c.entry.AutoClone {
		e.value = &autoClone{raw: env.Value, ser: c.ser, typ: env.Type}
	} else {
		e.value = &lazyValue{raw: env.Value, ser: c.ser, typ: env.Type}
	}
	e.setHit(h)
	return e
}

// replaceFromMessage stores the entry m carries in place of the older
// local copy; false when m's value is of no use here.
func (c *Cache) replaceFromMessage(m backplane.Message) bool {
	e := c.fromMessage(m.Key, m.Timestamp, m.Value)
	if e == nil {
		return false
	}
	c.l1.set(e)
	c.stats.bpValues.Add(1)
	return true
}
