package strata

import (
	"fmt"
	"log/slog"
	"net/url"
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
type CacheSettings struct {
	// Entry holds the default options of every entry of the cache.
	Entry hybrid.EntryOptions
	// KeyPrefix prefixes the cache's keys in Redis. Empty means "<name>:".
	KeyPrefix string
	// L1MaxEntries is the capacity of the memory tier. Zero means
	// hybrid.DefaultL1MaxEntries.
	L1MaxEntries int64
	// DisableL2 makes the cache memory-only even if Redis is configured.
	DisableL2 bool
	// DisableBackplane turns off the backplane of the cache.
	DisableBackplane bool
	// Redis, when set, gives the cache its own client, distributed tier and
	// backplane, isolated from the provider's shared Redis.
	Redis *RedisSettings
	// Serializer encodes values for Redis. Nil means serializer.Msgpack.
	Serializer serializer.Serializer
	// MaxKeyLength is the longest key accepted, in bytes. Zero means
	// hybrid.DefaultMaxKeyLength.
	MaxKeyLength int
	// L2CircuitBreakerDuration is how long Redis is skipped after a
	// transient error (one probe a second still goes through). Zero means
	// hybrid.DefaultL2CircuitBreakerDuration (30s).
	L2CircuitBreakerDuration time.Duration
}

// ProductionDefaults returns the defaults a provider gives every cache when
// Settings.Defaults is nil: long-lived entries with fail-safe, a soft
// factory timeout, background distributed writes, eager refresh and jitter
// (Bitwarden's and FusionCache's production choices; see
// https://github.com/strata-cache/strata/blob/main/docs/settings.md).
func ProductionDefaults() CacheSettings {
	return CacheSettings{
		Entry: hybrid.EntryOptions{
			Duration:                 30 * time.Minute,
			JitterMaxDuration:        2 * time.Second,
			FailSafe:                 true,
			FailSafeMaxDuration:      2 * time.Hour,
			FailSafeThrottleDuration: 30 * time.Second,
			FactorySoftTimeout:       100 * time.Millisecond,
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

func (s *CacheSettings) validate() error {
	if err := s.Entry.Validate(); err != nil {
		return fmt.Errorf("%w: Entry: %w", ErrInvalidSettings, err)
	}
	if s.L1MaxEntries < 0 {
		return fmt.Errorf("%w: L1MaxEntries is negative", ErrInvalidSettings)
	}
	if s.MaxKeyLength < 0 {
		return fmt.Errorf("%w: MaxKeyLength is negative", ErrInvalidSettings)
	}
	if s.L2CircuitBreakerDuration < 0 {
		return fmt.Errorf("%w: L2CircuitBreakerDuration is negative", ErrInvalidSettings)
	}
	if s.Redis != nil {
		if err := s.Redis.validate(); err != nil {
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

// redactURLError keeps a password out of an error message.
func redactURLError(raw string, err error) error {
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	if _, has := u.User.Password(); !has {
		return err
	}
	return fmt.Errorf("%s (in %s)", err, u.Redacted())
}

// Client settings the provider uses for the clients it creates: short
// timeouts and few retries, because a cache must answer from memory (or
// fail-safe) rather than wait for Redis. A URL's own query parameters win.
const (
	clientDialTimeout  = time.Second
	clientReadTimeout  = 500 * time.Millisecond
	clientWriteTimeout = 500 * time.Millisecond
	clientMaxRetries   = 1
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
		q := mustQuery(r.URL)
		if !q.Has("dial_timeout") {
			o.DialTimeout = clientDialTimeout
		}
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
		return redis.NewClient(o), true, nil
	}
}

func mustQuery(raw string) url.Values {
	u, err := url.Parse(raw)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}
