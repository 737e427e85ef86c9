package hybrid

import (
	"context"
	"log/slog"
	"slices"
	"time"
	"unsafe"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redisstore"
)

// BatchL2 is an L2 that reads and writes many keys in one round trip. The
// batch functions (GetOrSetMany, TryGetMany, SetMany, RemoveMany) use it
// when Options.L2 implements it, as NewRedisL2's store does; with a plain
// L2 they fall back to one call per key.
type BatchL2 interface {
	L2
	// GetMany returns the values at keys, aligned with keys (nil: no value).
	// errs is nil when every key was read, else aligned with keys: a key
	// with an error counts as unread, the others are used.
	GetMany(ctx context.Context, keys []string) (vals [][]byte, errs []error)
	// SetMany writes each item newest-wins, as L2.Set does. written and
	// errs are aligned with items; errs is nil when no write failed.
	SetMany(ctx context.Context, items []L2Item) (written []bool, errs []error)
}

// L2Item is one write of BatchL2.SetMany: the envelope Value at Key (already
// prefixed) with the physical lifetime TTL.
type L2Item = redisstore.Item

var (
	_ BatchL2 = (*redisstore.Store)(nil)
	_ BatchL2 = (*RedisL2)(nil)
)

// getL2Many reads the raw values of keys (not prefixed), bounded by
// timeout (0: none) and by ctx's L2 budget, if any (withL2Budget). A key that could not be read (timeout, open breaker,
// error) is nil, as a miss is, and true in unanswered (nil when the tier
// answered for every key: see readL2's answered). An error is logged and
// counted once per call, not once per key.
func (c *Cache) getL2Many(ctx context.Context, keys []string, timeout time.Duration) (vals [][]byte, unanswered []bool) {
	timeout, spent := budgetLeft(ctx, timeout)
	if spent && len(keys) > 0 {
		c.l2ReadCut(ctx, nil, keys[0], context.DeadlineExceeded) // once per call, no span: no call is made
	}
	if spent || c.l2 == nil || len(keys) == 0 || !c.breaker.allow() {
		unanswered = make([]bool, len(keys))
		for i := range unanswered {
			unanswered[i] = true
		}
		return make([][]byte, len(keys)), unanswered
	}
	var span Span
	var failed error // the span's error: a failure of the tier, not a timeout
	failedKey := ""
	if c.tr != nil {
		ctx, span = c.startChild(ctx, SpanL2Get, "")
		defer func() {
			hit := true // every key had a value
			for _, b := range vals {
				hit = hit && b != nil
			}
			span.SetAttributes(slog.String(AttrTier, TierL2.String()), slog.Bool(AttrHit, hit))
			span.End(c.spanErr(failedKey, failed))
		}()
	}
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	full := c.prefixed(keys)
	var errs []error
	if bl, isBatch := c.l2.(BatchL2); isBatch {
		began := nowNano()
		vals, errs = bl.GetMany(rctx, full)
		if c.ev != nil {
			c.emitL2Call(ctx, "get-many", "", time.Duration(nowNano()-began), firstErr(errs))
		}
	} else {
		vals = make([][]byte, len(keys))
		for i, k := range full {
			b, err := c.l2.Get(rctx, k)
			if err != nil {
				if errs == nil {
					errs = make([]error, len(keys))
				}
				errs[i] = err
				continue
			}
			vals[i] = b
		}
	}
	var first error
	firstKey := ""
	for i := range errs {
		if errs[i] != nil {
			if first == nil {
				first, firstKey = errs[i], keys[i]
				unanswered = make([]bool, len(keys))
			}
			vals[i] = nil
			unanswered[i] = true
		}
	}
	if first == nil {
		c.breaker.succeeded()
		return vals, nil
	}
	dl, hasDL := rctx.Deadline()
	if rctx.Err() != nil || hasDL && !time.Now().Before(dl) {
		c.l2ReadCut(ctx, span, firstKey, first)
		return vals, unanswered
	}
	failed, failedKey = first, firstKey
	c.l2Failed(ctx, "get", firstKey, first)
	return vals, unanswered
}

// prefixed returns keys with the cache's prefix, in two allocations for
// the call (the slice, and one buffer holding every key) rather than one
// per key. The strings are views of the buffer, which nothing writes
// after.
func (c *Cache) prefixed(keys []string) []string {
	if c.prefix == "" {
		return keys
	}
	n := 0
	for _, k := range keys {
		n += len(c.prefix) + len(k)
	}
	buf := make([]byte, 0, n)
	full := make([]string, len(keys))
	for i, k := range keys {
		start := len(buf)
		buf = append(buf, c.prefix...)
		buf = append(buf, k...)
		full[i] = unsafe.String(&buf[start], len(buf)-start)
	}
	return full
}

// propagateMany is propagate for many changes: one pipelined write to the
// distributed tier, then one batch of backplane notifications.
func (c *Cache) propagateMany(ps []pending, o *EntryOptions) {
	if len(ps) == 0 {
		return
	}
	skip := o.SkipBackplane || c.bp == nil
	for i := range ps {
		ps[i].skipBP = skip
	}
	if c.l2 == nil || o.SkipL2Write {
		if skip {
			return
		}
		if o.BackgroundL2Operations && c.goBackground(ps[0].ctx, func() { c.publishMany(ps) }) {
			return
		}
		c.publishMany(ps)
		return
	}
	if o.BackgroundL2Operations && c.writeInBackground(func() { c.writeL2Many(ps, o) }, ps...) {
		return
	}
	c.writeL2Many(ps, o)
}

// writeL2Many writes changes to the distributed tier, as writeL2 does for
// one: the sets and the removals (removal records, as writeRemoval writes
// them) in one BatchL2.SetMany, anything else one by one (apply). When the
// tier announces its writes (FeedL2) and can do so for a batch (RedisL2
// with the backplane on its client: batchFeeder), the batch carries each
// change's message, still one round trip. A change
// that fails on a transient error is queued for auto-recovery; one the
// tier refused because it holds a newer change is not announced, and the
// local copy of a refused set is marked stale (lostToNewer).
func (c *Cache) writeL2Many(ps []pending, o *EntryOptions) {
	bf, canFeedBatch := c.l2.(batchFeeder)
	feedBatch := c.l2Feeds && canFeedBatch // the batch carries the messages
	if c.l2Feeds && !feedBatch {
		// A tier that announces its own writes (FeedL2) but has no batch
		// write for them: each change goes through writeL2, which hands it
		// the announcement.
		for _, p := range ps {
			c.writeL2(p, o)
		}
		return
	}
	if !c.breaker.allow() {
		for _, p := range ps {
			c.enqueue(p)
		}
		return
	}
	pctx := context.Background() // the first change's operation (its span)
	if len(ps) > 0 {
		pctx = ps[0].context()
	}
	// One span for the call's writes, as writeL2 has for one.
	sctx, span := pctx, Span(nil)
	var failed error // the span's error: the first write that failed
	failedKey := ""
	announcedAny := false
	if c.tr != nil && len(ps) > 0 {
		sctx, span = c.startChild(pctx, SpanL2Set, "")
	}
	ctx, cancel := c.ioContext(sctx, o)
	defer cancel()
	done := make([]pending, 0, len(ps))
	bl, isBatch := c.l2.(BatchL2) // (a batchFeeder is one too)
	var batched []int
	var items []L2Item
	var changes []*Change // with feedBatch: the announcement of each item
	batch := func(i int, it L2Item) {
		batched = append(batched, i)
		items = append(items, it)
		if feedBatch {
			changes = append(changes, c.change(ps[i]))
		}
	}
	now := nowNano()
	for i, p := range ps {
		if isBatch {
			switch p.op {
			case opSet:
				if p.physUntil-now > 0 { // else expired while waiting: nothing to write
					batch(i, L2Item{Key: c.prefix + p.key, Value: p.val, TTL: time.Duration(p.physUntil - now)})
				}
				continue
			case opRemove:
				batch(i, removalItem(c.prefix+p.key, p.ts))
				continue
			}
		}
		written, announced, err := c.applyFeed(ctx, p)
		if err != nil {
			if failed == nil {
				failed, failedKey = err, p.key
			}
			c.l2Failed(p.context(), p.op.String(), p.key, err)
			if transient(err) {
				c.enqueue(p)
			}
			continue
		}
		c.breaker.succeeded()
		if !written {
			c.lostToNewer(p)
			continue
		}
		if !announced {
			done = append(done, p)
		} else {
			announcedAny = true
		}
	}
	if len(items) > 0 {
		began := nowNano()
		var written []bool
		var errs []error
		if feedBatch {
			written, errs = bf.setManyAnnounced(ctx, items, changes)
		} else {
			written, errs = bl.SetMany(ctx, items)
		}
		if c.ev != nil {
			c.emitL2Call(ps[batched[0]].context(), "set-many", "", time.Duration(nowNano()-began), firstErr(errs))
		}
		logged := false
		for j, i := range batched {
			if errs != nil && errs[j] != nil {
				if failed == nil {
					failed, failedKey = errs[j], ps[i].key
				}
				if !logged { // one log line and one breaker trip per call
					c.l2Failed(ps[i].context(), ps[i].op.String(), ps[i].key, errs[j])
					logged = true
				}
				if transient(errs[j]) {
					c.enqueue(ps[i])
				}
				continue
			}
			if !written[j] {
				c.lostToNewer(ps[i])
				continue
			}
			if feedBatch && changes[j] != nil && changes[j].announced.Load() {
				c.sentByFeed(ps[i], changes[j])
				announcedAny = true
				continue
			}
			done = append(done, ps[i])
		}
		if !logged {
			c.breaker.succeeded()
		}
	}
	if span != nil {
		span.SetAttributes(slog.String(AttrTier, TierL2.String()))
		if op := ps[0].op; !slices.ContainsFunc(ps, func(p pending) bool { return p.op != op }) {
			span.SetAttributes(slog.String(AttrOp, op.String())) // one kind of change
		}
		if announcedAny {
			span.SetAttributes(slog.Bool(AttrAnnounced, true))
		}
		span.End(c.spanErr(failedKey, failed))
	}
	c.publishMany(done)
}

// removalItem is the removal record of key at ts, as writeRemoval writes it.
func removalItem(key string, ts int64) L2Item {
	env := envelope.Envelope{Timestamp: ts, FreshUntil: ts, Removed: true}
	return L2Item{Key: key, Value: env.Append(nil), TTL: removalTTL}
}

// publishMany announces changes that reached the distributed tier (or the
// memory tier, without one), in one BatchPublisher.PublishBatch when the
// backplane has it. Failed notifications are queued for auto-recovery,
// except those refused by configuration (see publish).
func (c *Cache) publishMany(ps []pending) {
	if c.bp == nil {
		return
	}
	send := ps[:0:0]
	for _, p := range ps {
		if !p.skipBP {
			send = append(send, p)
		}
	}
	if len(send) == 0 {
		return
	}
	bp, isBatch := c.bp.(backplane.BatchPublisher)
	if !isBatch || len(send) == 1 {
		for _, p := range send {
			c.publish(p)
		}
		return
	}
	ms := make([]backplane.Message, len(send))
	for i, p := range send {
		kind := p.bpKind
		if kind == 0 {
			kind = p.op.kind()
		}
		ms[i] = backplane.Message{Kind: kind, Cache: c.name, Key: p.key, Source: c.id, Timestamp: p.ts, Value: c.messageValue(&p)}
	}
	// One span for the call's messages, as publishNow has for one.
	sctx, span := c.startChild(send[0].context(), SpanPublish, "") // the first change's operation
	ctx, cancel := c.ioContext(sctx, &c.entry)
	defer cancel()
	errs := bp.PublishBatch(ctx, ms)
	if span != nil {
		if k := ms[0].Kind; !slices.ContainsFunc(ms, func(m backplane.Message) bool { return m.Kind != k }) {
			span.SetAttributes(slog.String(AttrMessageKind, k.String())) // one kind of message
		}
		var failed error
		failedKey := ""
		if i := slices.IndexFunc(errs, func(err error) bool { return err != nil }); i >= 0 {
			failed, failedKey = errs[i], send[i].key
		}
		span.End(c.spanErr(failedKey, failed))
	}
	logged := false
	for i, p := range send {
		var err error
		if errs != nil {
			err = errs[i]
		}
		switch {
		case err != nil:
			c.stats.bpErrors.Add(1)
			if c.configError("publish", p.key, err) {
				break // retrying cannot fix it: not queued (as publish)
			}
			if !logged {
				c.log.Warn("backplane publish failed", c.keyAttr(p.key), slog.Int("batch", len(send)), c.errAttr(p.key, err))
				logged = true
			}
			p.l2Done = true
			c.enqueue(p)
		default:
			c.stats.bpPublished.Add(1)
		}
		if c.ev != nil {
			c.emitBackplaneMessage(p.context(), p.key, DirectionSent, ms[i].Kind, err)
		}
	}
}

// setMany stores entries in the memory tier, each as set does at its
// Size (newest wins; set no longer waits for ristretto's buffer, so one
// call per entry costs no more than a batched one).
func (m *l1) setMany(es []*entry) {
	for _, e := range es {
		m.set(e)
	}
}

// GetMany reads keys in one round trip (see redisstore.Store.GetMany): one
// MGET, or one MGET per hash slot, pipelined, on a cluster.
func (r *RedisL2) GetMany(ctx context.Context, keys []string) ([][]byte, []error) {
	return r.s.GetMany(ctx, keys)
}

// SetMany writes items newest-wins in one pipeline (see
// redisstore.Store.SetMany).
func (r *RedisL2) SetMany(ctx context.Context, items []L2Item) ([]bool, []error) {
	return r.s.SetMany(ctx, items)
}

// firstErr returns the first non-nil error of errs, or nil.
func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
