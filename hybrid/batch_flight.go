package hybrid

import (
	"sync"

	"golang.org/x/sync/singleflight"
)

// claims records which load holds each key, so that batch loads and the
// single-key loads of the singleflight group never load a key twice:
//
//   - a single-key load (flight) claims a key and registers with the
//     singleflight group, under the key's stripe lock;
//   - a batch claims its keys here only: no singleflight call and no
//     goroutine per key. A caller that meets a key a batch holds (flight,
//     or another batch) waits on the claim, and the batch load answers
//     every waiter of the key when it has the key's result (finishKey).
//
// A batch thus knows at once which keys it leads, and a key has one load
// at a time, whoever started it.
type claims struct {
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*claimToken
	}
}

// claimToken is one load's claim of a key. For a batch's claim, waiters
// are the callers of the key that joined it, and done says the batch has
// answered (res).
type claimToken struct {
	batch   bool
	done    bool
	waiters []chan singleflight.Result
	res     singleflight.Result
}

// claimFlight registers load as the load of key, as flight does, and
// reports whether this call leads it: true when no load held the key, and
// load will run. When a single-key load holds it, the call joins that load
// with the singleflight group (leader false); load then runs only if that
// load was forgotten meanwhile (DisableBackgroundCompletion after a
// timeout), and takes the claim over while it runs. When a batch holds it,
// the call waits for the batch's answer for the key. load is told whether
// it runs as the claim's owner.
func (c *Cache) claimFlight(key string, load func(claimed bool) (any, error)) (<-chan singleflight.Result, bool) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	held, isHeld := s.m[key]
	if isHeld && held.batch {
		return held.join(), false
	}
	tok := new(claimToken)
	if isHeld {
		return c.sf.DoChan(key, func() (any, error) {
			c.reclaim(key, held, tok) // the holder's load was forgotten: this one runs
			defer c.unclaim(key, tok)
			return load(false)
		}), false
	}
	if s.m == nil {
		s.m = make(map[string]*claimToken)
	}
	s.m[key] = tok
	return c.sf.DoChan(key, func() (any, error) {
		defer c.unclaim(key, tok)
		return load(true)
	}), true
}

// claimHere is claimFlight for flightHere: the load runs on the caller's
// goroutine (singleflight's Do) when the caller leads; when a batch holds
// the key, the caller waits for the batch's answer.
func (c *Cache) claimHere(key string, load func() (any, error)) (r singleflight.Result) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	held, isHeld := s.m[key]
	if isHeld && held.batch {
		ch := held.join()
		s.mu.Unlock()
		return <-ch
	}
	tok := new(claimToken)
	if !isHeld {
		if s.m == nil {
			s.m = make(map[string]*claimToken)
		}
		s.m[key] = tok
	}
	s.mu.Unlock()
	r.Val, r.Err, r.Shared = c.sf.Do(key, func() (any, error) {
		if isHeld {
			c.reclaim(key, held, tok) // the holder's load ended or was forgotten
		}
		defer c.unclaim(key, tok)
		return load()
	})
	if !isHeld {
		c.unclaim(key, tok) // if another caller's Do ran the load instead
	}
	return r
}

// join adds a waiter to a batch's claim (the stripe lock held).
func (t *claimToken) join() <-chan singleflight.Result {
	ch := make(chan singleflight.Result, 1)
	t.waiters = append(t.waiters, ch)
	return ch
}

// claimBatch claims key for a batch call. It reports whether the call
// leads the key, with tok (zero, the call's own storage) as its claim;
// else it returns the channel on which the key's current load answers: a
// batch's claim, or the singleflight group's load, which the call joins
// (if that load was forgotten meanwhile, l.loadAlone runs instead). No
// allocation when the call leads the key, the common case.
func (c *Cache) claimBatch(key string, tok *claimToken, eager *entry, l aloneLoader) (led bool, ch <-chan singleflight.Result) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	held, isHeld := s.m[key]
	switch {
	case isHeld && held.batch:
		return false, held.join()
	case isHeld:
		own := new(claimToken)
		return false, c.sf.DoChan(key, func() (any, error) {
			c.reclaim(key, held, own)
			defer c.unclaim(key, own)
			return l.loadAlone(key, eager)
		})
	}
	if s.m == nil {
		s.m = make(map[string]*claimToken)
	}
	tok.batch = true
	s.m[key] = tok
	return true, nil
}

// aloneLoader loads one key of a batch call alone: when the single-key
// load the call joined was forgotten meanwhile (see claimBatch).
type aloneLoader interface {
	loadAlone(key string, eager *entry) (any, error)
}

// finishKey ends a batch's claim of key with its result and hands the
// result to every waiter. Only the first call for a claim counts.
func (c *Cache) finishKey(key string, tok *claimToken, v any, err error) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	if tok.done {
		s.mu.Unlock()
		return
	}
	tok.done = true
	tok.res = singleflight.Result{Val: v, Err: err, Shared: len(tok.waiters) > 0}
	if s.m[key] == tok {
		delete(s.m, key)
	}
	waiters := tok.waiters
	tok.waiters = nil
	s.mu.Unlock()
	for _, ch := range waiters {
		ch <- tok.res // buffered: never blocks
	}
}

// finished returns the result of a batch's claim if the batch answered it.
func (c *Cache) finished(key string, tok *claimToken) (singleflight.Result, bool) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return tok.res, tok.done
}

// release lets the callers of key that come after a write start a load of
// their own instead of joining one that began before the write (and would
// answer with an older value): the singleflight group forgets the key, and
// a batch's claim of it is dropped. The loads keep running and answer the
// callers that joined them already; their results, older than the write,
// lose to it where they meet (newest wins).
func (c *Cache) release(key string) {
	c.sf.Forget(key)
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	if held, ok := s.m[key]; ok && held.batch {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// unclaim ends tok's claim of key, if it still holds it.
func (c *Cache) unclaim(key string, tok *claimToken) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	if s.m[key] == tok {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// reclaim moves the claim of key from old to tok (or gives it to tok if
// nobody holds it).
func (c *Cache) reclaim(key string, old, tok *claimToken) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	if cur, ok := s.m[key]; !ok || cur == old {
		if s.m == nil {
			s.m = make(map[string]*claimToken)
		}
		s.m[key] = tok
	}
	s.mu.Unlock()
}
