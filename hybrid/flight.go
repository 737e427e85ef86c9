package hybrid

import "sync"

// call is one shared load of a key. Its result is delivered once (by the
// factory, a timeout or a fail-safe fallback); the key stays locked in the
// flight table until the load, including a background completion, ends.
type call struct {
	done     chan struct{}
	once     sync.Once
	val      any
	err      error
	panicked bool
	panicVal any
}

// deliver publishes the result to every waiter. Only the first delivery
// counts; it reports whether this one did.
func (cl *call) deliver(v any, err error) bool {
	delivered := false
	cl.once.Do(func() {
		cl.val, cl.err = v, err
		close(cl.done)
		delivered = true
	})
	return delivered
}

func (cl *call) deliverPanic(p any) bool {
	delivered := false
	cl.once.Do(func() {
		cl.panicked, cl.panicVal = true, p
		close(cl.done)
		delivered = true
	})
	return delivered
}

const flightShards = 64

// flights is the stampede protection: at most one load per key.
type flights struct {
	shards [flightShards]struct {
		mu    sync.Mutex
		calls map[string]*call
	}
}

func (f *flights) shard(key string) int { return stripe(key) % flightShards }

// join returns the load in progress for key, or registers a new one and
// reports that the caller leads it.
func (f *flights) join(key string) (cl *call, leader bool) {
	s := &f.shards[f.shard(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.calls[key]; ok {
		return cl, false
	}
	if s.calls == nil {
		s.calls = make(map[string]*call)
	}
	cl = &call{done: make(chan struct{})}
	s.calls[key] = cl
	return cl, true
}

// readers counts reads of the distributed tier in progress per key, so that
// a backplane message for a key not yet in memory can keep such a read
// from storing what it fetched before the change.
type readers struct {
	shards [flightShards]struct {
		mu sync.Mutex
		n  map[string]int
	}
}

func (r *readers) add(key string) {
	s := &r.shards[stripe(key)%flightShards]
	s.mu.Lock()
	if s.n == nil {
		s.n = make(map[string]int)
	}
	s.n[key]++
	s.mu.Unlock()
}

func (r *readers) done(key string) {
	s := &r.shards[stripe(key)%flightShards]
	s.mu.Lock()
	if s.n[key]--; s.n[key] <= 0 {
		delete(s.n, key)
	}
	s.mu.Unlock()
}

func (r *readers) has(key string) bool {
	s := &r.shards[stripe(key)%flightShards]
	s.mu.Lock()
	_, ok := s.n[key]
	s.mu.Unlock()
	return ok
}

// has reports whether a load of key is running.
func (f *flights) has(key string) bool {
	s := &f.shards[f.shard(key)]
	s.mu.Lock()
	_, ok := s.calls[key]
	s.mu.Unlock()
	return ok
}

// release unlocks key if cl still holds it. It may be called more than once.
func (f *flights) release(key string, cl *call) {
	s := &f.shards[f.shard(key)]
	s.mu.Lock()
	if s.calls[key] == cl {
		delete(s.calls, key)
	}
	s.mu.Unlock()
}
