package hybrid

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/serializer"
)

// Library defaults used where an EntryOptions field is zero.
const (
	// DefaultDuration is the logical lifetime of an entry when
	// EntryOptions.Duration is zero.
	DefaultDuration = 30 * time.Second
	// DefaultFailSafeMaxDuration is the physical lifetime of a fail-safe
	// entry when EntryOptions.FailSafeMaxDuration is zero.
	DefaultFailSafeMaxDuration = 24 * time.Hour
	// DefaultFailSafeThrottleDuration is how long a fail-safe fallback counts
	// as fresh when EntryOptions.FailSafeThrottleDuration is zero.
	DefaultFailSafeThrottleDuration = 30 * time.Second
	// DefaultMaxKeyLength is the longest key accepted when
	// Options.MaxKeyLength is zero, in bytes.
	DefaultMaxKeyLength = 1024
	// DefaultL1MaxEntries is the capacity of the memory tier when
	// Options.L1MaxEntries is zero (in units of EntryOptions.Size).
	DefaultL1MaxEntries = 100_000
	// DefaultHitClockResolution is the resolution of the clock a memory
	// hit reads when Options.HitClockResolution is zero.
	DefaultHitClockResolution = time.Millisecond
)

// EntryOptions are the options of one entry. A cache holds a default set
// (Options.Entry); each call may override fields with Option values.
//
// A zero boolean or timeout means "off"; a zero Duration,
// FailSafeMaxDuration, FailSafeThrottleDuration or Size means the library
// default. Negative durations are invalid.
type EntryOptions struct {
	// Duration is the logical lifetime: the entry is fresh until then.
	// Zero means DefaultDuration (30s).
	Duration time.Duration
	// L1Duration, when positive and shorter than Duration, is the logical
	// lifetime in the memory tier only, so that a node picks up changes from
	// the distributed tier sooner. Zero means Duration.
	L1Duration time.Duration
	// JitterMaxDuration adds a uniform random extra in [0, JitterMaxDuration)
	// to each stored entry's duration, so that keys written together do not
	// expire together. Zero means no jitter.
	JitterMaxDuration time.Duration
	// FailSafe keeps entries past their logical expiry, until
	// FailSafeMaxDuration, as a fallback for a factory that fails or times out.
	FailSafe bool
	// FailSafeMaxDuration is the physical lifetime of an entry when FailSafe
	// is on; never shorter than Duration. Zero means 24h.
	FailSafeMaxDuration time.Duration
	// FailSafeThrottleDuration is how long a stale value served as a
	// fallback counts as fresh (memory tier only), so that a failing source
	// is not called on every request. Zero means 30s.
	FailSafeThrottleDuration time.Duration
	// FactorySoftTimeout applies only when FailSafe is on and a stale value
	// exists: after it, the stale value is served and the factory goes on in
	// the background. Zero means off.
	FactorySoftTimeout time.Duration
	// FactoryHardTimeout applies in every case: after it, the stale value is
	// served if there is one, else ErrFactoryTimeout. Zero means off.
	FactoryHardTimeout time.Duration
	// DisableBackgroundCompletion, when true, cancels a factory that timed
	// out and discards its result. When false (the default) a timed-out
	// factory that later succeeds still updates the cache, and the key stays
	// protected against a second concurrent factory until it ends.
	DisableBackgroundCompletion bool
	// L2SoftTimeout bounds how long a read waits for the distributed tier
	// when a stale value is available. Zero means off.
	L2SoftTimeout time.Duration
	// L2HardTimeout bounds how long any operation waits for the distributed
	// tier; a timed-out read counts as a miss. Zero means off for reads of
	// entries; writes (and reads of tag and Clear records) are then bounded
	// by 5s.
	L2HardTimeout time.Duration
	// BackgroundL2Operations makes writes to the distributed tier (and
	// backplane notifications) run in the background instead of blocking
	// the caller.
	BackgroundL2Operations bool
	// EagerRefreshThreshold, in (0, 1), starts one background refresh when
	// an entry is read after this fraction of its Duration. Zero means off.
	EagerRefreshThreshold float64
	// Tags are the entry's tags, for RemoveByTag.
	Tags []string
	// AllowStaleOnRead lets TryGet return a stale (fail-safe) entry.
	AllowStaleOnRead bool
	// SlidingDuration, when positive, is sliding expiration: the entry is
	// fresh for SlidingDuration after it is written and after each read,
	// never past Duration after it was written (the absolute limit). A
	// read extends it at most once per half window, in memory and in the
	// distributed tier (its TTL and logical expiry, not announced). Zero
	// means off; entries without it pay nothing on a hit.
	SlidingDuration time.Duration
	// AutoClone gives every reader its own copy of the value: the value is
	// serialized once when it is stored (with the cache's serializer) and
	// decoded for each read, so that a reader that changes what it got (a
	// slice, a map, a struct behind a pointer) cannot corrupt the copy of
	// another (FusionCache's EnableAutoClone). It costs a decode per read;
	// entries without it pay nothing. WARNING: without it, every reader of
	// a key shares one value: treat it as read-only.
	AutoClone bool
	// NotFoundDuration is how long a "not found" answered by a factory
	// (FactoryContext.NotFound) is cached, in memory and in the distributed
	// tier, so that a missing record does not reach the source on every
	// request. Zero means it is not cached.
	NotFoundDuration time.Duration
	// FailSafeErrorFilter, when set, decides which factory errors activate
	// fail-safe: it is called with the factory's error, and false returns
	// the error to the callers even if a stale value exists (a "not found"
	// from the database should not serve stale data; a timeout should).
	// Timeouts always activate fail-safe. Nil means every error does.
	FailSafeErrorFilter func(error) bool
	// FailSafeDefaultValue, when fail-safe is on and there is no stale value,
	// is returned instead of the factory's error or ErrFactoryTimeout
	// (FusionCache's failSafeDefaultValue). It is not cached. Set it per
	// call with WithFailSafeDefault, which checks its type, or here as a T
	// (or a *T) for every call of the cache: a value of another type than
	// the one read is ignored. Nil means none.
	FailSafeDefaultValue any
	// DistributedLock is cluster-wide stampede protection: a load that
	// finds nothing fresh in the distributed tier takes a short lock of the
	// key there before it calls the factory, so that of the processes
	// loading the key at once one calls the factory and the others wait
	// for its value (see docs/getorset.md). It needs a distributed tier
	// that is a Locker (RedisL2 is); without one, or when the tier fails,
	// a load runs as without it (one factory call per process). Batch
	// loads (GetOrSetMany) do not take it.
	DistributedLock bool
	// DistributedLockLease is the lease of a key's lock, renewed every
	// third of it while the holder's factory runs: a holder that dies
	// keeps the key locked at most this long. Zero means
	// DefaultDistributedLockLease (2s).
	DistributedLockLease time.Duration
	// DistributedLockTimeout is how long a load waits for another
	// process's lock before it calls the factory itself. The factory
	// timeouts still bound how long each caller waits. Zero means
	// DefaultDistributedLockTimeout (5s).
	DistributedLockTimeout time.Duration
	// SkipL1Read bypasses reading the memory tier for this call.
	SkipL1Read bool
	// SkipL1Write bypasses writing the memory tier for this call.
	SkipL1Write bool
	// SkipL2Read bypasses reading the distributed tier for this call.
	SkipL2Read bool
	// SkipL2Write bypasses writing the distributed tier for this call.
	SkipL2Write bool
	// SkipBackplane keeps this change local: no backplane message.
	SkipBackplane bool
	// Size is the cost of the entry in the memory tier, whose capacity is
	// Options.L1MaxEntries. Zero means 1. It is the Size of the call that
	// writes the entry (or reads it from the distributed tier or a
	// backplane message, with the cache's options there): a copy that
	// another call stores in its place (Expire, a fail-safe throttle, a
	// sliding extension, a backplane message marking it stale) keeps it.
	Size int64
}

// Option changes the options of one call, on top of the cache's
// EntryOptions. Build one with WithDuration, WithFailSafe, WithTags or,
// for any other field, WithOptions; the zero Option changes nothing.
type Option struct{ apply func(*EntryOptions) }

// WithDuration sets the entry's logical lifetime for this call.
func WithDuration(d time.Duration) Option {
	return Option{func(o *EntryOptions) { o.Duration = d }}
}

// WithFailSafe turns fail-safe on or off for this call.
func WithFailSafe(enabled bool) Option {
	return Option{func(o *EntryOptions) { o.FailSafe = enabled }}
}

// WithTags sets the tags of the entry written by this call.
func WithTags(tags ...string) Option {
	return Option{func(o *EntryOptions) { o.Tags = append([]string(nil), tags...) }}
}

// WithFailSafeDefault sets the value returned when fail-safe is on, the
// factory fails (or times out) and there is no stale value: see
// EntryOptions.FailSafeDefaultValue.
func WithFailSafeDefault[T any](v T) Option {
	return Option{func(o *EntryOptions) { o.FailSafeDefaultValue = &v }}
}

// failSafeDefault returns the default value of o as a *T, if it has one of
// that type (a *T, as WithFailSafeDefault sets it, or a T set in the
// cache's EntryOptions) and fail-safe is on.
func failSafeDefault[T any](o *EntryOptions) (*T, bool) {
	if !o.FailSafe || o.FailSafeDefaultValue == nil {
		return nil, false
	}
	switch d := o.FailSafeDefaultValue.(type) {
	case *T:
		return d, true
	case T:
		return &d, true
	}
	return nil, false
}

// failSafeDefaultAnswer is failSafeDefault as a load's answer, which every
// caller of the load reads (valueAs): with AutoClone, the default
// serialized once and decoded anew for each reader, as a cached value is,
// so that a caller that changes its copy does not change the others' or
// the option's. (Should it not serialize, the option's own value.)
func failSafeDefaultAnswer[T any](c *Cache, o *EntryOptions) (any, bool) {
	d, ok := failSafeDefault[T](o)
	if !ok {
		return nil, false
	}
	if o.AutoClone {
		if raw, err := marshal(c.ser, *d); err == nil {
			return &autoClone{raw: raw, ser: c.ser, typ: typeName[T]()}, true
		}
	}
	return d, true
}

// failSafeFor reports whether a factory error activates fail-safe.
func (o *EntryOptions) failSafeFor(err error) bool {
	return o.FailSafe && (o.FailSafeErrorFilter == nil || o.FailSafeErrorFilter(err))
}

// WithOptions changes any field of the options for this call: f gets a
// copy of the cache's EntryOptions (after the earlier options of the call)
// and may change it. A nil f changes nothing.
func WithOptions(f func(*EntryOptions)) Option {
	return Option{f}
}

// Validate reports the first field that cannot be honoured, or nil. The
// error wraps ErrInvalidOptions and names the field.
func (o *EntryOptions) Validate() error {
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"Duration", o.Duration},
		{"L1Duration", o.L1Duration},
		{"JitterMaxDuration", o.JitterMaxDuration},
		{"FailSafeMaxDuration", o.FailSafeMaxDuration},
		{"FailSafeThrottleDuration", o.FailSafeThrottleDuration},
		{"FactorySoftTimeout", o.FactorySoftTimeout},
		{"FactoryHardTimeout", o.FactoryHardTimeout},
		{"L2SoftTimeout", o.L2SoftTimeout},
		{"L2HardTimeout", o.L2HardTimeout},
		{"NotFoundDuration", o.NotFoundDuration},
		{"SlidingDuration", o.SlidingDuration},
		{"DistributedLockLease", o.DistributedLockLease},
		{"DistributedLockTimeout", o.DistributedLockTimeout},
	}
	for _, d := range durations {
		if d.d < 0 {
			return fmt.Errorf("%w: %s is negative", ErrInvalidOptions, d.name)
		}
	}
	if t := o.EagerRefreshThreshold; t != 0 && !(t > 0 && t < 1) {
		return fmt.Errorf("%w: EagerRefreshThreshold %v is outside (0,1)", ErrInvalidOptions, t)
	}
	if o.Size < 0 {
		return fmt.Errorf("%w: Size is negative", ErrInvalidOptions)
	}
	for _, t := range o.Tags {
		if err := validateTag(t); err != nil {
			return err
		}
	}
	return nil
}

// MaxTagLength is the longest tag accepted, in bytes.
const MaxTagLength = 256

func validateTag(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty tag", ErrInvalidOptions)
	}
	if len(t) > MaxTagLength {
		return fmt.Errorf("%w: tag longer than %d bytes", ErrInvalidOptions, MaxTagLength)
	}
	return nil
}

// withDefaults fills the zero fields that mean "library default".
func (o EntryOptions) withDefaults() EntryOptions {
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.FailSafeMaxDuration == 0 {
		o.FailSafeMaxDuration = DefaultFailSafeMaxDuration
	}
	if o.FailSafeThrottleDuration == 0 {
		o.FailSafeThrottleDuration = DefaultFailSafeThrottleDuration
	}
	if o.Size == 0 {
		o.Size = 1
	}
	return o
}

// resolve returns the options of one call: the cache's defaults when there
// are no per-call options (no copy, no allocation), else a validated copy.
func (c *Cache) resolve(opts []Option) (*EntryOptions, error) {
	if len(opts) == 0 {
		return &c.entry, nil
	}
	o := c.entry
	o.Tags = append([]string(nil), c.entry.Tags...)
	for _, opt := range opts {
		if opt.apply != nil {
			opt.apply(&o)
		}
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	return &o, nil
}

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
	// DefaultL1MaxEntries. Beyond it, the window of recent writes keeps
	// up to 4,096 of the latest writes readable (64 per shard, whatever
	// their Size), so that a write is readable at once (docs/getorset.md,
	// "Read your writes"). The admission policy's counters are ten per
	// unit up to 2^23 counters (~32 MiB), so a capacity in bytes (Size =
	// an entry's bytes) does not allocate counters for every byte.
	L1MaxEntries int64
	// MaxKeyLength is the longest key accepted, in bytes. Zero means
	// DefaultMaxKeyLength (1024).
	MaxKeyLength int
	// HitClockResolution is the resolution of the clock a memory hit
	// reads: a goroutine of the cache stores the time every
	// HitClockResolution (at least 100µs) while the cache has at least 64
	// hits in that time, so that a hit costs an atomic load instead of a
	// clock read (~20 ns on some virtual machines, a quarter of a hit).
	// With fewer hits it parks, hits read the system clock, and 1,024 of
	// them at that rate or faster wake it again. An entry within 50 ms (or four resolutions, if
	// longer) of its logical expiry is checked against the precise clock,
	// so it is never served as fresh past its expiry unless that goroutine
	// is scheduled more than that late. Expiry on every other path,
	// fail-safe and timestamps use the precise clock. The goroutine ends
	// on Close. Zero means DefaultHitClockResolution (1 ms);
	// PreciseHitClock turns it off.
	HitClockResolution time.Duration
	// PreciseHitClock makes every memory hit read the system clock (no
	// goroutine; HitClockResolution is ignored).
	PreciseHitClock bool
	// Logger receives what the cache swallows (a failed background refresh,
	// a fail-safe activation). Nil means slog.Default().
	Logger *slog.Logger
	// RedactKeys replaces keys with "[redacted]" in logs.
	RedactKeys bool
	// Events are callbacks that observe the cache (hits, misses, factory
	// calls, fail-safe, errors; see Events). Nil means none, at the cost of
	// one pointer check per operation.
	Events *Events
	// Tracer starts spans for the operations that do more than a memory
	// hit (see Tracer; package otelhybrid has the OpenTelemetry one). Nil
	// means no traces, at the cost of one nil check per such operation.
	Tracer Tracer
	// TraceKeys adds the key to the spans (attribute AttrKey). Off by
	// default: keys are user data. Ignored with RedactKeys.
	TraceKeys bool

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
	// Compressor compresses values of at least CompressMinSize serialized
	// bytes before they go to the distributed tier (only when that makes
	// them smaller); the envelope records it, so readers decode compressed
	// and plain payloads alike. Every node of the cache must use the same
	// compressor; a node without one treats a compressed payload as a miss
	// (logged). Nil means no compression. serializer.Flate is in the core
	// module; faster codecs (zstd, S2) are in the module
	// github.com/strata-cache/strata/compress.
	Compressor serializer.Compressor
	// CompressMinSize is the smallest serialized value that is compressed,
	// in bytes. Zero means DefaultCompressMinSize (1 KiB).
	CompressMinSize int
	// Backplane tells the other instances of this cache about changes and
	// applies theirs to the memory tier. Nil means none. The cache takes
	// ownership: Close closes it.
	Backplane backplane.Backplane
	// BackplaneValueMaxSize is the largest entry (encoded, as written to
	// the distributed tier) that a Set's backplane message carries: an
	// instance that holds an older copy of the key replaces it with the
	// message's entry instead of reading the distributed tier when next
	// asked; larger entries are announced without it (the receivers mark
	// their copy stale). Zero means DefaultBackplaneValueMaxSize (4 KiB).
	BackplaneValueMaxSize int
	// DisableBackplaneValues sends every Set message of this instance
	// without its entry. (Receiving is not affected: an entry that arrives
	// is used.)
	DisableBackplaneValues bool
	// DisableL2Coalescing sends every call of the distributed tier on its
	// own. By default a cache's reads (and its writes) that arrive while one
	// of their kind is out go together in one pipeline when it returns
	// (Redis only; docs/l2.md): far less work for Redis and this process
	// under load, at the price of a wait of up to one round trip for a
	// call that arrives while another is out. A service whose Redis is far
	// (a round trip of a millisecond or more) and whose load is moderate may
	// prefer the lower latency of calls in parallel.
	DisableL2Coalescing bool
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
		{"HitClockResolution", int64(o.HitClockResolution)},
		{"MaxValueSize", int64(o.MaxValueSize)},
		{"L2CircuitBreakerDuration", int64(o.L2CircuitBreakerDuration)},
		{"AutoRecoveryMaxItems", int64(o.AutoRecoveryMaxItems)},
		{"CompressMinSize", int64(o.CompressMinSize)},
		{"BackplaneValueMaxSize", int64(o.BackplaneValueMaxSize)},
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

// withDefaults fills the zero fields of o that mean "library default".
func (o Options) withDefaults() Options {
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
	if o.CompressMinSize == 0 {
		o.CompressMinSize = DefaultCompressMinSize
	}
	if o.BackplaneValueMaxSize == 0 {
		o.BackplaneValueMaxSize = DefaultBackplaneValueMaxSize
	}
	return o
}

// DefaultMaxValueSize is the largest encoded entry (the serialized value
// and its envelope) written to the distributed tier when
// Options.MaxValueSize is zero: 16 MiB.
const DefaultMaxValueSize = 16 << 20

// DefaultCompressMinSize is the smallest serialized value compressed when
// Options.CompressMinSize is zero: 1 KiB.
const DefaultCompressMinSize = 1 << 10

// MaxMaxValueSize is the largest Options.MaxValueSize accepted: 512 MiB,
// Redis's default proto-max-bulk-len (Redis drops the connection on a
// larger value).
const MaxMaxValueSize = redisstore.HardMaxValueSize

// DefaultL2CircuitBreakerDuration is how long the distributed tier is
// skipped after a transient error, when Options.L2CircuitBreakerDuration
// is zero.
const DefaultL2CircuitBreakerDuration = 30 * time.Second

// DefaultAutoRecoveryMaxItems bounds the auto-recovery queue when
// Options.AutoRecoveryMaxItems is zero.
const DefaultAutoRecoveryMaxItems = 10_000
