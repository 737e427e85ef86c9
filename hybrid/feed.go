package hybrid

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redisstore"
)

// FeedL2 is implemented by a distributed tier whose writes announce
// themselves: the store writes the backplane message of a change in the
// same transaction as the change (the etcd tier's change feed), so that no
// change can reach the store without its announcement.
//
// The cache checks for it once, in New, with a type assertion. When
// Announces(o.Backplane) is true, every write to the distributed tier
// carries its message in the context (see ChangeFromContext), and the cache
// publishes on the backplane itself only the changes the store did not
// announce (MarkAnnounced not called: no write happened, or the write
// failed).
type FeedL2 interface {
	L2
	// Announces reports whether the writes of this store reach the
	// receivers of bp: true only for the backplane that watches this
	// store's feed.
	Announces(bp backplane.Backplane) bool
}

// Change is the announcement of one write to the distributed tier, handed
// to a FeedL2 through the write's context.
type Change struct {
	// Message is what the cache would publish on the backplane for the
	// write. Message.Key is the cache key, without the key prefix.
	Message   backplane.Message
	bp        backplane.Backplane
	announced atomic.Bool
}

// Backplane returns the backplane the change is to be announced on: the
// one the store's Announces accepted.
func (ch *Change) Backplane() backplane.Backplane { return ch.bp }

// MarkAnnounced tells the cache that Message was written to the feed
// together with the change: the cache does not publish it again. Call it
// only once the transaction that holds Message has committed.
func (ch *Change) MarkAnnounced() { ch.announced.Store(true) }

type changeKey struct{}

// ChangeFromContext returns the announcement of the write in progress, for
// a FeedL2. ok is false when the write must not be announced (the change
// skips the backplane, or the store does not feed this cache's backplane).
func ChangeFromContext(ctx context.Context) (ch *Change, ok bool) {
	ch, ok = ctx.Value(changeKey{}).(*Change)
	return ch, ok
}

// applyFeed is apply, with the change's message in the context when the
// distributed tier announces its writes. announced reports whether the
// store wrote the message, so the cache must not publish it.
func (c *Cache) applyFeed(ctx context.Context, p pending) (written, announced bool, err error) {
	ch := c.change(p)
	if ch == nil {
		written, err = c.apply(ctx, p)
		return written, false, err
	}
	written, err = c.apply(context.WithValue(ctx, changeKey{}, ch), p)
	if err == nil && written && ch.announced.Load() {
		c.sentByFeed(p, ch)
		return true, true, nil
	}
	return written, false, err
}

// change returns the announcement of p for a distributed tier that
// announces its writes, or nil when the tier does not or p skips the
// backplane.
func (c *Cache) change(p pending) *Change {
	if !c.l2Feeds || p.skipBP {
		return nil
	}
	kind := p.bpKind
	if kind == 0 {
		kind = p.op.kind()
	}
	return &Change{Message: backplane.Message{Kind: kind, Cache: c.name, Key: p.key, Source: c.id, Timestamp: p.ts,
		Value: c.messageValue(&p)}, bp: c.bp}
}

// sentByFeed counts (and reports) p's message, which the distributed tier
// wrote with the change.
func (c *Cache) sentByFeed(p pending, ch *Change) {
	c.stats.bpPublished.Add(1)
	if c.ev != nil {
		c.emitBackplaneMessage(p.context(), p.key, DirectionSent, ch.Message.Kind, nil)
	}
}

// batchFeeder is a distributed tier that announces its writes (FeedL2) and
// writes a batch of changes, each with its announcement, in one round trip
// (RedisL2). changes is aligned with items; a nil change is written
// without one. The tier marks each change it announced (MarkAnnounced).
type batchFeeder interface {
	setManyAnnounced(ctx context.Context, items []L2Item, changes []*Change) (written []bool, errs []error)
}

// feeds reports whether l2 announces its writes on bp.
func feeds(l2 L2, bp backplane.Backplane) bool {
	f, ok := l2.(FeedL2)
	return ok && bp != nil && f.Announces(bp)
}

// Errors a distributed tier other than Redis wraps its errors with, so
// that the cache classifies them as it does Redis's: match with errors.Is.
var (
	// ErrL2Unavailable marks an error after which the same call may
	// succeed later (unreachable, timeout, no leader, overloaded): the
	// circuit breaker opens and writes are queued for auto-recovery.
	ErrL2Unavailable = errors.New("hybrid: distributed tier unavailable")
	// ErrL2Config marks an error that waiting will not fix (authentication
	// failed, permission denied): logged at Error, at most once a minute,
	// and not queued.
	ErrL2Config = errors.New("hybrid: distributed tier configuration error")
)

// classifyL2 is redisstore.Classify, extended with ErrL2Unavailable and
// ErrL2Config.
func classifyL2(err error) redisstore.Kind {
	switch {
	case err == nil:
		return redisstore.KindNone
	case errors.Is(err, context.Canceled):
		return redisstore.KindOther
	case errors.Is(err, ErrL2Config):
		return redisstore.KindConfig
	case errors.Is(err, ErrL2Unavailable):
		return redisstore.KindTransient
	}
	return redisstore.Classify(err)
}
