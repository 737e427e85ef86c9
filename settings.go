package strata

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/serializer"
)

// Settings configure a Provider.
type Settings struct {
	// Redis is the Redis shared by every cache (distributed tier and
	// backplane). Nil means memory-only caches.
	Redis *RedisSettings
	// Tier is a distributed tier other than Redis (etcd: see module
	// github.com/strata-cache/strata/etcd) shared by every cache, instead of
	// Redis. Set at most one of Redis and Tier.
	Tier *TierSettings
	// Defaults is the template every registered cache starts from. Nil means
	// ProductionDefaults().
	Defaults *CacheSettings
	// Logger receives the caches' logs. Nil means slog.Default().
	Logger *slog.Logger
	// RedactKeys replaces cache keys with "[redacted]" in every cache's logs.
	RedactKeys bool
	// Events are callbacks given to every cache of the provider (each event
	// carries the cache's name); see hybrid.Events and, for OpenTelemetry
	// metrics, package hybrid/otelhybrid. Nil means none.
	Events *hybrid.Events
	// Tracer starts the spans of every cache of the provider; see
	// hybrid.Tracer and, for OpenTelemetry traces, otelhybrid.Tracer. Nil
	// means none.
	Tracer hybrid.Tracer
	// TraceKeys adds keys to the spans (never with RedactKeys).
	TraceKeys bool
}

// RedisSettings say how to reach Redis. Set exactly one of URL, Addrs or
// Client.
type RedisSettings struct {
	// URL is a redis:// or rediss:// (TLS) URL; user:password@ and the
	// go-redis query parameters (dial_timeout, read_timeout, ...) are
	// allowed. The provider creates the client and closes it on Close.
	URL string
	// Addrs are seed addresses of a Redis Cluster. The provider creates a
	// cluster client and closes it on Close.
	Addrs []string
	// Client is a client the caller owns (standalone, cluster or sentinel
	// failover). The provider never closes it.
	Client redis.UniversalClient
}

// CacheSettings configure one named cache.
//
// Every field of the engine's hybrid.Options that a user may want to set
// has a field of the same name and meaning here (the provider sets the
// others: Name, Logger, RedactKeys, Events, Tracer, TraceKeys, and the L2 and Backplane it
// builds from the Redis settings), and the provider validates them with
// hybrid.Options.Validate, so a setting means the same and is checked the
// same whether a cache comes from a provider or from hybrid.New.
type CacheSettings struct {
	// Entry holds the default options of every entry of the cache.
	Entry hybrid.EntryOptions
	// KeyPrefix prefixes the cache's keys in Redis. Empty means "<name>:".
	KeyPrefix string
	// L1MaxEntries is the capacity of the memory tier. Zero means
	// hybrid.DefaultL1MaxEntries.
	L1MaxEntries int64
	// HitClockResolution is the resolution of the clock a memory hit
	// reads instead of the system clock (hybrid.Options.HitClockResolution):
	// cheaper hits, entries near their expiry checked precisely. Zero
	// means hybrid.DefaultHitClockResolution (1 ms).
	HitClockResolution time.Duration
	// PreciseHitClock makes every memory hit read the system clock
	// (hybrid.Options.PreciseHitClock).
	PreciseHitClock bool
	// DisableL2 makes the cache memory-only even if Redis is configured.
	DisableL2 bool
	// DisableBackplane turns off the backplane of the cache.
	DisableBackplane bool
	// Redis, when set, gives the cache its own client, distributed tier and
	// backplane, isolated from the provider's shared Redis.
	Redis *RedisSettings
	// Tier, when set, puts the cache on a tier of its own other than Redis
	// (etcd, ...), isolated from the provider's shared store. Set at most
	// one of Redis and Tier.
	Tier *TierSettings
	// Serializer encodes values for Redis. Nil means serializer.Msgpack.
	Serializer serializer.Serializer
	// MaxKeyLength is the longest key accepted, in bytes. Zero means
	// hybrid.DefaultMaxKeyLength.
	MaxKeyLength int
	// MaxValueSize is the largest encoded entry written to Redis, in bytes;
	// Set returns hybrid.ErrValueTooLarge above it. Zero means
	// hybrid.DefaultMaxValueSize (16 MiB). It is the only value-size limit.
	MaxValueSize int
	// Compressor compresses large values in Redis (hybrid.Options.Compressor);
	// nil means none. Every process of a cache must use the same one.
	Compressor serializer.Compressor
	// CompressMinSize is the smallest serialized value compressed. Zero
	// means hybrid.DefaultCompressMinSize (1 KiB).
	CompressMinSize int
	// L2CircuitBreakerDuration is how long Redis is skipped after a
	// transient error (one probe a second still goes through). Zero means
	// hybrid.DefaultL2CircuitBreakerDuration (30s).
	L2CircuitBreakerDuration time.Duration
	// DisableL2CircuitBreaker keeps calling Redis after errors.
	DisableL2CircuitBreaker bool
	// AutoRecoveryMaxItems bounds the queue of changes replayed when Redis
	// is back. Zero means hybrid.DefaultAutoRecoveryMaxItems.
	AutoRecoveryMaxItems int
	// BackplaneValueMaxSize is the largest entry a Set's backplane message
	// carries, so that the other processes replace their copy without
	// reading Redis (hybrid.Options.BackplaneValueMaxSize). Zero means
	// hybrid.DefaultBackplaneValueMaxSize (4 KiB).
	BackplaneValueMaxSize int
	// DisableBackplaneValues sends every Set message without its entry.
	DisableBackplaneValues bool
	// DisableL2Coalescing sends every Redis call of the cache on its own,
	// never gathered with the calls in flight into one pipeline
	// (hybrid.Options.DisableL2Coalescing).
	DisableL2Coalescing bool
	// InstanceID tells this process's backplane messages from the others'.
	// Empty means a random id per cache.
	InstanceID string
	// WaitForInitialBackplaneSubscribe is how long Register waits for the
	// backplane subscription to be confirmed. Zero (the default) means
	// Register does not wait for Redis's answer (it waits at most 200 ms
	// for the subscription to be sent), and the subscription completes in
	// the background (see hybrid.Options).
	WaitForInitialBackplaneSubscribe time.Duration
}

// options returns the engine options of the cache name, without the
// wiring (L2, Backplane) that the provider adds.
func (s *CacheSettings) options(name string) hybrid.Options {
	keyPrefix := s.KeyPrefix
	if keyPrefix == "" {
		keyPrefix = name + ":"
	}
	return hybrid.Options{
		Name:                             name,
		Entry:                            s.Entry,
		L1MaxEntries:                     s.L1MaxEntries,
		HitClockResolution:               s.HitClockResolution,
		PreciseHitClock:                  s.PreciseHitClock,
		MaxKeyLength:                     s.MaxKeyLength,
		KeyPrefix:                        keyPrefix,
		Serializer:                       s.Serializer,
		Compressor:                       s.Compressor,
		CompressMinSize:                  s.CompressMinSize,
		MaxValueSize:                     s.MaxValueSize,
		L2CircuitBreakerDuration:         s.L2CircuitBreakerDuration,
		DisableL2CircuitBreaker:          s.DisableL2CircuitBreaker,
		InstanceID:                       s.InstanceID,
		BackplaneValueMaxSize:            s.BackplaneValueMaxSize,
		DisableBackplaneValues:           s.DisableBackplaneValues,
		DisableL2Coalescing:              s.DisableL2Coalescing,
		AutoRecoveryMaxItems:             s.AutoRecoveryMaxItems,
		WaitForInitialBackplaneSubscribe: s.WaitForInitialBackplaneSubscribe,
	}
}

// ProductionDefaults returns the defaults a provider gives every cache when
// Settings.Defaults is nil: long-lived entries with fail-safe, soft and hard
// factory timeouts (100 ms, 1.5 s), background distributed writes, eager
// refresh and jitter (Bitwarden's ExtendedCache defaults; see
// https://github.com/strata-cache/strata/blob/main/docs/settings.md). A
// factory that outlives a timeout still completes in the background and
// caches its result.
func ProductionDefaults() CacheSettings {
	return CacheSettings{
		Entry: hybrid.EntryOptions{
			Duration:                 30 * time.Minute,
			JitterMaxDuration:        2 * time.Second,
			FailSafe:                 true,
			FailSafeMaxDuration:      2 * time.Hour,
			FailSafeThrottleDuration: 30 * time.Second,
			FactorySoftTimeout:       100 * time.Millisecond,
			FactoryHardTimeout:       1500 * time.Millisecond,
			L2SoftTimeout:            time.Second,
			L2HardTimeout:            2 * time.Second,
			BackgroundL2Operations:   true,
			EagerRefreshThreshold:    0.9,
		},
	}
}

// clone returns a deep copy, so that a configure func cannot change the
// provider's template.
func (s CacheSettings) clone() CacheSettings {
	s.Entry.Tags = append([]string(nil), s.Entry.Tags...)
	if s.Redis != nil {
		r := *s.Redis
		r.Addrs = append([]string(nil), r.Addrs...)
		s.Redis = &r
	}
	return s
}

// MaxNameLength is the longest cache name accepted.
const MaxNameLength = 128

// validateName accepts names made of letters, digits and . _ - : so that a
// name is safe in Redis keys, channel names and metric labels.
func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidSettings)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalidSettings, MaxNameLength)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-' || r == ':'
		if !ok {
			return fmt.Errorf("%w: name %q: character %q not allowed (letters, digits, . _ - :)", ErrInvalidSettings, name, r)
		}
	}
	return nil
}

// validate checks s as the engine would (hybrid.Options.Validate), plus
// the Redis settings. Errors wrap ErrInvalidSettings and name the field.
func (s *CacheSettings) validate() error {
	o := s.options("x")
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	if s.Redis != nil {
		if err := s.Redis.validate(); err != nil {
			return err
		}
	}
	if s.Tier != nil {
		if s.Redis != nil {
			return fmt.Errorf("%w: set at most one of Redis and Tier", ErrInvalidSettings)
		}
		if err := s.Tier.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r *RedisSettings) validate() error {
	n := 0
	if r.URL != "" {
		n++
	}
	if len(r.Addrs) > 0 {
		n++
	}
	if r.Client != nil {
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: Redis: set exactly one of URL, Addrs, Client", ErrInvalidSettings)
	}
	if r.URL != "" {
		if _, err := redis.ParseURL(r.URL); err != nil {
			return fmt.Errorf("%w: Redis.URL: %v", ErrInvalidSettings, redactURLError(r.URL, err))
		}
	}
	return nil
}

// redactURLError keeps the password of raw out of err's message, also when
// raw is too malformed for url.Parse (the parser's errors quote the URL).
//
// A URL with a user part that url.Parse refuses gets no parser message at
// all: a password holding '/', '?' or '#' is cut there, and the parser
// quotes the pieces ("invalid port \":hun\" after host"), which no
// replacement of the whole password catches.
func redactURLError(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && strings.Contains(raw, "@") {
		return errors.New("not a valid URL (the parser's message is not shown: it would quote part of the user and password); escape '/', '?', '#', '@' and '%' in them")
	}
	pw := urlPassword(raw)
	if pw == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), pw, "xxxxx")
	if q := strconv.Quote(pw); len(q) > 2 {
		msg = strings.ReplaceAll(msg, q[1:len(q)-1], "xxxxx") // as %q writes it
	}
	if e := url.QueryEscape(pw); e != pw {
		msg = strings.ReplaceAll(msg, e, "xxxxx")
	}
	return errors.New(msg)
}

// urlPassword returns the password of a URL-like string: what stands
// between the first ':' and the last '@' of the authority, if any. It
// does not need the URL to parse.
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		rest = raw
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		// A password may hold '/' or '?' (unescaped): look for '@' past them.
		if at := strings.LastIndex(rest, "@"); at > i {
			i = strings.IndexAny(rest[at:], "/?#")
			if i < 0 {
				i = len(rest)
			} else {
				i += at
			}
		}
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// Client settings the provider uses for the clients it creates: short
// timeouts and few retries, because a cache must answer from memory (or
// fail-safe) rather than wait for Redis. A dead Redis then costs a call at
// most one dial (500 ms) and one retry, well within the production L2
// timeouts (1 s soft, 2 s hard), instead of go-redis's five dial attempts
// with back-off. A URL's own query parameters win.
const (
	clientDialTimeout   = 500 * time.Millisecond
	clientDialerRetries = 1 // go-redis counts attempts: one dial, no retry
	clientReadTimeout   = 500 * time.Millisecond
	clientWriteTimeout  = 500 * time.Millisecond
	clientMaxRetries    = 1
)

// newClient creates the client described by r; owned reports whether the
// provider must close it.
func (r *RedisSettings) newClient() (c redis.UniversalClient, owned bool, err error) {
	switch {
	case r.Client != nil:
		return r.Client, false, nil
	case len(r.Addrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                      r.Addrs,
			DialTimeout:                clientDialTimeout,
			DialerRetries:              clientDialerRetries,
			ReadTimeout:                clientReadTimeout,
			WriteTimeout:               clientWriteTimeout,
			MaxRetries:                 clientMaxRetries,
			ContextTimeoutEnabled:      true,
			ClusterStateReloadInterval: time.Second,
		}), true, nil
	default:
		o, err := redis.ParseURL(r.URL)
		if err != nil {
			return nil, false, fmt.Errorf("%w: Redis.URL: %v", ErrInvalidSettings, redactURLError(r.URL, err))
		}
		applyClientDefaults(o, mustQuery(r.URL))
		return redis.NewClient(o), true, nil
	}
}

// applyClientDefaults sets the provider's client settings on o where the
// URL's query q does not set them.
func applyClientDefaults(o *redis.Options, q url.Values) {
	if !q.Has("dial_timeout") {
		o.DialTimeout = clientDialTimeout
	}
	o.DialerRetries = clientDialerRetries // not a URL parameter of go-redis
	if !q.Has("read_timeout") {
		o.ReadTimeout = clientReadTimeout
	}
	if !q.Has("write_timeout") {
		o.WriteTimeout = clientWriteTimeout
	}
	if !q.Has("max_retries") {
		o.MaxRetries = clientMaxRetries
	}
	o.ContextTimeoutEnabled = true
}

func mustQuery(raw string) url.Values {
	u, err := url.Parse(raw)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}
