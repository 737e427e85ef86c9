package bench

import (
	"context"
	"errors"

	"github.com/dgraph-io/ristretto/v2"
)

// newRistrettoCache returns a ristretto v2 cache that holds up to max
// entries of cost 1, configured as ristretto's README recommends (10 counters
// per entry, BufferItems 64), with metrics off and the internal cost ignored
// so that MaxCost counts entries.
func newRistrettoCache[V any](max int64) (*ristretto.Cache[string, V], error) {
	return ristretto.NewCache(&ristretto.Config[string, V]{
		NumCounters:        10 * max,
		MaxCost:            max,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
}

// ristrettoRaw is the floor: a raw ristretto v2 Get. It has no loader, so
// GetOrLoad is what a user writes by hand (no stampede protection).
type ristrettoRaw struct {
	c    *ristretto.Cache[string, Value]
	load loader
}

func newRistretto(e env) (contender, error) {
	return newRistrettoSized(e, capacity)
}

func newRistrettoSized(e env, max int64) (contender, error) {
	c, err := newRistrettoCache[Value](max)
	if err != nil {
		return nil, err
	}
	return &ristrettoRaw{c: c, load: e.load}, nil
}

func (r *ristrettoRaw) Get(_ context.Context, key string) (Value, bool) {
	return r.c.Get(key)
}

func (r *ristrettoRaw) GetOrLoad(ctx context.Context, key string) (Value, error) {
	if v, ok := r.c.Get(key); ok {
		return v, nil
	}
	v, err := r.load(ctx, key)
	if err != nil {
		return Value{}, err
	}
	r.c.SetWithTTL(key, v, 1, ttl)
	return v, nil
}

// Set stores v. Ristretto buffers writes (and may drop them): a read that
// must see it waits first (see wait).
func (r *ristrettoRaw) Set(_ context.Context, key string, v Value) error {
	if !r.c.SetWithTTL(key, v, 1, ttl) {
		return errors.New("ristretto: set dropped")
	}
	return nil
}

func (r *ristrettoRaw) wait() { r.c.Wait() }

func (r *ristrettoRaw) Close() error {
	r.c.Close()
	return nil
}

// ristrettoNoDrop is raw ristretto used so that it loses no write: a Set
// its buffer refuses waits for ristretto's goroutine to drain the buffer
// (Wait) and is tried again, as Strata's memory tier does. Writing new keys
// into a full cache, it runs at the pace of that goroutine's admission and
// eviction work: the floor of a ristretto-based tier that drops nothing
// (BenchmarkMemoryWrite; raw ristretto keeps its pace by dropping).
type ristrettoNoDrop struct{ ristrettoRaw }

func newRistrettoNoDrop(e env) (contender, error) {
	c, err := newRistrettoCache[Value](capacity)
	if err != nil {
		return nil, err
	}
	return &ristrettoNoDrop{ristrettoRaw{c: c, load: e.load}}, nil
}

func (r *ristrettoNoDrop) Set(_ context.Context, key string, v Value) error {
	for !r.c.SetWithTTL(key, v, 1, ttl) {
		r.c.Wait()
	}
	return nil
}

func (r *ristrettoNoDrop) GetOrLoad(ctx context.Context, key string) (Value, error) {
	if v, ok := r.c.Get(key); ok {
		return v, nil
	}
	v, err := r.load(ctx, key)
	if err != nil {
		return Value{}, err
	}
	return v, r.Set(ctx, key, v)
}
