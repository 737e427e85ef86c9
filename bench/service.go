package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/eko/gocache/lib/v4/cache"
	"github.com/eko/gocache/lib/v4/marshaler"
	"github.com/eko/gocache/lib/v4/store"
	redisstore "github.com/eko/gocache/store/redis/v4"
	ristrettostore "github.com/eko/gocache/store/ristretto/v4"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/compress"
	"github.com/strata-cache/strata/hybrid"
)

// The service mix (BenchmarkServiceMix): several nodes of one service in one
// process, each with its own Redis client and its own cache instance, over
// one redis-server.

const (
	// svcKeys is the key space of the service mix.
	svcKeys = 100_000
	// svcCapacity is every node's memory capacity: more than the key space,
	// so that nothing is evicted and a miss means a cold key or an
	// invalidation.
	svcCapacity = 1 << 17
	// svcPayload is the size of a value's payload.
	svcPayload = 1024
)

// svcValue is the value of the service mix: the key and the version it was
// built from, and a 1 KiB payload derived from both.
type svcValue struct {
	Key     string `msgpack:"k"`
	Version int64  `msgpack:"v"`
	Payload []byte `msgpack:"p"`
}

// svcFiller is the shared text the payloads are made of.
var svcFiller = func() []byte {
	b := make([]byte, svcPayload)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// newSvcValue returns the value of key at version: a fresh 1 KiB payload
// that starts with the version and the key.
func newSvcValue(key string, version int64) svcValue {
	p := make([]byte, svcPayload)
	copy(p, svcFiller)
	binary.LittleEndian.PutUint64(p, uint64(version))
	copy(p[8:], key)
	return svcValue{Key: key, Version: version, Payload: p}
}

// svcLoader is the data source of the mix: it returns key's value at the
// source's current version.
type svcLoader func(ctx context.Context, key string) (svcValue, error)

// svcNode is one node's cache in the service mix.
type svcNode interface {
	// GetOrSet returns key's value, loading it on a miss.
	GetOrSet(ctx context.Context, key string) (svcValue, error)
	// Set stores v under key.
	Set(ctx context.Context, key string, v svcValue) error
	// Close releases what the node started (not its Redis client).
	Close() error
}

// svcEnv is what a node is built from: its own Redis client, the name all
// nodes of one run share (a key prefix, and Strata's channel), and the
// loader.
type svcEnv struct {
	rdb    *redis.Client
	name   string
	load   svcLoader
	logger *slog.Logger // for the contenders that log (Strata)
}

// countingHandler is a slog handler that counts the records of level Warn
// and above and keeps the first one's message, so that the logs of a
// benchmark neither interleave with its result lines nor go unnoticed.
type countingHandler struct {
	n     *atomic.Int64
	once  *sync.Once
	first *string
}

func newCountingHandler() countingHandler {
	return countingHandler{n: new(atomic.Int64), once: new(sync.Once), first: new(string)}
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if h.n.Add(1) == 1 {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.once.Do(func() { *h.first = b.String() })
	}
	return nil
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// strataNode is a Strata node as a production service builds it: a provider
// on the node's client with ProductionDefaults (30 min entries, fail-safe,
// eager refresh, jitter, factory timeouts, background distributed
// operations), one registered cache with the Redis L2 and the Redis
// backplane (a subscription of its own), and the capacity of the mix.
// Register waits for the backplane subscription, so that no Set of the
// measured loop goes unannounced to a node still subscribing.
type strataNode struct {
	p       *strata.Provider
	c       *hybrid.Cache
	factory hybrid.Factory[svcValue]
}

// newStrataNode is Strata with ProductionDefaults: Set returns once the
// memory tier is written, and the Redis write and its announcement follow
// in the background.
func newStrataNode(e svcEnv) (svcNode, error) { return newStrataNodeWith(e, nil) }

// newStrataSyncNode is Strata with ProductionDefaults but
// BackgroundL2Operations off: Set returns once Redis is written and the
// change announced.
func newStrataSyncNode(e svcEnv) (svcNode, error) { return newStrataNodeWith(e, syncWrites) }

// newStrataSyncNoValuesNode is strata-sync with Set messages that never
// carry the entry (DisableBackplaneValues): the receivers mark their copy
// stale and read Redis again, as before issue 11's change.
func newStrataSyncNoValuesNode(e svcEnv) (svcNode, error) {
	return newStrataNodeWith(e, func(s *strata.CacheSettings) {
		syncWrites(s)
		s.DisableBackplaneValues = true
	})
}

// newStrataSyncS2Node is strata-sync with values of 64 bytes and more
// compressed with S2 in Redis (module compress), as go-redis/cache
// compresses them by default (s2, above 64 bytes).
func newStrataSyncS2Node(e svcEnv) (svcNode, error) {
	return newStrataNodeWith(e, func(s *strata.CacheSettings) {
		syncWrites(s)
		s.Compressor = compress.S2{}
		s.CompressMinSize = 64
	})
}

// newStrataSyncNoBackplaneNode is strata-sync without a backplane
// (DisableBackplane): the nodes do not tell each other of their writes, as
// go-redis/cache's and eko's do not. It is not a configuration to run (its
// stale reads are the peers'); it measures what the backplane costs, so that
// the rest of the difference to go-redis/cache can be told apart.
func newStrataSyncNoBackplaneNode(e svcEnv) (svcNode, error) {
	return newStrataNodeWith(e, func(s *strata.CacheSettings) {
		syncWrites(s)
		s.DisableBackplane = true
	})
}

// syncWrites turns BackgroundL2Operations off.
func syncWrites(s *strata.CacheSettings) { s.Entry.BackgroundL2Operations = false }

// newStrataNodeWith builds a Strata node with ProductionDefaults, the mix's
// capacity, and then configure (nil: nothing more).
func newStrataNodeWith(e svcEnv, configure func(*strata.CacheSettings)) (svcNode, error) {
	p, err := strata.NewProvider(strata.Settings{
		Redis:  &strata.RedisSettings{Client: e.rdb},
		Logger: e.logger,
	})
	if err != nil {
		return nil, err
	}
	c, err := p.Register(e.name, func(s *strata.CacheSettings) {
		s.L1MaxEntries = svcCapacity
		s.WaitForInitialBackplaneSubscribe = 5 * time.Second
		if configure != nil {
			configure(s)
		}
	})
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	load := e.load
	return &strataNode{p: p, c: c, factory: func(ctx context.Context, fc *hybrid.FactoryContext[svcValue]) (svcValue, error) {
		return load(ctx, fc.Key())
	}}, nil
}

func (s *strataNode) GetOrSet(ctx context.Context, key string) (svcValue, error) {
	return hybrid.GetOrSet(ctx, s.c, key, s.factory)
}

func (s *strataNode) Set(ctx context.Context, key string, v svcValue) error {
	return hybrid.Set(ctx, s.c, key, v)
}

func (s *strataNode) Close() error { return s.p.Close() }

// counts returns the node's memory misses and reads of Redis (hits and
// misses of the distributed tier) so far.
func (s *strataNode) counts() (l1Misses, l2Reads uint64) {
	st := s.c.Stats()
	return st.L1Misses, st.L2Hits + st.L2Misses
}

// svcCounter is a node that counts its tier accesses (Strata).
type svcCounter interface {
	counts() (l1Misses, l2Reads uint64)
}

// goRedisNode is go-redis/cache as its README sets it up: Redis and a local
// TinyLFU per node (capacity of the mix, local TTL of a minute as in the
// README), no invalidation between nodes. GetOrSet is Once.
type goRedisNode struct {
	c   *rediscache.Cache
	do  func(*rediscache.Item) (any, error)
	pfx string
}

func newGoRedisNode(e svcEnv) (svcNode, error) {
	c := rediscache.New(&rediscache.Options{
		Redis:      e.rdb,
		LocalCache: rediscache.NewTinyLFU(svcCapacity, time.Minute),
	})
	load := e.load
	pfx := e.name + ":"
	return &goRedisNode{c: c, pfx: pfx, do: func(it *rediscache.Item) (any, error) {
		return load(it.Context(), it.Key[len(pfx):])
	}}, nil
}

func (g *goRedisNode) GetOrSet(ctx context.Context, key string) (svcValue, error) {
	var v svcValue
	err := g.c.Once(&rediscache.Item{Ctx: ctx, Key: g.pfx + key, Value: &v, TTL: ttl, Do: g.do})
	return v, err
}

func (g *goRedisNode) Set(ctx context.Context, key string, v svcValue) error {
	return g.c.Set(&rediscache.Item{Ctx: ctx, Key: g.pfx + key, Value: v, TTL: ttl})
}

func (g *goRedisNode) Close() error { return nil }

// ekoNode is eko/gocache's chain of a ristretto store and a Redis store
// behind eko's msgpack marshaler, one per node, no invalidation between
// nodes. The chain has no loader: GetOrSet is Get, then load and Set, with
// no stampede protection.
type ekoNode struct {
	rc    *ristretto.Cache[string, any]
	chain *cache.ChainCache[any]
	m     *marshaler.Marshaler
	load  svcLoader
	pfx   string
}

func newEkoNode(e svcEnv) (svcNode, error) {
	rc, err := newRistrettoCache[any](svcCapacity)
	if err != nil {
		return nil, err
	}
	l1 := cache.New[any](ristrettostore.NewRistretto[string, any](rc, store.WithCost(1), store.WithExpiration(ttl)))
	l2 := cache.New[any](redisstore.NewRedis(e.rdb, store.WithExpiration(ttl)))
	chain := cache.NewChain[any](l1, l2)
	return &ekoNode{rc: rc, chain: chain, m: marshaler.New(chain), load: e.load, pfx: e.name + ":"}, nil
}

func (n *ekoNode) GetOrSet(ctx context.Context, key string) (svcValue, error) {
	var v svcValue
	if _, err := n.m.Get(ctx, n.pfx+key, &v); err == nil {
		return v, nil
	}
	v, err := n.load(ctx, key)
	if err != nil {
		return svcValue{}, err
	}
	return v, n.m.Set(ctx, n.pfx+key, v)
}

func (n *ekoNode) Set(ctx context.Context, key string, v svcValue) error {
	return n.m.Set(ctx, n.pfx+key, v)
}

func (n *ekoNode) Close() error {
	err := n.chain.Close()
	n.rc.Close()
	if err != nil {
		return fmt.Errorf("bench: eko chain: %w", err)
	}
	return nil
}
