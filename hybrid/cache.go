package hybrid

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/serializer"
)

// Options configure a Cache. The zero value is a memory-only cache named
// "default" with the library defaults.
type Options struct {
	// Name identifies the cache in logs, metrics and backplane messages.
	// Empty means "default".
	Name string
	// Entry holds the default options of every entry; per-call Options
	// override them. Zero fields mean the library defaults (see EntryOptions).
	Entry EntryOptions
	// L1MaxEntries is the capacity of the memory tier, in units of
	// EntryOptions.Size (1 per entry by default). Zero means
	// DefaultL1MaxEntries.
	L1MaxEntries int64
	// MaxKeyLength is the longest key accepted, in bytes. Zero means
	// DefaultMaxKeyLength (1024).
	MaxKeyLength int
	// Logger receives what the cache swallows (a failed background refresh,
	// a fail-safe activation). Nil means slog.Default().
	Logger *slog.Logger
	// RedactKeys replaces keys with "[redacted]" in logs.
	RedactKeys bool
	// Events are callbacks that observe the cache (hits, misses, factory
	// calls, fail-safe, errors; see Events). Nil means none, at the cost of
	// one pointer check per operation.
	Events *Events

	// L2 is the distributed tier. Nil means memory-only. See NewRedisL2.
	L2 L2
	// KeyPrefix prefixes every key in the distributed tier, so that caches
	// sharing a store never see each other's keys. Empty means Name + ":".
	KeyPrefix string
	// Serializer encodes values for the distributed tier. Nil means
	// serializer.Msgpack.
	Serializer serializer.Serializer
	// MaxValueSize is the largest encoded entry written to the distributed
	// tier, in bytes; Set returns ErrValueTooLarge above it. Zero means
	// DefaultMaxValueSize (16 MiB).
	MaxValueSize int
	// L2CircuitBreakerDuration is how long the distributed tier is skipped
	// after a transient error. Zero means DefaultL2CircuitBreakerDuration
	// (30s).
	L2CircuitBreakerDuration time.Duration
	// DisableL2CircuitBreaker keeps calling the distributed tier after
	// errors.
	DisableL2CircuitBreaker bool
	// Backplane tells the other instances of this cache about changes and
	// applies theirs to the memory tier. Nil means none. The cache takes
	// ownership: Close closes it.
	Backplane backplane.Backplane
	// InstanceID tells this instance's backplane messages from the others'.
	// Empty means a random id.
	InstanceID string
	// WaitForInitialBackplaneSubscribe is how long New waits for the
	// backplane subscription to be confirmed. Zero (the default) means New
	// does not wait: the subscription completes in the background, and the
	// cache works from memory (and the distributed tier) meanwhile; what it
	// stored before the confirmation is verified against the distributed
	// tier when next read. New never fails because the backplane's server
	// is unreachable, also after this wait.
	WaitForInitialBackplaneSubscribe time.Duration
	// AutoRecoveryMaxItems bounds the queue of changes that failed to reach
	// the distributed tier and are replayed when it is back (one per key).
	// Zero means DefaultAutoRecoveryMaxItems.
	AutoRecoveryMaxItems int
}

// Validate reports the first field of o that cannot be honoured, or nil.
// The error wraps ErrInvalidOptions and names the field. New calls it; so
// does the provider of package strata, for the same fields.
func (o *Options) Validate() error {
	if err := o.Entry.Validate(); err != nil {
		return err
	}
	ints := []struct {
		name string
		v    int64
	}{
		{"L1MaxEntries", o.L1MaxEntries},
		{"MaxKeyLength", int64(o.MaxKeyLength)},
		{"MaxValueSize", int64(o.MaxValueSize)},
		{"L2CircuitBreakerDuration", int64(o.L2CircuitBreakerDuration)},
		{"AutoRecoveryMaxItems", int64(o.AutoRecoveryMaxItems)},
		{"WaitForInitialBackplaneSubscribe", int64(o.WaitForInitialBackplaneSubscribe)},
	}
	for _, f := range ints {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is negative", ErrInvalidOptions, f.name)
		}
	}
	if o.MaxValueSize > MaxMaxValueSize {
		return fmt.Errorf("%w: MaxValueSize %d is above %d (Redis's proto-max-bulk-len)", ErrInvalidOptions, o.MaxValueSize, MaxMaxValueSize)
	}
	return nil
}

// Cache is a named hybrid cache. It is safe for concurrent use. Read and
// write values with the generic functions GetOrSet, TryGet and Set.
type Cache struct {
	name       string
	entry      EntryOptions // defaults applied
	l1         *l1
	ev         *Events            // nil: no callbacks; next to l1, which every hit loads
	sf         singleflight.Group // loads of keys: see flight
	claims     claims             // which loads hold which keys, for batches: see claimFlight
	tagSF      singleflight.Group // loads of tag and clear records from the distributed tier
	tagTTL     time.Duration
	clearKnown atomic.Bool // the distributed tier's Clear state was read
	readers    readers
	log        *slog.Logger
	redactKeys bool
	maxKey     int

	l2              L2
	prefix          string
	ser             serializer.Serializer
	maxValue        int
	breaker         breaker
	recovery        recovery
	configErrLog    rateLimit
	transientErrLog rateLimit
	stats           stats
	bp              backplane.Backplane
	id              string

	inv   atomic.Pointer[invalidations]
	invMu sync.Mutex

	hookPanic atomic.Bool // an event callback panicked (logged once)

	closed    atomic.Bool
	mu        sync.RWMutex // guards starting background work against Close
	wg        sync.WaitGroup
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New creates a cache from o. It returns an error that names the field at
// fault when o is invalid.
func New(o Options) (*Cache, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w (cache %q)", err, o.Name)
	}
	if o.L1MaxEntries == 0 {
		o.L1MaxEntries = DefaultL1MaxEntries
	}
	if o.MaxKeyLength == 0 {
		o.MaxKeyLength = DefaultMaxKeyLength
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = o.Name + ":"
	}
	if o.Serializer == nil {
		o.Serializer = serializer.Msgpack{}
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.L2CircuitBreakerDuration == 0 {
		o.L2CircuitBreakerDuration = DefaultL2CircuitBreakerDuration
	}
	if o.DisableL2CircuitBreaker {
		o.L2CircuitBreakerDuration = 0
	}
	if o.AutoRecoveryMaxItems == 0 {
		o.AutoRecoveryMaxItems = DefaultAutoRecoveryMaxItems
	}
	mem, err := newL1(o.L1MaxEntries)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		name:       o.Name,
		entry:      o.Entry.withDefaults(),
		l1:         mem,
		ev:         newEvents(o.Events),
		log:        o.Logger.With("cache", o.Name),
		redactKeys: o.RedactKeys,
		maxKey:     o.MaxKeyLength,
		l2:         o.L2,
		prefix:     o.KeyPrefix,
		ser:        o.Serializer,
		maxValue:   o.MaxValueSize,
	}
	c.bp, c.id = o.Backplane, o.InstanceID
	if c.id == "" {
		c.id = newInstanceID()
	}
	c.tagTTL = tagTTL(&c.entry)
	c.breaker.d = o.L2CircuitBreakerDuration
	if c.ev != nil && c.ev.CircuitBreaker != nil {
		c.breaker.changed = c.breakerChanged
	}
	c.recovery.max = o.AutoRecoveryMaxItems
	c.entry.Tags = append([]string(nil), o.Entry.Tags...)
	c.inv.Store(&invalidations{})
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.subscribe(o.WaitForInitialBackplaneSubscribe); err != nil {
		c.cancel()
		c.wg.Wait()
		mem.close()
		return nil, fmt.Errorf("hybrid: cache %q: subscribe: %w", o.Name, err)
	}
	return c, nil
}

// Name returns the name of the cache.
func (c *Cache) Name() string { return c.name }

// Close stops the cache's background work (refreshes, timed-out factories,
// whose contexts it cancels), waits for it, and releases the memory tier.
// Every later operation returns ErrClosed. Close is idempotent and
// returns nil.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		if c.bp != nil {
			c.bp.Close()
		}
		c.l1.close()
	})
	return nil
}

// goBackground runs f on a goroutine that Close waits for. It reports
// false, without running f, once the cache is closed.
func (c *Cache) goBackground(f func()) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return false
	}
	c.wg.Go(f)
	return true
}

// check validates what every operation receives.
func (c *Cache) check(ctx context.Context, key string) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > c.maxKey {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidKey, len(key), c.maxKey)
	}
	if isReserved(key) {
		return fmt.Errorf("%w: the prefix %q is reserved", ErrInvalidKey, reservedPrefix)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// keyAttr is the log attribute of a key, redacted if so configured.
func (c *Cache) keyAttr(key string) slog.Attr {
	if c.redactKeys {
		return slog.String("key", "[redacted]")
	}
	return slog.String("key", key)
}

// Remove deletes key from the cache. A read that raced the removal cannot
// put the old value back.
func (c *Cache) Remove(ctx context.Context, key string, opts ...Option) error {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	now := stamp()
	c.l1.set(newTombstone(key, now), 1)
	c.propagate(pending{op: opRemove, key: key, ts: now}, o)
	return nil
}

// Expire marks key as expired: reads miss it, but it remains a fail-safe
// fallback until its physical expiry.
func (c *Cache) Expire(ctx context.Context, key string, opts ...Option) error {
	if err := c.check(ctx, key); err != nil {
		return err
	}
	o, err := c.resolve(opts)
	if err != nil {
		return err
	}
	ts, now := stamp(), nowNano()
	if e := c.l1.get(key); e != nil && !e.tombstone && c.checkEntry(e, c.inv.Load(), false) != invalidGone {
		c.l1.set(expiredCopy(e, ts, now), o.Size)
	}
	var phys int64 // without fail-safe the distributed copy is deleted
	if o.FailSafe {
		phys = now + int64(o.FailSafeMaxDuration)
	}
	c.propagate(pending{op: opExpire, key: key, ts: ts, physUntil: phys}, o)
	return nil
}

// expiredCopy is e marked stale at now. It takes the expiry's timestamp ts,
// so a read that raced the expiry cannot bring the fresh copy back, but
// keeps its validity timestamp, so an earlier Clear or RemoveByTag still
// applies.
func expiredCopy(e *entry, ts, now int64) *entry {
	x := e.clone()
	x.ts = max(e.ts, ts)
	x.freshUntil = min(e.freshUntil, now)
	x.l2Fresh = min(e.l2Fresh, now)
	x.eagerAt = 0
	return x
}

// clockBase anchors nowNano: the wall time at start plus the monotonic
// time elapsed since.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

// nowNano is the clock for expiry checks, in unix nanoseconds. It reads
// only the monotonic clock (time.Now reads two clocks, and a clock read is
// the largest cost of a hit on some virtual machines); inside a
// testing/synctest bubble time.Since uses the bubble's clock.
func nowNano() int64 { return clockBaseUnix + int64(time.Since(clockBase)) }

var lastStamp atomic.Int64

// stamp is the clock for timestamps (creation, removal, invalidation): the
// wall clock, but strictly increasing within the process, so that a change
// made after another always carries a later timestamp even if the wall
// clock steps back or two calls read the same instant.
func stamp() int64 {
	for {
		last := lastStamp.Load()
		now := time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if lastStamp.CompareAndSwap(last, now) {
			return now
		}
	}
}
