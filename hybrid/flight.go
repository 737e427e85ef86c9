package hybrid

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// flight runs load at most once per key at a time, for every caller that
// asks while it runs: the stampede protection, on
// golang.org/x/sync/singleflight. The function is the whole load, so the
// key stays held until the load really ends, a factory completing in the
// background after a timeout included; each caller waits for the result
// on its own (see wait). Singleflight removes the key and hands the result
// to every waiter in one place, under one lock (its doCall): a finished
// load is finished for everybody at once.
//
// Close waits for the load; once the cache is closed, flight reports false
// and a load that had not started yet returns ErrClosed.
func (c *Cache) flight(ctx context.Context, key string, load func() (any, error)) (<-chan singleflight.Result, bool) {
	if c.closed.Load() {
		return nil, false
	}
	ch, _ := c.claimFlight(key, func(bool) (any, error) {
		if !c.enterBackground() {
			return nil, ErrClosed
		}
		defer c.wg.Done()
		if c.l2 == nil {
			return load()
		}
		return c.onWorker(ctx, load)
	})
	return ch, true
}

// onWorker runs load on a background worker (see goBackground) and waits
// for it. singleflight starts a new goroutine for every load it runs
// detached, and a load that reads and writes the distributed tier (go-redis,
// a script, the backplane) grows that goroutine's stack two or three times
// over, copying it each time: ~7% of the CPU of a service that loads often
// (BenchmarkServiceMix). A worker keeps its grown stack from one load to
// the next. A panic or runtime.Goexit in load happens again on this
// goroutine (singleflight's), as if load had run here, and singleflight
// deals with it as before; when no worker can be had (the cache is
// closing), load runs here. The worker takes the profiler labels of ctx,
// the load's context (see goBackground).
func (c *Cache) onWorker(ctx context.Context, load func() (any, error)) (any, error) {
	j := workerJobs.Get().(*workerJob)
	j.load = load
	if !c.goBackground(ctx, j.runFn) {
		j.load = nil
		workerJobs.Put(j)
		return load()
	}
	<-j.done
	v, err, panicked, pv, goexit := j.v, j.err, j.panicked, j.pv, j.goexit
	*j = workerJob{done: j.done, runFn: j.runFn} // nothing of this load kept
	workerJobs.Put(j)
	switch {
	case panicked:
		panic(pv)
	case goexit:
		runtime.Goexit()
	}
	return v, err
}

// workerJob is one load handed to a worker: the load, then its results or
// how it ended abnormally. Jobs are pooled (workerJobs) with their channel
// and their bound run function, so that the hand-off allocates nothing.
type workerJob struct {
	load     func() (any, error)
	v        any
	err      error
	panicked bool
	pv       any
	goexit   bool
	done     chan struct{} // one value per run
	runFn    func()        // j.run
}

var workerJobs = sync.Pool{New: func() any {
	j := &workerJob{done: make(chan struct{}, 1)}
	j.runFn = j.run
	return j
}}

func (j *workerJob) run() {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				j.panicked, j.pv = true, r
			} else {
				j.goexit = true // (the worker ends with it)
			}
		}
		j.done <- struct{}{}
	}()
	j.v, j.err = j.load()
	returned = true
}

// flightHere is flight for a caller that nothing can make stop waiting
// before the load ends (its ctx cannot be cancelled, and there is no
// factory timeout): singleflight's Do runs the load on the caller's own
// goroutine when it leads, and waits for the running one otherwise. No
// goroutine, no channel. ok is false once the cache is closed.
func (c *Cache) flightHere(key string, load func() (any, error)) (r singleflight.Result, ok bool) {
	if c.closed.Load() {
		return r, false
	}
	return c.claimHere(key, func() (any, error) {
		if !c.enterBackground() {
			return nil, ErrClosed
		}
		defer c.wg.Done()
		return load()
	}), true
}

// detached is the context of a load: the values of the context it was
// started from (trace spans, request-scoped loggers), none of its
// cancellation or deadline, and cancelled when the cache closes. One
// allocation, where WithoutCancel, WithCancel and AfterFunc took several.
//
// The context of a single-key load also names its key, so that a factory
// that asks the cache for the key it is loading gets ErrLoadCycle instead
// of waiting for itself (see inLoadOf).
type detached struct {
	values context.Context
	c      *Cache
	key    string      // the key of the load; "" for other background work
	ended  atomic.Bool // the load has ended (set by its leader)
}

func (c *Cache) detach(ctx context.Context) context.Context {
	if d, ok := ctx.(*detached); ok && d.c == c && d.key == "" {
		return d
	}
	return &detached{values: ctx, c: c}
}

// detachLoad is detach for the load of key.
func (c *Cache) detachLoad(ctx context.Context, key string) *detached {
	return &detached{values: ctx, c: c, key: key}
}

func (d *detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (d *detached) Done() <-chan struct{}       { return d.c.ctx.Done() }
func (d *detached) Err() error                  { return d.c.ctx.Err() }

func (d *detached) Value(key any) any {
	if _, ok := key.(loadingKey); ok && d.key != "" {
		return d
	}
	return d.values.Value(key)
}

// AfterFunc lets context.WithTimeout and context.AfterFunc on a detached
// context hook into the cache's context without a goroutine of their own.
func (d *detached) AfterFunc(f func()) func() bool { return context.AfterFunc(d.c.ctx, f) }

func (d *detached) loads(c *Cache, key string) bool {
	return d.c == c && d.key == key && !d.ended.Load()
}

func (d *detached) outer() context.Context { return d.values }

// loadingKey is the context key under which the context of a running
// load answers with itself (a loadMarker).
type loadingKey struct{}

// loadMarker is the context of a running load, single-key (detached) or a
// batch's factory (batchLoading).
type loadMarker interface {
	// loads reports whether the load is a load of key in c that has not
	// ended.
	loads(c *Cache, key string) bool
	// outer is the context the load was started from.
	outer() context.Context
}

// loadCycle is the error of a call that would wait for the load of key
// it is part of (see inLoadOf).
func loadCycle(key string) error {
	return fmt.Errorf("%w: key %q is being loaded by the factory that asks for it", ErrLoadCycle, key)
}

// inLoadOf reports whether ctx is the context of a running load of key in
// c, or was derived from one, through any number of loads of other keys
// and caches in between (a factory of A reads B, whose factory reads A).
// Waiting for the load of key there would wait for itself: the load waits
// for its factory, which waits for this caller. It walks the context's
// values, so it costs a few interface calls, on the miss path only.
func (c *Cache) inLoadOf(ctx context.Context, key string) bool {
	for {
		m, ok := ctx.Value(loadingKey{}).(loadMarker)
		if !ok {
			return false
		}
		if m.loads(c, key) {
			return true
		}
		ctx = m.outer()
	}
}

// enterBackground counts one unit of background work that Close waits
// for; it reports false once the cache is closed. The caller calls
// c.wg.Done when the work ends.
func (c *Cache) enterBackground() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Add(1)
	return true
}

// panicError carries a factory's panic through singleflight to the
// callers: the one whose load function ran panics again with the value,
// the others get ErrFactoryPanic.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprintf("hybrid: factory panicked: %v", p.value) }

// result turns a load's result into what GetOrSet returns to one caller;
// ran says whether this caller's load function is the one that ran.
func result[T any](key string, r singleflight.Result, ran bool) (T, error) {
	var zero T
	if r.Err != nil {
		if p, ok := errors.AsType[*panicError](r.Err); ok {
			if ran {
				panic(p.value)
			}
			return zero, fmt.Errorf("%w: key %q", ErrFactoryPanic, key)
		}
		return zero, r.Err
	}
	v, ok := valueAs[T](r.Val)
	if !ok {
		return zero, mismatch[T](key, r.Val)
	}
	return v, nil
}

// factoryTimeout is how long callers wait for the factory: the soft
// timeout when a fallback can answer (fail-safe on and a stale value) and
// it is the shorter, else the hard timeout; 0 means no limit.
func factoryTimeout(o *EntryOptions, fallback bool) time.Duration {
	t := o.FactoryHardTimeout
	if fallback && o.FactorySoftTimeout > 0 && (t == 0 || o.FactorySoftTimeout < t) {
		t = o.FactorySoftTimeout
	}
	return t
}

// waitTimers are one caller's factory timeouts. The soft timer is armed
// whenever a fallback might answer (fail-safe on); when it fires with no
// usable stale value in memory, the caller goes on waiting for the hard
// one, so the soft timeout applies only when a stale value exists.
type waitTimers struct {
	soft, hard   <-chan time.Time
	softT, hardT *time.Timer
}

func newWaitTimers(o *EntryOptions) waitTimers {
	var w waitTimers
	if s := factoryTimeout(o, true); o.FailSafe && s > 0 && s != o.FactoryHardTimeout {
		w.softT = time.NewTimer(s)
		w.soft = w.softT.C
	}
	if o.FactoryHardTimeout > 0 {
		w.hardT = time.NewTimer(o.FactoryHardTimeout)
		w.hard = w.hardT.C
	}
	return w
}

func (w *waitTimers) stop() {
	if w.softT != nil {
		w.softT.Stop()
	}
	if w.hardT != nil {
		w.hardT.Stop()
	}
}

// readers counts reads of the distributed tier in progress per key (loads
// and TryGet's), so that a backplane message for a key not yet in memory
// can keep such a read from storing what it fetched before the change.
type readers struct {
	shards [readerShards]struct {
		mu sync.Mutex
		n  map[string]int
	}
}

const readerShards = 64

func (r *readers) add(key string) {
	s := &r.shards[stripe(key)%readerShards]
	s.mu.Lock()
	if s.n == nil {
		s.n = make(map[string]int)
	}
	s.n[key]++
	s.mu.Unlock()
}

func (r *readers) done(key string) {
	s := &r.shards[stripe(key)%readerShards]
	s.mu.Lock()
	if s.n[key]--; s.n[key] <= 0 {
		delete(s.n, key)
	}
	s.mu.Unlock()
}

func (r *readers) has(key string) bool {
	s := &r.shards[stripe(key)%readerShards]
	s.mu.Lock()
	_, ok := s.n[key]
	s.mu.Unlock()
	return ok
}
