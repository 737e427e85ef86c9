package hybrid

import (
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// l1 is the memory tier: ristretto v2 holding *entry values.
//
// ristretto holds entries without a TTL: logical and physical expiry live
// in the entry, checked with one clock read on a hit. A physically expired
// entry is never returned as a value; it leaves through eviction or when a
// newer entry replaces it.
//
// Writes take a striped lock per key: ristretto treats two concurrent
// first writes of a key as two insertions and keeps the first to reach its
// buffer, whatever their timestamps. Under the lock the second writer sees
// the key present and goes through ShouldUpdate (newest wins). Reads take
// no lock of ours. The lock also keeps writes from racing close.
type l1 struct {
	rc      *ristretto.Cache[string, *entry]
	closeMu sync.RWMutex
	closed  bool
	stripes [64]sync.Mutex
}

func newL1(maxEntries int64) (*l1, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        max(maxEntries*10, 100),
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
		// Newest wins: an older entry never replaces a newer one (a
		// physically expired one can always be replaced). At the same
		// timestamp a value beats a tombstone: a tombstone written for a
		// Set message must not replace the value of that very write.
		ShouldUpdate: func(incoming, existing *entry) bool {
			if existing.physUntil <= time.Now().UnixNano() {
				return true
			}
			if incoming.ts != existing.ts {
				return incoming.ts > existing.ts
			}
			return !incoming.tombstone || existing.tombstone
		},
	})
	if err != nil {
		return nil, fmt.Errorf("hybrid: memory tier: %w", err)
	}
	return &l1{rc: rc}, nil
}

// get returns the entry stored under key, or nil.
//
// It does not compare the stored key: ristretto matches two independent
// 64-bit hashes of it (memhash and xxhash), so another key's entry would
// take a 128-bit collision, and reading the key's bytes would cost a hit
// one more memory round trip.
func (m *l1) get(key string) *entry {
	e, _ := m.rc.Get(key)
	return e
}

// set stores e, unless a newer entry is already there. When it returns,
// a get of the key sees e (or the newer entry): ristretto buffers the
// insertion of a new key, so set waits for the buffer in that case only.
func (m *l1) set(e *entry, cost int64) {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return
	}
	mu := &m.stripes[stripe(e.key)]
	mu.Lock()
	defer mu.Unlock()
	_, existed := m.rc.Get(e.key)
	if !m.rc.Set(e.key, e, cost) {
		// The buffer was full and the set was dropped: flush and retry once.
		m.rc.Wait()
		m.rc.Set(e.key, e, cost)
	}
	if !existed {
		m.rc.Wait()
	}
}

// close releases ristretto once no write is in progress.
func (m *l1) close() {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if !m.closed {
		m.closed = true
		m.rc.Close()
	}
}

// stripe spreads keys over the write locks (FNV-1a).
func stripe(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % 64)
}
