package hybrid

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/strata-cache/strata/backplane"
)

// Events are callbacks that observe a cache: hits and misses per tier,
// factory calls, fail-safe activations, errors of the distributed tier,
// circuit breaker changes, backplane messages. Metrics and traces plug in
// here; package otelhybrid (the module
// github.com/strata-cache/strata/hybrid/otelhybrid, with a go.mod of its
// own so that this module requires no OpenTelemetry) builds Events that
// record OpenTelemetry metrics.
//
// Every field is optional: a nil callback is off, and a cache whose Events
// are nil (or all nil) pays one pointer check per operation. Set them
// through Options.Events (or strata.Settings.Events, for every cache of a
// provider); New copies the struct, so changing it afterwards has no
// effect.
//
// Callbacks run synchronously on the goroutine that does the work (a
// caller's, a background load's, the backplane's delivery goroutine), never
// while the cache holds a lock, and possibly concurrently with each other:
// they must be safe for concurrent use and fast. Every event carries the
// name of the cache, so that one Events value can serve many caches, and
// events of an operation that has a caller carry the caller's context in
// Ctx (never nil: background work without a caller, such as a received
// backplane message, gets context.Background()), so that a callback can
// attach to the caller's span or logger. A
// callback that panics is recovered: the cache goes on, and the first such
// panic of each cache is logged.
//
// WARNING: events carry keys as they are; Options.RedactKeys applies to
// logs only. Do not use keys as metric attributes: their number is
// unbounded.
type Events struct {
	// Hit is called when a read finds a fresh value in a tier: the memory
	// tier (GetOrSet, TryGet) or the distributed tier (a load or TryGet
	// that found a fresh entry there).
	Hit func(HitEvent)
	// Miss is called when a tier had no fresh value for a read: once per
	// GetOrSet or TryGet that does not hit the memory tier (unless it skips
	// it), and once per read of the distributed tier that found no fresh
	// entry, including one skipped by the open circuit breaker, timed out
	// or failed. A stale value served by fail-safe or by AllowStaleOnRead
	// is a miss of each tier.
	Miss func(MissEvent)
	// FactoryCall is called when a factory returns (or panics), with how
	// long it ran.
	FactoryCall func(FactoryCallEvent)
	// FailSafe is called when fail-safe serves a stale value because the
	// factory failed or timed out.
	FailSafe func(FailSafeEvent)
	// EagerRefresh is called when a hit starts a background refresh of an
	// entry that passed EntryOptions.EagerRefreshThreshold.
	EagerRefresh func(EagerRefreshEvent)
	// L2Error is called for each error of the distributed tier that the
	// cache absorbed (logged, not returned), and for each read cut short by
	// the L2 timeouts or the caller's context.
	L2Error func(L2ErrorEvent)
	// CircuitBreaker is called when the circuit breaker of the distributed
	// tier opens (after a transient error) and when it closes again (a call
	// went through and succeeded, or its duration ran out). The changes
	// alternate, starting with opened, so that counting +1 per opened and
	// -1 per closed gives the state (callbacks on different goroutines may
	// still run in either order).
	CircuitBreaker func(CircuitBreakerEvent)
	// BackplaneMessage is called when a backplane message was published (or
	// failed to be), and when a message from another instance was applied
	// to the memory tier.
	BackplaneMessage func(BackplaneMessageEvent)
	// BackplaneGap is called when the backplane reports that messages may
	// have been lost (a reconnect, a full queue).
	BackplaneGap func(BackplaneGapEvent)
	// StaleServed is called when TryGet answers with a stale value because
	// of EntryOptions.AllowStaleOnRead. (A stale value served by fail-safe
	// is a FailSafe event.)
	StaleServed func(StaleServedEvent)
	// FactoryTimeout is called when a caller of GetOrSet stops waiting for
	// the factory at FactorySoftTimeout or FactoryHardTimeout. The factory
	// goes on in the background unless DisableBackgroundCompletion is set.
	FactoryTimeout func(FactoryTimeoutEvent)
	// Recovery is called when a change is queued for auto-recovery (the
	// distributed tier or the backplane was unavailable), dropped because
	// the queue was full, or replayed, and when the queue drains.
	Recovery func(RecoveryEvent)
	// L2Call is called after each call to the distributed tier for an
	// entry (a read, a write, a replayed change), with how long it took:
	// the histogram of L2 durations. A call skipped by the open circuit
	// breaker is not a call.
	L2Call func(L2CallEvent)
}

// Tier is a tier of the cache, in events.
type Tier uint8

// The tiers of a cache.
const (
	// TierL1 is the memory tier.
	TierL1 Tier = iota + 1
	// TierL2 is the distributed tier.
	TierL2
)

// String returns "l1" or "l2".
func (t Tier) String() string {
	switch t {
	case TierL1:
		return "l1"
	case TierL2:
		return "l2"
	}
	return "unknown"
}

// HitEvent reports a fresh value found in a tier.
type HitEvent struct {
	Ctx   context.Context // the caller\'s context (see Events)
	Cache string          // the cache's name
	Key   string
	Tier  Tier
}

// MissEvent reports a tier without a fresh value for a read.
type MissEvent struct {
	Ctx   context.Context // the caller\'s context (see Events)
	Cache string          // the cache's name
	Key   string
	Tier  Tier
}

// FactoryCallEvent reports a factory that returned.
type FactoryCallEvent struct {
	Ctx      context.Context // the caller\'s context (see Events)
	Cache    string          // the cache's name
	Key      string
	Duration time.Duration // how long the factory ran
	// Err is the factory's error, ErrFactoryPanic if it panicked, or nil.
	Err error
	// Eager is true for the background refresh started by
	// EntryOptions.EagerRefreshThreshold.
	Eager bool
}

// FailSafeReason says why fail-safe served a stale value.
type FailSafeReason uint8

// The reasons of a fail-safe activation.
const (
	// FailSafeFactoryError: the factory returned an error.
	FailSafeFactoryError FailSafeReason = iota + 1
	// FailSafeFactoryTimeout: the factory ran past FactorySoftTimeout or
	// FactoryHardTimeout.
	FailSafeFactoryTimeout
)

// String returns "factory_error" or "factory_timeout".
func (r FailSafeReason) String() string {
	switch r {
	case FailSafeFactoryError:
		return "factory_error"
	case FailSafeFactoryTimeout:
		return "factory_timeout"
	}
	return "unknown"
}

// logText is the reason as the fail-safe log has always said it.
func (r FailSafeReason) logText() string {
	if r == FailSafeFactoryTimeout {
		return "factory timeout"
	}
	return "factory error"
}

// FailSafeEvent reports a stale value served instead of a factory's result.
type FailSafeEvent struct {
	Ctx    context.Context // the caller\'s context (see Events)
	Cache  string          // the cache's name
	Key    string
	Reason FailSafeReason
}

// EagerRefreshEvent reports the start of a background refresh.
type EagerRefreshEvent struct {
	Ctx   context.Context // the caller\'s context (see Events)
	Cache string          // the cache's name
	Key   string
}

// L2ErrorClass is the class of an error of the distributed tier, which
// decides how the cache reacts.
type L2ErrorClass uint8

// The classes of errors of the distributed tier.
const (
	// L2ErrorTransient: the tier is unreachable, slow or overloaded; the
	// circuit breaker opens and writes are queued for auto-recovery.
	L2ErrorTransient L2ErrorClass = iota + 1
	// L2ErrorConfig: the tier refused because of how it is set up
	// (permissions, a key of another Redis type); it needs a person.
	L2ErrorConfig
	// L2ErrorOther: any other error.
	L2ErrorOther
	// L2ErrorTimeout: a read cut short by the L2 timeouts or by the
	// caller's context; it counts as a miss (Stats.L2Timeouts, not
	// Stats.L2Errors).
	L2ErrorTimeout
)

// String returns "transient", "config", "other" or "timeout".
func (k L2ErrorClass) String() string {
	switch k {
	case L2ErrorTransient:
		return "transient"
	case L2ErrorConfig:
		return "config"
	case L2ErrorOther:
		return "other"
	case L2ErrorTimeout:
		return "timeout"
	}
	return "unknown"
}

// L2ErrorEvent reports an error of the distributed tier.
type L2ErrorEvent struct {
	Ctx   context.Context // the caller\'s context (see Events)
	Cache string          // the cache's name
	Key   string          // the cache key (unprefixed), or a reserved key for tag and Clear records
	// Op is the operation: "get", "set", "remove", "expire", "recover" or
	// "lock" (a step of the distributed lock).
	Op    string
	Class L2ErrorClass
	Err   error
}

// CircuitBreakerEvent reports that the circuit breaker of the distributed
// tier opened or closed.
type CircuitBreakerEvent struct {
	Cache string // the cache's name
	Open  bool   // true: opened (the tier is skipped); false: closed
}

// Direction says whether a backplane message was sent or received.
type Direction uint8

// The directions of a backplane message.
const (
	// DirectionSent: this instance published the message.
	DirectionSent Direction = iota + 1
	// DirectionReceived: another instance's message was applied here.
	DirectionReceived
)

// String returns "sent" or "received".
func (d Direction) String() string {
	switch d {
	case DirectionSent:
		return "sent"
	case DirectionReceived:
		return "received"
	}
	return "unknown"
}

// BackplaneMessageEvent reports a backplane message sent or received.
type BackplaneMessageEvent struct {
	Ctx       context.Context // the caller\'s context (see Events)
	Cache     string          // the cache's name
	Key       string          // the cache key, or a reserved key for RemoveByTag and Clear
	Direction Direction
	Kind      backplane.Kind
	// Err is the error of a failed publish (the change is queued for
	// auto-recovery), or nil. Always nil for a received message.
	Err error
}

// BackplaneGapEvent reports that backplane messages may have been lost.
type BackplaneGapEvent struct {
	Cache string // the cache's name
}

// StaleServedEvent reports a stale value served by TryGet
// (AllowStaleOnRead).
type StaleServedEvent struct {
	Ctx   context.Context // the caller's context
	Cache string          // the cache's name
	Key   string
}

// TimeoutKind says which factory timeout a caller stopped waiting at.
type TimeoutKind uint8

// The kinds of factory timeouts.
const (
	// TimeoutSoft: EntryOptions.FactorySoftTimeout, with a stale value to
	// serve.
	TimeoutSoft TimeoutKind = iota + 1
	// TimeoutHard: EntryOptions.FactoryHardTimeout.
	TimeoutHard
)

// String returns "soft" or "hard".
func (k TimeoutKind) String() string {
	switch k {
	case TimeoutSoft:
		return "soft"
	case TimeoutHard:
		return "hard"
	}
	return "unknown"
}

// FactoryTimeoutEvent reports a caller that stopped waiting for a factory.
type FactoryTimeoutEvent struct {
	Ctx   context.Context // the caller's context
	Cache string          // the cache's name
	Key   string
	Kind  TimeoutKind
	// FailSafe is true when a stale value answered the caller (its FailSafe
	// event, reason FailSafeFactoryTimeout, comes just before this one);
	// false when the caller got ErrFactoryTimeout.
	FailSafe bool
	// Background is true when the factory goes on and stores its result
	// (background completion); false with DisableBackgroundCompletion.
	Background bool
}

// RecoveryAction is what happened to a change of the auto-recovery queue.
type RecoveryAction uint8

// The actions of the auto-recovery queue.
const (
	// RecoveryQueued: a change that failed for a transient reason waits
	// for the distributed tier (or the backplane) to come back.
	RecoveryQueued RecoveryAction = iota + 1
	// RecoveryDropped: the queue was full (AutoRecoveryMaxItems).
	RecoveryDropped
	// RecoveryReplayed: a queued change reached the distributed tier (and
	// was announced).
	RecoveryReplayed
	// RecoveryDrained: the queue is empty again; Key is empty.
	RecoveryDrained
)

// String returns "queued", "dropped", "replayed" or "drained".
func (a RecoveryAction) String() string {
	switch a {
	case RecoveryQueued:
		return "queued"
	case RecoveryDropped:
		return "dropped"
	case RecoveryReplayed:
		return "replayed"
	case RecoveryDrained:
		return "drained"
	}
	return "unknown"
}

// RecoveryEvent reports a change of the auto-recovery queue.
type RecoveryEvent struct {
	Ctx    context.Context // the caller's context when queued or dropped by one, else context.Background()
	Cache  string          // the cache's name
	Key    string          // the change's key (a reserved key for tag and Clear records); empty when drained
	Action RecoveryAction
}

// L2CallEvent reports one call to the distributed tier.
type L2CallEvent struct {
	Ctx   context.Context // the caller's context (or the replay's)
	Cache string          // the cache's name
	Key   string          // the cache key, or a reserved key for tag and Clear records
	// Op is "get", "set", "remove", "expire", "recover", "lock" or
	// "unlock" (EntryOptions.DistributedLock), or for a batch
	// call (one event for the whole call, Key empty) "get-many" or
	// "set-many".
	Op       string
	Duration time.Duration
	// Err is the call's error (a timeout included), or nil.
	Err error
}

// newEvents returns the cache's copy of ev, or nil if no callback is set.
func newEvents(ev *Events) *Events {
	if ev == nil || ev.Hit == nil && ev.Miss == nil && ev.FactoryCall == nil && ev.FailSafe == nil &&
		ev.EagerRefresh == nil && ev.L2Error == nil && ev.CircuitBreaker == nil &&
		ev.BackplaneMessage == nil && ev.BackplaneGap == nil && ev.StaleServed == nil &&
		ev.FactoryTimeout == nil && ev.Recovery == nil && ev.L2Call == nil {
		return nil
	}
	cp := *ev
	return &cp
}

// fire calls f with e, recovering a panic. It is called outside every lock
// of the cache.
func fire[E any](c *Cache, f func(E), e E) {
	defer func() {
		if r := recover(); r != nil {
			c.hookPanicked(r)
		}
	}()
	f(e)
}

// hookPanicked logs the first panic of an event callback.
func (c *Cache) hookPanicked(r any) {
	if c.hookPanic.CompareAndSwap(false, true) {
		c.log.Error("event hook panicked", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	}
}

// The emitters below are called only when c.ev is not nil; ctx is the
// caller's, or context.Background() for work without a caller.

func (c *Cache) emitHit(ctx context.Context, key string, t Tier) {
	if f := c.ev.Hit; f != nil {
		fire(c, f, HitEvent{Ctx: ctx, Cache: c.name, Key: key, Tier: t})
	}
}

func (c *Cache) emitMiss(ctx context.Context, key string, t Tier) {
	if f := c.ev.Miss; f != nil {
		fire(c, f, MissEvent{Ctx: ctx, Cache: c.name, Key: key, Tier: t})
	}
}

func (c *Cache) emitFactoryCall(ctx context.Context, key string, d time.Duration, err error, eager bool) {
	if f := c.ev.FactoryCall; f != nil {
		fire(c, f, FactoryCallEvent{Ctx: ctx, Cache: c.name, Key: key, Duration: d, Err: err, Eager: eager})
	}
}

func (c *Cache) emitFailSafe(ctx context.Context, key string, r FailSafeReason) {
	if f := c.ev.FailSafe; f != nil {
		fire(c, f, FailSafeEvent{Ctx: ctx, Cache: c.name, Key: key, Reason: r})
	}
}

func (c *Cache) emitEagerRefresh(ctx context.Context, key string) {
	if f := c.ev.EagerRefresh; f != nil {
		fire(c, f, EagerRefreshEvent{Ctx: ctx, Cache: c.name, Key: key})
	}
}

func (c *Cache) emitL2Error(ctx context.Context, op, key string, class L2ErrorClass, err error) {
	if f := c.ev.L2Error; f != nil {
		fire(c, f, L2ErrorEvent{Ctx: ctx, Cache: c.name, Key: key, Op: op, Class: class, Err: err})
	}
}

// breakerChanged is the circuit breaker's notification: the closing is
// logged (the opening is, with its cause, by l2Failed) and both reported.
func (c *Cache) breakerChanged(open bool) {
	if !open {
		c.log.Info("l2 available again, circuit breaker closed")
	}
	if c.ev != nil && c.ev.CircuitBreaker != nil {
		fire(c, c.ev.CircuitBreaker, CircuitBreakerEvent{Cache: c.name, Open: open})
	}
}

func (c *Cache) emitBackplaneMessage(ctx context.Context, key string, d Direction, k backplane.Kind, err error) {
	if f := c.ev.BackplaneMessage; f != nil {
		fire(c, f, BackplaneMessageEvent{Ctx: ctx, Cache: c.name, Key: key, Direction: d, Kind: k, Err: err})
	}
}

func (c *Cache) emitBackplaneGap() {
	if f := c.ev.BackplaneGap; f != nil {
		fire(c, f, BackplaneGapEvent{Cache: c.name})
	}
}

func (c *Cache) emitStaleServed(ctx context.Context, key string) {
	if f := c.ev.StaleServed; f != nil {
		fire(c, f, StaleServedEvent{Ctx: ctx, Cache: c.name, Key: key})
	}
}

func (c *Cache) emitFactoryTimeout(ctx context.Context, key string, k TimeoutKind, failSafe, background bool) {
	if f := c.ev.FactoryTimeout; f != nil {
		fire(c, f, FactoryTimeoutEvent{Ctx: ctx, Cache: c.name, Key: key, Kind: k, FailSafe: failSafe, Background: background})
	}
}

func (c *Cache) emitRecovery(ctx context.Context, key string, a RecoveryAction) {
	if f := c.ev.Recovery; f != nil {
		fire(c, f, RecoveryEvent{Ctx: ctx, Cache: c.name, Key: key, Action: a})
	}
}

func (c *Cache) emitL2Call(ctx context.Context, op, key string, d time.Duration, err error) {
	if f := c.ev.L2Call; f != nil {
		fire(c, f, L2CallEvent{Ctx: ctx, Cache: c.name, Key: key, Op: op, Duration: d, Err: err})
	}
}
