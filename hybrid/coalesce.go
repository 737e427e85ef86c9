package hybrid

import (
	"context"
	"sync"
	"time"
)

// coalescer gathers the calls to the distributed tier that a cache makes
// while one of them is in flight, and sends them in one round trip (a
// pipeline) when it returns. Under load one round trip, one write and one
// read of a socket on each side then serve many calls, where each would
// cost the server and this process system calls of their own. It does so
// only while round trips run at coalesceCongested times their floor or
// more (a process or server busy enough that the saved work matters more
// than the wait); otherwise, as for a call that finds nothing in flight,
// a call goes alone and at once, as without the coalescer, so a far
// server or a light load waits for nothing more.
//
// Each call keeps its own bounds: a waiter leaves at its context's end (a
// timeout of the call, as before), and the batch is bounded by the latest
// deadline among its calls (and, for reads, by Close). A call that finds
// the latest one sent out for longer than coalesceStuck does not queue but
// goes alone (on another pooled connection), so that slow connections do
// not hold up every call of the cache.
//
// Q is a call's input, R its result; one runs a call alone, many a batch
// (its results aligned with its inputs).
type coalescer[Q, R any] struct {
	c     *Cache          // runs batches on its background workers
	base  context.Context // of every batch: the cache's (reads: Close ends them) or none (writes: Close waits for them)
	one   func(ctx context.Context, q Q) R
	many  func(ctx context.Context, qs []Q) []R
	mu    sync.Mutex
	out   int   // calls or batches in flight
	since int64 // when the latest was sent, unix ns
	q     []*coalesced[Q, R]
	// The round trips of calls sent alone, ns: their floor (see floor)
	// and a moving average. Calls queue for a batch only while the round
	// trip runs well above its floor (congested: a busy process or server,
	// where a batch gives CPU back); when it does not (a far server, a
	// light load), every call goes at once, in parallel, as without the
	// coalescer, since waiting for the call out would only add latency.
	avg int64
	// The shortest round trip of the current window (coalesceFloorWindow,
	// begun at window) and of the one before.
	floorCur, floorPrev, window int64
}

// coalesceFloorWindow is how long a round trip's floor is remembered: the
// floor is the shortest round trip of the last one or two windows, so that
// a path that became slower for good (a failover to a farther server)
// raises it within two windows instead of reading as congestion forever,
// while a busy spell, which has shorter round trips now and then, keeps it.
const coalesceFloorWindow = time.Minute

// floor is the shortest round trip of the last one or two windows (k.mu
// held); 0 before any.
func (k *coalescer[Q, R]) floor() int64 {
	switch {
	case k.floorPrev == 0:
		return k.floorCur
	case k.floorCur == 0:
		return k.floorPrev
	}
	return min(k.floorCur, k.floorPrev)
}

// coalesceCongested is how far above its floor the average round trip
// must run for calls to queue for a batch.
const coalesceCongested = 4

// congested reports whether calls should queue (k.mu held). Before any
// round trip is known, they do.
func (k *coalescer[Q, R]) congested() bool {
	f := k.floor()
	return f == 0 || k.avg > coalesceCongested*f
}

// sample records the round trip d of a call sent alone.
func (k *coalescer[Q, R]) sample(d int64) {
	d = max(d, 1)
	now := nowNano()
	k.mu.Lock()
	if since := now - k.window; since >= int64(coalesceFloorWindow) {
		k.floorPrev, k.floorCur, k.window = k.floorCur, 0, now
		if since >= 2*int64(coalesceFloorWindow) {
			k.floorPrev = 0 // nothing sent alone in the last window
		}
	}
	if k.floorCur == 0 || d < k.floorCur {
		k.floorCur = d
	}
	if k.avg == 0 {
		k.avg = d
	} else {
		k.avg += (d - k.avg) / 8
	}
	k.mu.Unlock()
}

// alone runs q on its own and records its round trip.
func (k *coalescer[Q, R]) alone(ctx context.Context, q Q) R {
	t0 := nowNano()
	r := k.one(ctx, q)
	k.sample(nowNano() - t0)
	return r
}

// coalesceSlots is how many calls or batches of a kind a congested cache
// has in flight at most before new calls queue for the next batch. One
// gathers the most: in the service mix two slots gave no more throughput
// at 16 goroutines per node and twice the stale reads (more round trips,
// slower backplane deliveries), see docs/benchmarks.md. An uncongested
// cache has no such limit (congested).
const coalesceSlots = 1

// coalesced is one call waiting for the next batch.
type coalesced[Q, R any] struct {
	in       Q
	deadline time.Time // zero: none
	done     chan struct{}
	res      R
}

// coalesceStuck is how long a call or batch may be out before new calls
// stop queueing behind it: far beyond a round trip to a healthy server.
const coalesceStuck = 10 * time.Millisecond

// do runs q, alone if a slot is free and nothing queues or if the round
// trips are not congested, else in the next batch. left is true when ctx
// ended first (r is then the zero R).
func (k *coalescer[Q, R]) do(ctx context.Context, q Q) (r R, left bool) {
	k.mu.Lock()
	if k.out < coalesceSlots && len(k.q) == 0 || !k.congested() {
		k.out++
		k.since = nowNano()
		k.mu.Unlock()
		r = k.alone(ctx, q)
		k.next()
		return r, false
	}
	if nowNano()-k.since > int64(coalesceStuck) {
		k.mu.Unlock()
		return k.one(ctx, q), false
	}
	w := &coalesced[Q, R]{in: q, done: make(chan struct{})}
	w.deadline, _ = ctx.Deadline()
	k.q = append(k.q, w)
	k.mu.Unlock()
	select {
	case <-w.done:
		return w.res, false
	case <-ctx.Done():
		return r, true // the batch still runs it; nobody waits
	}
}

// next is called when the call in flight returned: the calls that queued
// meanwhile go as one batch, on a background worker (or here, once the
// cache is closed).
func (k *coalescer[Q, R]) next() {
	q := k.take()
	if len(q) == 0 {
		return
	}
	if !k.c.goBackground(context.Background(), func() { k.serve(q) }) {
		k.serve(q)
	}
}

// take is called when a call or batch in flight returned: it empties the
// queue, to be sent in the slot that call leaves; when the queue is empty,
// the slot is free.
func (k *coalescer[Q, R]) take() []*coalesced[Q, R] {
	k.mu.Lock()
	defer k.mu.Unlock()
	q := k.q
	k.q = nil
	if len(q) == 0 {
		k.out--
	} else {
		k.since = nowNano()
	}
	return q
}

// serve runs the batch q, hands each call its result, and goes on with
// what queued meanwhile.
func (k *coalescer[Q, R]) serve(q []*coalesced[Q, R]) {
	for len(q) > 0 {
		k.run(q)
		q = k.take()
	}
}

// run runs the calls of q in one round trip, bounded by the latest of
// their deadlines (none if one has none) and by k.base.
func (k *coalescer[Q, R]) run(q []*coalesced[Q, R]) {
	in := make([]Q, len(q))
	var last time.Time
	forever := false
	for i, w := range q {
		in[i] = w.in
		if w.deadline.IsZero() {
			forever = true
		} else if w.deadline.After(last) {
			last = w.deadline
		}
	}
	ctx, cancel := k.base, context.CancelFunc(func() {})
	if !forever {
		ctx, cancel = context.WithDeadline(ctx, last)
	}
	res := k.many(ctx, in)
	cancel()
	for i, w := range q {
		w.res = res[i]
		close(w.done)
	}
}

// coalescingL2 is a distributed tier whose calls a cache can coalesce: it
// reads and writes many keys in one round trip, each exactly as its Get and
// Set would (RedisL2).
type coalescingL2 interface {
	Get(ctx context.Context, key string) ([]byte, error)
	getEach(ctx context.Context, keys []string) ([][]byte, []error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	setEach(ctx context.Context, writes []l2Write) []l2Written
}

// l2Read is the result of a coalesced read.
type l2Read struct {
	val []byte
	err error
}

// l2Write is a coalesced write: L2.Set's arguments, and the announcement
// its context carried, if any.
type l2Write struct {
	key    string
	val    []byte
	ttl    time.Duration
	change *Change
}

// l2Written is the result of a coalesced write.
type l2Written struct {
	written bool
	err     error
}

// l2Coalescers are a cache's coalescers of reads and of writes of a
// coalescingL2 (the Redis tier).
type l2Coalescers struct {
	reads  coalescer[string, l2Read]
	writes coalescer[l2Write, l2Written]
}

func newL2Coalescers(c *Cache, l2 coalescingL2) *l2Coalescers {
	k := &l2Coalescers{}
	k.reads = coalescer[string, l2Read]{c: c, base: c.ctx,
		one: func(ctx context.Context, key string) l2Read {
			b, err := l2.Get(ctx, key)
			return l2Read{b, err}
		},
		many: func(ctx context.Context, keys []string) []l2Read {
			vals, errs := l2.getEach(ctx, keys)
			res := make([]l2Read, len(keys))
			for i := range keys {
				if errs != nil && errs[i] != nil {
					res[i].err = errs[i]
				} else {
					res[i].val = vals[i]
				}
			}
			return res
		}}
	// A write outlives its caller and Close waits for it (writes carry a
	// deadline: ioContext), as one sent alone does.
	k.writes = coalescer[l2Write, l2Written]{c: c, base: context.Background(),
		one: func(ctx context.Context, w l2Write) l2Written {
			ok, err := l2.Set(ctx, w.key, w.val, w.ttl) // ctx is the caller's, with w.change
			return l2Written{ok, err}
		},
		many: l2.setEach}
	return k
}

// get reads key (prefixed) from the tier, coalesced with the reads in
// flight.
func (k *l2Coalescers) get(ctx context.Context, key string) ([]byte, error) {
	r, left := k.reads.do(ctx, key)
	if left {
		return nil, ctx.Err()
	}
	return r.val, r.err
}

// set writes value at key (prefixed) in the tier, newest wins, coalesced
// with the writes in flight; the announcement in ctx (ChangeFromContext)
// goes with it, as L2.Set sends it.
func (k *l2Coalescers) set(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ch, _ := ChangeFromContext(ctx)
	r, left := k.writes.do(ctx, l2Write{key: key, val: value, ttl: ttl, change: ch})
	if left {
		return false, ctx.Err()
	}
	return r.written, r.err
}
