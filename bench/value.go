package bench

import (
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	// numKeys is the key space of the hit benchmarks.
	numKeys = 1 << 16
	// capacity is the capacity of every cache: twice the key space, so that
	// filling every key never evicts one.
	capacity = 2 * numKeys
	// streamLen is the length of the pre-generated index streams; a power of
	// two so that a position wraps with a mask.
	streamLen = 1 << 20
	// ttl is the lifetime of every entry: long enough never to expire during
	// a run.
	ttl = time.Hour
	// seed makes every stream the same from run to run.
	seed = 20260101
)

// Value is what every contender stores: a small record that encodes to about
// 100 bytes of msgpack. Its strings point into shared pre-built text, so that
// the memory benchmark counts the cache's copy of the struct, not new strings.
type Value struct {
	ID      int64   `msgpack:"id"`
	Owner   string  `msgpack:"owner"`
	Title   string  `msgpack:"title"`
	Score   float64 `msgpack:"score"`
	Flags   uint32  `msgpack:"flags"`
	Version int32   `msgpack:"version"`
	Updated int64   `msgpack:"updated"`
}

var (
	owners = []string{"alice@example.com", "bob@example.org", "carol@example.net", "dave@example.io"}
	titles = []string{"report Q3 d3", "invoice 1234", "label, fast", "profile, vip"}
)

// newValue returns the value stored under key number i.
func newValue(i int) Value {
	return Value{
		ID:      int64(i),
		Owner:   owners[i%len(owners)],
		Title:   titles[i%len(titles)],
		Score:   float64(i) * 1.5,
		Flags:   uint32(i),
		Version: 7,
		Updated: 1767225600_000_000_000 + int64(i),
	}
}

// keyspace holds the pre-generated keys and index streams shared by every
// contender.
type keyspace struct {
	keys    []string
	values  []Value
	zipf    []uint32 // indexes into keys, Zipf-distributed (s=1.1)
	uniform []uint32 // indexes into keys, uniformly distributed
}

// newKeyspace builds the keys and the streams; call it outside the timer.
func newKeyspace() *keyspace {
	ks := &keyspace{
		keys:    make([]string, numKeys),
		values:  make([]Value, numKeys),
		zipf:    make([]uint32, streamLen),
		uniform: make([]uint32, streamLen),
	}
	for i := range ks.keys {
		ks.keys[i] = fmt.Sprintf("bench:item:%08d", i)
		ks.values[i] = newValue(i)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	z := rand.NewZipf(r, 1.1, 1, numKeys-1)
	for i := range ks.zipf {
		ks.zipf[i] = uint32(z.Uint64())
	}
	// Zipf's rank 0 is the hottest; shuffle ranks onto keys so that the hot
	// keys are not all neighbours in every data structure.
	perm := r.Perm(numKeys)
	for i, rank := range ks.zipf {
		ks.zipf[i] = uint32(perm[rank])
	}
	for i := range ks.uniform {
		ks.uniform[i] = uint32(r.IntN(numKeys))
	}
	return ks
}

// stream returns the index stream of the named distribution.
func (ks *keyspace) stream(dist string) []uint32 {
	if dist == "zipf" {
		return ks.zipf
	}
	return ks.uniform
}
