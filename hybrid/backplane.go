package hybrid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redisstore"
)

// newInstanceID returns a random id that tells this cache instance's
// backplane messages from the others'.
func newInstanceID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publish announces a change that reached the distributed tier (or the
// memory tier, without one). A publish that failed for a transient reason
// is queued for auto-recovery; one refused by configuration (NOPERM: the
// Redis user may not publish on the channel) is logged at Error, at most
// once a minute, and counted, but not queued: retrying cannot fix it, and
// it must not stop a healthy distributed tier.
func (c *Cache) publish(p pending) {
	if c.bp == nil {
		return
	}
	if err := c.publishNow(p); err != nil {
		if c.configError("publish", p.key, err) {
			return
		}
		c.log.Warn("backplane publish failed", c.keyAttr(p.key), c.errAttr(p.key, err))
		p.l2Done = true
		c.enqueue(p)
	}
}

// configError reports whether err is a configuration error (see
// redisstore.KindConfig), and if so logs it at Error at most once a minute
// and counts it.
func (c *Cache) configError(op, key string, err error) bool {
	if classifyL2(err) != redisstore.KindConfig {
		return false
	}
	c.stats.configErrors.Add(1)
	if c.configErrLog.allow() {
		c.log.Error("configuration error", slog.String("op", op), c.keyAttr(key), c.errAttr(key, err))
	}
	return true
}

// publishNow sends the message of p once.
func (c *Cache) publishNow(p pending) error {
	kind := p.bpKind
	if kind == 0 {
		kind = p.op.kind()
	}
	m := backplane.Message{Kind: kind, Cache: c.name, Key: p.key, Source: c.id, Timestamp: p.ts, Value: c.messageValue(&p)}
	pctx := p.context()
	sctx, span := c.startChild(pctx, SpanPublish, p.key)
	ctx, cancel := c.ioContext(sctx, &c.entry)
	err := c.bp.Publish(ctx, m)
	cancel()
	if span != nil {
		span.SetAttributes(slog.String(AttrMessageKind, kind.String()))
		span.End(c.spanErr(p.key, err))
	}
	if err != nil {
		c.stats.bpErrors.Add(1)
	} else {
		c.stats.bpPublished.Add(1)
	}
	if c.ev != nil {
		c.emitBackplaneMessage(pctx, p.key, DirectionSent, kind, err)
	}
	return err
}

// bpHandler receives the other instances' messages. It runs on the
// backplane's delivery goroutine and only touches the memory tier.
type bpHandler struct{ c *Cache }

// HandleMessage applies another instance's change to the memory tier,
// newest wins: a copy at least as new as the change is kept as it is.
//
//   - Set: the local copy is replaced by the entry the message carries
//     (Options.BackplaneValueMaxSize), or without one marked stale with
//     the change's timestamp, so the next read takes the new entry from
//     the distributed tier (and a read that raced the change cannot put
//     the old value back as fresh).
//   - Remove: the local copy is replaced by a tombstone.
//   - Expire: the local copy is marked stale (still a fail-safe fallback),
//     or replaced by a tombstone if it was written without fail-safe.
//
// When the key is not held but a load or a read of it is running, a
// tombstone keeps that read from storing what it fetched before the change.
func (h bpHandler) HandleMessage(m backplane.Message) {
	c := h.c
	if m.Source == c.id || m.Cache != c.name || m.Key == pingKey || c.closed.Load() {
		return
	}
	defer c.received(m) // counted once applied
	if isReserved(m.Key) {
		c.applyInvalidationMessage(m)
		return
	}
	// In-flight reads first, then memory: a read that ends between the two
	// checks has already stored its entry, and one that starts after the
	// first reads the distributed tier after the change (it is published
	// once the distributed tier has it).
	reading := c.readers.has(m.Key)
	e := c.l1.get(m.Key)
	switch {
	case e == nil:
		if reading {
			c.l1.set(newTombstone(m.Key, m.Timestamp))
		}
	case e.ts >= m.Timestamp:
		// The local copy is this change or a newer one.
	case m.Kind == backplane.KindSet && m.Value != "" && c.replaceFromMessage(m):
	case m.Kind == backplane.KindRemove || !e.fallbackWhenExpired():
		c.l1.set(newTombstone(m.Key, m.Timestamp))
	default:
		c.l1.set(expiredCopy(e, m.Timestamp, nowNano()))
	}
}

// received counts a message applied to the memory tier.
func (c *Cache) received(m backplane.Message) {
	c.stats.bpReceived.Add(1)
	if c.ev != nil {
		c.emitBackplaneMessage(context.Background(), m.Key, DirectionReceived, m.Kind, nil)
	}
}

// HandleGap is told that messages may have been lost (a reconnect, a full
// queue). Every entry written before now must be verified against the
// distributed tier before it is served again: the next read of such a key
// compares timestamps with the distributed tier and keeps the local copy
// only if it is still the newest. Nothing is reloaded eagerly.
func (h bpHandler) HandleGap() {
	c := h.c
	c.subscribed.Store(true) // a gap is reported once subscribed (again)
	c.stats.bpGaps.Add(1)
	now := stamp()
	c.clearKnown.Store(false) // a Clear may have been missed too: read its record again
	c.invalidate(func(inv *invalidations) { inv.verifyBefore = max(inv.verifyBefore, now) })
	c.log.Warn("backplane gap: entries from before it are verified before use")
	if c.ev != nil {
		c.emitBackplaneGap()
	}
}

// asyncSubscriber is a backplane whose subscription needs the network
// (backplane.Redis): StartSubscribe returns without waiting for Redis's
// confirmation (backplane.Redis waits at most 200 ms for its SUBSCRIBE to be
// sent), and ready is closed once the subscription is confirmed.
type asyncSubscriber interface {
	StartSubscribe(h backplane.Handler) (ready <-chan struct{}, err error)
}

// subscribe starts receiving. It never waits for the network unless wait
// is positive: with a backplane over Redis (asyncSubscriber) the
// subscription completes in the background while the cache serves from
// memory (Redis may be down at start-up). With wait > 0 it waits up to that
// long for the confirmation, then goes on regardless.
//
// Messages sent before the confirmation are not received, so when it comes
// after New returned, every entry written before it is verified against
// the distributed tier before it is served again (as after a gap, without
// the gap's warning and event: nothing was received yet to have a gap in).
//
// A backplane without StartSubscribe (the memory hub, a user's own) is
// subscribed synchronously, as its Subscribe says; a Subscribe timeout is
// not an error: the backplane keeps trying and reports a gap when it
// succeeds.
func (c *Cache) subscribe(wait time.Duration) error {
	if c.bp == nil {
		return nil
	}
	as, ok := c.bp.(asyncSubscriber)
	if !ok {
		err := c.bp.Subscribe(bpHandler{c})
		if err != nil && errors.Is(err, backplane.ErrSubscribeTimeout) {
			c.log.Warn("backplane subscription not confirmed yet", slog.Any("err", err))
			c.invalidate(func(inv *invalidations) { inv.verifyBefore = max(inv.verifyBefore, stamp()) })
			return nil
		}
		c.subscribed.Store(err == nil)
		return err
	}
	ready, err := as.StartSubscribe(bpHandler{c})
	if err != nil {
		return err
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ready:
			c.subscribed.Store(true)
			return nil // nothing stored yet: nothing to verify
		case <-t.C:
		}
	}
	c.wg.Go(func() { // ends on Close at the latest
		select {
		case <-ready:
			c.subscribed.Store(true)
			c.invalidate(func(inv *invalidations) { inv.verifyBefore = max(inv.verifyBefore, stamp()) })
		case <-c.ctx.Done():
		}
	})
	return nil
}

var _ backplane.Handler = bpHandler{}
