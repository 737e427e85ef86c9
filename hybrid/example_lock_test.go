package hybrid_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// toyStore is a distributed tier in one process, for the example: a map
// that two caches share, and a Locker. (It overwrites on Set instead of
// applying newest-wins; RedisL2 is the real one.)
type toyStore struct {
	mu       sync.Mutex
	vals     map[string][]byte
	locks    map[string]string // lock -> token (leases ignored)
	attempts atomic.Int64
}

func (s *toyStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals[key], nil
}

func (s *toyStore) Set(_ context.Context, key string, v []byte, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[key] = append([]byte(nil), v...)
	return true, nil
}

func (s *toyStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vals, key)
	return nil
}

func (s *toyStore) GetOrLock(_ context.Context, key, lock, token string, _ time.Duration) ([]byte, bool, error) {
	s.attempts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[lock]; held {
		return s.vals[key], false, nil
	}
	s.locks[lock] = token
	return s.vals[key], true, nil
}

func (s *toyStore) ExtendLock(_ context.Context, _, lock, token string, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locks[lock] == token, nil
}

func (s *toyStore) Unlock(_ context.Context, _, lock, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[lock] == token {
		delete(s.locks, lock)
	}
	return nil
}

// Cluster-wide stampede protection: two instances of a cache (two
// processes of a service, here in one process over a shared toy store; in
// production hybrid.NewRedisL2) load a cold key at once, and the factory
// runs once: the instance that took the key's lock calls it, the other
// waits for its value in the distributed tier.
func ExampleLocker() {
	store := &toyStore{vals: map[string][]byte{}, locks: map[string]string{}}
	newNode := func() *hybrid.Cache {
		c, err := hybrid.New(hybrid.Options{Name: "users", L2: store,
			Entry: hybrid.EntryOptions{Duration: time.Minute, DistributedLock: true}})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	a, b := newNode(), newNode()
	defer a.Close()
	defer b.Close()

	var calls atomic.Int64
	release := make(chan struct{})
	load := func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		calls.Add(1)
		<-release // the database is slow
		return "Ada", nil
	}
	var wg sync.WaitGroup
	for _, c := range []*hybrid.Cache{a, b} {
		wg.Go(func() {
			v, err := hybrid.GetOrSet(context.Background(), c, "user:42", load)
			if err != nil || v != "Ada" {
				log.Fatal(v, err)
			}
		})
	}
	for store.attempts.Load() < 2 { // both instances reached the lock
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	fmt.Println("factory calls:", calls.Load())
	// Output:
	// factory calls: 1
}
