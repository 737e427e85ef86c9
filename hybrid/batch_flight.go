package hybrid

import (
	"sync"

	"golang.org/x/sync/singleflight"
)

// claims records which keys have a load running, at the moment the load
// is registered with the singleflight group: a batch must know at once
// which of its keys it leads (their loads wait for its one factory call)
// and which another load leads (it waits for those), and singleflight's
// DoChan does not say. Every load goes through claimFlight, under the
// key's stripe lock, so the two agree: a key is claimed from the moment a
// load registers until its function returns.
type claims struct {
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*claimToken
	}
}

// claimToken identifies one load's claim of a key.
type claimToken struct{}

// claimFlight registers load as the load of key with the singleflight
// group, as flight does, and reports whether this call leads it: true
// when no load held the key, and load will run. When another load holds
// it, the call joins that load (leader false); load then runs only if
// that load was forgotten meanwhile (DisableBackgroundCompletion after a
// timeout), and takes the claim over while it runs. load is told which
// case it runs in.
func (c *Cache) claimFlight(key string, load func(claimed bool) (any, error)) (<-chan singleflight.Result, bool) {
	s := &c.claims.shards[stripe(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := new(claimToken)
	held, isHeld := s.m[key]
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
