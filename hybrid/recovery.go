package hybrid

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// recovery queues changes that failed because the tier was unavailable:
// one item per key, newest wins, bounded. A single goroutine replays them
// once the circuit breaker lets calls through again.
type recovery struct {
	mu      sync.Mutex
	items   map[string]pending
	max     int
	running bool
}

func (c *Cache) enqueue(p pending) {
	r := &c.recovery
	var action RecoveryAction
	r.mu.Lock()
	cur, ok := r.items[p.key]
	switch {
	case ok && cur.ts > p.ts:
		// A newer change for the key is already queued.
	case !ok && len(r.items) >= r.max:
		c.stats.recoveryDropped.Add(1)
		action = RecoveryDropped
		c.log.Warn("auto-recovery queue full, change dropped", c.keyAttr(p.key), slog.Int("max", r.max))
	default:
		if r.items == nil {
			r.items = make(map[string]pending)
		}
		r.items[p.key] = p
		c.stats.recoveryQueued.Add(1)
		action = RecoveryQueued
	}
	r.mu.Unlock()
	if action != 0 && c.ev != nil {
		c.emitRecovery(p.context(), p.key, action)
	}
	c.startRecovery()
}

// startRecovery starts the replay goroutine if there is work and none runs.
func (c *Cache) startRecovery() {
	r := &c.recovery
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || len(r.items) == 0 {
		return
	}
	if c.goBackground(context.Background(), c.replay) {
		r.running = true
	}
}

// replay applies the queued changes, waiting out the circuit breaker,
// until the queue is empty or the cache closes.
func (c *Cache) replay() {
	r := &c.recovery
	replayed := 0
	// After a failed publish the replay waits on its own, not on the
	// distributed tier's circuit breaker: the tier is fine, and tripping
	// its breaker would stop this node's reads and writes of it for as
	// long as the backplane is down.
	var bpWait time.Duration
	for {
		if d := max(c.breaker.remaining(), bpWait); d > 0 {
			bpWait = 0
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				c.stopRecovery()
				return
			}
		}
		r.mu.Lock()
		batch := make([]pending, 0, len(r.items))
		for _, p := range r.items {
			batch = append(batch, p)
		}
		r.mu.Unlock()
		failed := false
		for _, p := range batch {
			if c.ctx.Err() != nil {
				c.stopRecovery()
				return
			}
			// A trace of its own, linked to the operation that made the
			// change; the item's events carry the replay's context.
			rctx, span := p.context(), Span(nil)
			if c.tr != nil {
				rctx, span = c.startSpan(rctx, SpanRecovery, p.key, true)
				span.SetAttributes(slog.String(AttrOp, p.op.String()))
			}
			p.ctx = rctx
			var err error
			written, announced := true, false
			if !p.l2Done && c.l2 != nil {
				ctx, cancel := c.ioContext(rctx, &c.entry)
				began := nowNano()
				written, announced, err = c.applyFeed(ctx, p)
				cancel()
				if c.ev != nil {
					c.emitL2Call(rctx, "recover", p.key, time.Duration(nowNano()-began), err)
				}
				if err != nil && transient(err) {
					endSpan(span, c.spanErr(p.key, err))
					c.breaker.trip()
					failed = true
					break
				}
				if err != nil {
					c.l2Failed(rctx, "recover", p.key, err)
				}
			}
			if err == nil && !written {
				c.lostToNewer(p) // a newer change reached the tier meanwhile: nothing to announce
			}
			if err == nil && written && !p.skipBP && !announced && c.bp != nil {
				if perr := c.publishNow(p); perr != nil && !c.configError("publish", p.key, perr) {
					endSpan(span, c.spanErr(p.key, perr))
					r.mu.Lock()
					if cur, ok := r.items[p.key]; ok && cur.ts == p.ts {
						cur.l2Done = true
						r.items[p.key] = cur
					}
					r.mu.Unlock()
					bpWait = breakerProbeInterval // as often as an open breaker probes the tier
					failed = true
					break
				}
			}
			r.mu.Lock()
			if cur, ok := r.items[p.key]; ok && cur.ts == p.ts {
				delete(r.items, p.key)
			}
			r.mu.Unlock()
			endSpan(span, c.spanErr(p.key, err))
			c.stats.recovered.Add(1)
			replayed++
			if c.ev != nil {
				c.emitRecovery(rctx, p.key, RecoveryReplayed)
			}
		}
		if !failed {
			c.breaker.succeeded()
		} else if bpWait == 0 && c.breaker.d <= 0 {
			// No breaker to wait on: back off a little before retrying.
			select {
			case <-time.After(time.Second):
			case <-c.ctx.Done():
				c.stopRecovery()
				return
			}
		}
		r.mu.Lock()
		if len(r.items) == 0 {
			r.running = false
			r.mu.Unlock()
			c.log.Info("auto-recovery queue drained", slog.Int("replayed", replayed))
			if c.ev != nil {
				c.emitRecovery(context.Background(), "", RecoveryDrained)
			}
			return
		}
		r.mu.Unlock()
	}
}

func (c *Cache) stopRecovery() {
	r := &c.recovery
	r.mu.Lock()
	if n := len(r.items); n > 0 {
		c.log.Warn("cache closed with changes not yet recovered", slog.Int("pending", n))
	}
	r.running = false
	r.mu.Unlock()
}

// ownWrites are this process's writes to the distributed tier that run in
// the background and have not completed, by key and timestamp.
type ownWrites struct {
	mu sync.Mutex
	m  map[ownWrite]int
}

type ownWrite struct {
	key string
	ts  int64
}

func (w *ownWrites) add(key string, ts int64) {
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[ownWrite]int)
	}
	w.m[ownWrite{key, ts}]++
	w.mu.Unlock()
}

func (w *ownWrites) done(key string, ts int64) {
	w.mu.Lock()
	k := ownWrite{key, ts}
	if w.m[k] <= 1 {
		delete(w.m, k)
	} else {
		w.m[k]--
	}
	w.mu.Unlock()
}

func (w *ownWrites) has(key string, ts int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[ownWrite{key, ts}] > 0
}

// ownWritePending reports whether e is a value this process wrote whose
// write to the distributed tier has not completed: in the background, or
// queued for auto-recovery. Such a copy is not unverified after a
// backplane gap: the distributed tier cannot vouch for it yet (a read
// there misses, or finds the older entry), and its own newest-wins write
// will (one that loses marks the copy stale, see lostToNewer).
func (c *Cache) ownWritePending(e *entry) bool {
	if e.tombstone() {
		return false
	}
	if c.writing.has(e.key, e.ts) {
		return true
	}
	r := &c.recovery
	r.mu.Lock()
	p, ok := r.items[e.key]
	r.mu.Unlock()
	return ok && p.op == opSet && p.ts == e.ts
}
