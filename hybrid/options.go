package hybrid

import (
	"fmt"
	"time"
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
	// tier; a timed-out read counts as a miss. Zero means off.
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
	// Options.L1MaxEntries. Zero means 1.
	Size int64
}

// Option changes the options of one call, on top of the cache's
// EntryOptions.
type Option func(*EntryOptions)

// WithDuration sets the entry's logical lifetime for this call.
func WithDuration(d time.Duration) Option {
	return func(o *EntryOptions) { o.Duration = d }
}

// WithFailSafe turns fail-safe on or off for this call.
func WithFailSafe(enabled bool) Option {
	return func(o *EntryOptions) { o.FailSafe = enabled }
}

// WithTags sets the tags of the entry written by this call.
func WithTags(tags ...string) Option {
	return func(o *EntryOptions) { o.Tags = append([]string(nil), tags...) }
}

// WithOptions changes any other field of the options for this call.
func WithOptions(f func(*EntryOptions)) Option {
	return Option(f)
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
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	return &o, nil
}
