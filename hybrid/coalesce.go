package hybrid

import (
	"context"
	"sync"
	"time"
)

// readCoalescer gathers the reads of the distributed tier that a cache makes
// while one of its reads is in flight, and sends them in one pipeline of
// GETs when that read returns. Under load one round trip, one write and one
// read of a socket on each side then serve many reads, where each read
// would cost the server and this process system calls of its own; a
// read that finds none in flight goes alone and at once, as without the
// coalescer, so an idle cache waits for nothing more.
//
// Each read keeps its own bounds: a waiter leaves at its context's end (a
// timeout of the read, as before), and the batch is bounded by the latest
// deadline among its reads and by Close. A read that finds the one in
// flight out for longer than coalesceStuck does not queue behind it but
// goes alone (on another pooled connection), so that one slow connection
// does not hold up every read of the cache.
type readCoalescer struct {
	l2    eachGetter
	c     *Cache // runs batches on its background workers; its ctx ends them
	mu    sync.Mutex
	out   bool  // a read or a batch is in flight
	since int64 // when it was sent, unix ns
	q     []*coalescedRead
}

// coalesceStuck is how long a read or batch may be out before new reads
// stop queueing behind it: far beyond a round trip to a healthy server.
const coalesceStuck = 10 * time.Millisecond

// eachGetter is a distributed tier that can read many keys in one round
// trip, each exactly as its Get would (RedisL2).
type eachGetter interface {
	Get(ctx context.Context, key string) ([]byte, error)
	getEach(ctx context.Context, keys []string) ([][]byte, []error)
}

// coalescedRead is one read waiting for the next batch.
type coalescedRead struct {
	key      string
	deadline time.Time // zero: none
	done     chan struct{}
	val      []byte
	err      error
}

// get reads key (prefixed) from the tier, alone if nothing is in flight,
// else in the next batch.
func (r *readCoalescer) get(ctx context.Context, key string) ([]byte, error) {
	r.mu.Lock()
	if !r.out {
		r.out, r.since = true, nowNano()
		r.mu.Unlock()
		b, err := r.l2.Get(ctx, key)
		r.next()
		return b, err
	}
	if nowNano()-r.since > int64(coalesceStuck) {
		r.mu.Unlock()
		return r.l2.Get(ctx, key)
	}
	w := &coalescedRead{key: key, done: make(chan struct{})}
	w.deadline, _ = ctx.Deadline()
	r.q = append(r.q, w)
	r.mu.Unlock()
	select {
	case <-w.done:
		return w.val, w.err
	case <-ctx.Done():
		return nil, ctx.Err() // the batch still reads it; nobody waits
	}
}

// next is called when the read in flight returned: the reads that queued
// meanwhile go as one batch, on a background worker (or here, once the
// cache is closed).
func (r *readCoalescer) next() {
	q := r.take()
	if len(q) == 0 {
		return
	}
	if !r.c.goBackground(context.Background(), func() { r.serve(q) }) {
		r.serve(q)
	}
}

// take empties the queue; when it is empty, nothing is in flight any more.
func (r *readCoalescer) take() []*coalescedRead {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	r.q = nil
	if len(q) == 0 {
		r.out = false
	} else {
		r.since = nowNano()
	}
	return q
}

// serve reads the batch q, hands each read its value, and goes on with
// what queued meanwhile.
func (r *readCoalescer) serve(q []*coalescedRead) {
	for len(q) > 0 {
		r.read(q)
		q = r.take()
	}
}

// read reads the keys of q in one round trip, bounded by the latest of
// their deadlines (none if one has none) and by Close.
func (r *readCoalescer) read(q []*coalescedRead) {
	keys := make([]string, len(q))
	var last time.Time
	forever := false
	for i, w := range q {
		keys[i] = w.key
		if w.deadline.IsZero() {
			forever = true
		} else if w.deadline.After(last) {
			last = w.deadline
		}
	}
	ctx, cancel := r.c.ctx, context.CancelFunc(func() {})
	if !forever {
		ctx, cancel = context.WithDeadline(ctx, last)
	}
	vals, errs := r.l2.getEach(ctx, keys)
	cancel()
	for i, w := range q {
		if errs != nil && errs[i] != nil {
			w.err = errs[i]
		} else {
			w.val = vals[i]
		}
		close(w.done)
	}
}
