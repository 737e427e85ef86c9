package hybrid

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// l1 is the memory tier: ristretto v2 holding *entry values, plus a small
// window of recent writes.
//
// ristretto holds entries without a TTL: logical and physical expiry live
// in the entry, checked against the hit clock on a hit. A physically expired
// entry is never returned as a value; it leaves through eviction or when a
// newer entry replaces it.
//
// Read your writes without a buffer flush: ristretto buffers the insertion
// of a new key (a get right after misses) and its admission policy may
// refuse it altogether. Every write also goes to the window (recentSlots
// per shard, the newest per key, oldest out first), which get consults only
// when ristretto misses: a hit costs nothing more, and a recent write is
// readable at once, admitted or not. The window always holds the newest
// entry written for a key it holds (every write passes through it), so
// serving it on a miss never brings back an older value.
//
// Writes take a striped lock per key: ristretto treats two concurrent
// first writes of a key as two insertions and keeps the first to reach its
// buffer, whatever their timestamps. So a write of a key whose earlier
// insertion may still be buffered (the window holds it, ristretto does not
// have it yet) flushes the buffer first, and then goes through
// ShouldUpdate (newest wins); this is the only write that waits. Reads take
// no lock of ours on a hit. The lock also keeps writes from racing close.
type l1 struct {
	rc      *ristretto.Cache[string, *entry]
	closeMu sync.RWMutex
	closed  bool
	stripes [64]sync.Mutex
	recent  [64]recentShard
	// epoch counts the flushes of ristretto's buffer begun (flush), and
	// flushed is the highest epoch whose flush has ended: a window entry
	// put at epoch p is known to ristretto (admitted or refused) once
	// flushed > p.
	epoch, flushed atomic.Uint64
}

// recentSlots is the number of recent writes kept per shard (64 shards).
const recentSlots = 64

// recentShard is one shard of the window of recent writes: a ring of the
// entries written, and the newest per key.
type recentShard struct {
	mu   sync.Mutex
	ring [recentSlots]recentSlot
	next int
	keys map[string]*entry
}

// recentSlot is one write in the window and the flush epoch when it was
// put (after its ristretto Set).
type recentSlot struct {
	e     *entry
	epoch uint64
}

// put records e, set in ristretto at epoch, as the newest write of its key
// (set has checked that it is); the oldest slot makes room. It changes
// nothing and returns false when the write it would push out is still its
// key's newest here and was put at an epoch that no flush has covered yet
// (flushed is the last covered one): the caller flushes and puts again.
func (r *recentShard) put(e *entry, epoch, flushed uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string]*entry, recentSlots)
	}
	if old := r.ring[r.next]; old.e != nil && r.keys[old.e.key] == old.e {
		if old.epoch >= flushed {
			return false
		}
		delete(r.keys, old.e.key)
	}
	r.ring[r.next] = recentSlot{e: e, epoch: epoch}
	r.next = (r.next + 1) % recentSlots
	r.keys[e.key] = e
	return true
}

// drop forgets key.
func (r *recentShard) drop(key string) {
	r.mu.Lock()
	delete(r.keys, key)
	r.mu.Unlock()
}

func (r *recentShard) get(key string) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[key]
}

// newestWins is the memory tier's rule for replacing existing by incoming:
// newest wins (a physically expired entry can always be replaced); at the
// same timestamp a value beats a tombstone, because a tombstone written for
// a Set message must not replace the value of that very write.
//
// physUntil is reckoned on nowNano (the monotonic clock anchored at the
// wall time of start), so it is compared with nowNano, not with the wall
// clock: after the wall clock stepped forward (NTP, a VM resumed), every
// entry would look physically expired and any older write would replace it.
func newestWins(incoming, existing *entry) bool {
	if existing.physUntil <= nowNano() {
		return true
	}
	if incoming.ts != existing.ts {
		return incoming.ts > existing.ts
	}
	return !incoming.tombstone() || existing.tombstone()
}

// maxCounters bounds the admission policy's counters (ristretto's
// NumCounters): its sketch and doorkeeper take about 4 bytes per counter,
// allocated at once, so 2^23 take ~32 MiB. ristretto's advice is ten per
// entry the cache will hold; L1MaxEntries is in units of Size, which a
// cache that weighs entries by their bytes sets to a byte count (2^30 for
// 1 GiB asked ten billion counters, ~48 GiB, before anything was stored).
// Past 840,000 entries the counters are fewer than ten per entry:
// admission judges a little less finely.
const maxCounters = 1 << 23

func newL1(maxEntries int64) (*l1, error) {
	counters := int64(maxCounters)
	if maxEntries < maxCounters/10 {
		counters = max(maxEntries*10, 100)
	}
	rc, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        counters,
		MaxCost:            maxEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
		ShouldUpdate:       newestWins,
	})
	if err != nil {
		return nil, fmt.Errorf("hybrid: memory tier: %w", err)
	}
	return &l1{rc: rc}, nil
}

// get returns the entry stored under key, or nil: ristretto's, or on a
// miss the window's (a recent write not admitted yet, or refused).
//
// It does not compare the stored key: ristretto matches two independent
// 64-bit hashes of it (memhash and xxhash), so another key's entry would
// take a 128-bit collision, and reading the key's bytes would cost a hit
// one more memory round trip.
func (m *l1) get(key string) *entry {
	if e, ok := m.rc.Get(key); ok {
		return e
	}
	return m.recent[stripe(key)].get(key)
}

// set stores e, unless a newer entry is already there. When it returns,
// a get of the key sees e (or the newer entry): at once from ristretto for
// a key it has, else through the window until ristretto has taken it (or
// for as long as the window keeps it, if ristretto refuses it). It does not
// wait for ristretto's buffer, except when an earlier insertion of the same
// key may still be in it. e costs its Size (entry.size): the one it was
// written with, whichever call stores it or a copy of it.
func (m *l1) set(e *entry) { m.setAt(e, e.size()) }

// setAt is set at cost, whatever e's Size (tests weigh bare entries).
func (m *l1) setAt(e *entry, cost int64) { m.setWhen(e, cost, nil) }

// setIfHeld is set, but only while memory holds held for e's key (that very
// entry): a copy made of held (a failed eager refresh's, without its
// refresh point) must not replace a copy made since with the same
// timestamp (a fail-safe throttle, a sliding extension), which newest wins
// would let it.
func (m *l1) setIfHeld(e, held *entry) { m.setWhen(e, e.size(), held) }

// setWhen is setAt, and when held is not nil, only while memory holds it.
func (m *l1) setWhen(e *entry, cost int64, held *entry) {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return
	}
	i := stripe(e.key)
	mu := &m.stripes[i]
	mu.Lock()
	defer mu.Unlock()
	if held != nil && m.get(e.key) != held {
		return // writes hold the stripe's lock: what get sees stays until we write
	}
	w := &m.recent[i]
	known := w.get(e.key)
	if known != nil && !newestWins(e, known) {
		return // a newer write of the key is still in the window
	}
	// GetTTL tells whether ristretto has the key without counting an
	// access for its admission policy (Get would).
	_, present := m.rc.GetTTL(e.key)
	if !present && known != nil {
		m.flush() // an earlier insertion may be buffered: let it land first
		_, present = m.rc.GetTTL(e.key)
	}
	if present {
		// Refuse an older write here, not through ShouldUpdate alone:
		// ristretto sends an update it refused to its policy as an
		// insertion, which counts the refused entry's cost for the key
		// and, if the key is evicted before ristretto reaches it, inserts
		// the older entry. (Get counts an access: an update is one.)
		if cur, ok := m.rc.Get(e.key); ok && !newestWins(e, cur) {
			return
		}
	}
	if cost > m.rc.MaxCost() {
		// Never stored (ristretto refuses the insertion, but would apply an
		// update of a present key): a removal at e's timestamp instead, so
		// that no older value of the key is served either.
		e, cost = newTombstone(e.key, e.ts), 1
	}
	if !m.rc.Set(e.key, e, cost) {
		// The buffer was full and the set was dropped: flush and retry once.
		m.flush()
		m.rc.Set(e.key, e, cost)
	}
	if present {
		// An update of a present key is applied at once, newest wins:
		// ristretto holds the newest now, the window need not. Unless the
		// key was evicted since it was found: then ristretto took the
		// write as an insertion, which is buffered, and it goes to the
		// window as one (else a later write, finding the key nowhere,
		// would be a second insertion, dropped when ristretto reaches
		// this one).
		if _, still := m.rc.GetTTL(e.key); still {
			w.drop(e.key)
			return
		}
	}
	// A write leaves the window only once ristretto has taken (or refused)
	// its insertion: else a later write of its key, not seeing it in the
	// window or in ristretto, would be a second insertion that ristretto
	// drops when it reaches the first, and the older value would win. At
	// most one flush per recentSlots new keys of a shard, and one flush
	// covers every shard's earlier writes (2^18 new keys into a full tier:
	// 69 flushes). Asking ristretto whether it holds the leaving write, or
	// being told of its refusals and evictions, cost more than the flushes.
	for !w.put(e, m.epoch.Load(), m.flushed.Load()) {
		m.flush()
	}
}

// flush waits until ristretto has applied every write buffered before it
// (its Wait), and records the epoch it covers.
func (m *l1) flush() {
	ep := m.epoch.Add(1)
	m.rc.Wait()
	for {
		done := m.flushed.Load()
		if done >= ep || m.flushed.CompareAndSwap(done, ep) {
			return
		}
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
