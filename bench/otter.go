package bench

import (
	"context"

	"github.com/maypok86/otter/v2"
)

// otterCache is otter v2: GetIfPresent for a lookup, Get with a Loader (which
// deduplicates concurrent loads of a key) for a read-through.
type otterCache struct {
	c      *otter.Cache[string, Value]
	loader otter.Loader[string, Value]
}

func newOtter(e env) (contender, error) {
	return newOtterSized(e, capacity)
}

func newOtterSized(e env, max int) (contender, error) {
	c, err := otter.New(&otter.Options[string, Value]{
		MaximumSize:      max,
		ExpiryCalculator: otter.ExpiryWriting[string, Value](ttl),
	})
	if err != nil {
		return nil, err
	}
	return &otterCache{c: c, loader: otter.LoaderFunc[string, Value](e.load)}, nil
}

func (o *otterCache) Get(_ context.Context, key string) (Value, bool) {
	return o.c.GetIfPresent(key)
}

func (o *otterCache) GetOrLoad(ctx context.Context, key string) (Value, error) {
	return o.c.Get(ctx, key, o.loader)
}

func (o *otterCache) Set(_ context.Context, key string, v Value) error {
	o.c.Set(key, v)
	return nil
}

func (o *otterCache) Close() error {
	o.c.StopAllGoroutines()
	return nil
}
