package hybrid

import (
	"fmt"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// l1 is the memory tier: ristretto v2 holding *entry values.
//
// ristretto holds entries without a TTL: logical and physical expiry live
// in the entry, checked with one clock read on a hit. Physically expired
// entries are dropped when read and otherwise leave through eviction.
type l1 struct {
	rc *ristretto.Cache[string, *entry]
}

func newL1(maxEntries int64) (*l1, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        max(maxEntries*10, 100),
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
		// Newest wins: an older entry never replaces a newer one (a
		// physically expired one can always be replaced).
		ShouldUpdate: func(incoming, existing *entry) bool {
			return incoming.ts >= existing.ts || existing.physUntil <= time.Now().UnixNano()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("hybrid: memory tier: %w", err)
	}
	return &l1{rc: rc}, nil
}

// get returns the entry stored under key, or nil. It guards against
// ristretto's hash collisions by comparing the stored key.
func (m *l1) get(key string) *entry {
	e, ok := m.rc.Get(key)
	if !ok || e.key != key {
		return nil
	}
	return e
}

// set stores e, unless a newer entry is already there. When it returns,
// a get of the key sees e (or the newer entry): ristretto buffers the
// insertion of a new key, so set waits for the buffer in that case only.
func (m *l1) set(e *entry, cost int64) {
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

func (m *l1) del(key string) { m.rc.Del(key) }

func (m *l1) clear() { m.rc.Clear() }

func (m *l1) close() { m.rc.Close() }
