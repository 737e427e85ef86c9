package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/strata-cache/strata"
)

// errConfig marks a configuration the server refuses to start with.
var errConfig = errors.New("strata-server: configuration")

// Duration is a time.Duration written as a Go duration string ("30s",
// "5m") in the configuration file.
type Duration time.Duration

// UnmarshalYAML accepts a Go duration string, not negative. Its errors do
// not quote the value (time.ParseDuration's do): see decodeYAML.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlFieldError(n, durationExpected+" expected, not "+yamlGot(n.ShortTag()))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return yamlFieldError(n, err.Error())
	}
	*d = v
	return nil
}

// parseDuration reads a Go duration string, not negative, for the file
// and the environment alike. Its errors say what is expected and do not
// quote s (time.ParseDuration's do).
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(durationExpected + " expected (a number with its unit: ns, us, ms, s, m, h)")
	}
	if v < 0 {
		return 0, errors.New("a negative duration is refused")
	}
	return Duration(v), nil
}

// Config is the whole configuration of the server: the file (YAML), then
// the environment on top of it.
type Config struct {
	// Listen is the address to listen on. Default ":8080".
	Listen string `yaml:"listen"`
	// Token, when set, is the bearer token every /v1 and /dache request
	// must carry (a cache's own token is accepted for that cache too).
	Token string `yaml:"token"`
	// TLSCertFile and TLSKeyFile (PEM) make the server speak HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// TLSClientCAFile (PEM), with TLS, requires every client to present a
	// certificate signed by one of these CAs (mTLS).
	TLSClientCAFile string `yaml:"tls_client_ca_file"`
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxBatchKeys bounds the keys of one batch get. Default 1000.
	MaxBatchKeys int `yaml:"max_batch_keys"`
	// RedactKeys hides cache keys in request logs and in the caches' logs.
	RedactKeys bool `yaml:"redact_keys"`
	// LogRequests logs one line per request. Default true.
	LogRequests *bool `yaml:"log_requests"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM.
	// Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// ShutdownDelay is how long the server goes on serving after the
	// first SIGTERM or SIGINT, /readyz answering 503 and the listener
	// open, before the graceful shutdown starts: long enough for a load
	// balancer (a Kubernetes Service) to take the instance out of rotation
	// on the failed probes, so that no new connection is refused meanwhile.
	// A second signal ends it. Default 0: the shutdown starts at once.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
	// ReadTimeout bounds reading one request, headers and body: a client
	// that sends its body more slowly is cut off, so that it cannot hold a
	// handler for ever. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the
	// end of its response: a client that does not read its response is
	// cut off, so that it cannot hold a handler (and the value) for ever.
	// Default ReadTimeout plus 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// Engine is the distributed tier: memory (none), redis, etcd or
	// postgres.
	Engine string `yaml:"engine"`
	// RedisURL is the Redis of engine redis.
	RedisURL string `yaml:"redis_url"`
	// EtcdEndpoints are the etcd members' client URLs of engine etcd
	// (http://host:2379, or https://).
	EtcdEndpoints []string `yaml:"etcd_endpoints"`
	// EtcdUsername and EtcdPassword authenticate with etcd's auth (both or
	// neither). The password never appears in errors or logs.
	EtcdUsername string `yaml:"etcd_username"`
	EtcdPassword string `yaml:"etcd_password"`
	// EtcdCAFile (PEM) makes https:// endpoints trust these CAs;
	// EtcdCertFile and EtcdKeyFile (PEM) are the client certificate when
	// the members require one.
	EtcdCAFile   string `yaml:"etcd_ca_file"`
	EtcdCertFile string `yaml:"etcd_cert_file"`
	EtcdKeyFile  string `yaml:"etcd_key_file"`
	// Postgres is the server of engine postgres (dache's POSTGRES_*).
	Postgres PostgresConfig `yaml:"postgres"`
	// Dache configures the dache compatibility mode.
	Dache DacheConfig `yaml:"dache"`
	// Defaults apply to every cache, on top of strata.ProductionDefaults.
	Defaults CacheConfig `yaml:"defaults"`
	// Caches are the named caches of the native API.
	Caches map[string]CacheConfig `yaml:"caches"`

	// logFormat is LOG_FORMAT (environment only): json (the default) or
	// text.
	logFormat string
}

// PostgresConfig is the PostgreSQL server of engine postgres.
type PostgresConfig struct {
	// Host is the server's host name or address; required with engine
	// postgres.
	Host string `yaml:"host"`
	// Port is the server's port. Default 5432.
	Port int `yaml:"port"`
	// User is the role to connect as. Default postgres.
	User string `yaml:"user"`
	// Password of User; it never appears in errors or logs.
	Password string `yaml:"password"`
	// Database to connect to. Default postgres.
	Database string `yaml:"database"`
	// SSLMode is libpq's sslmode (disable, prefer, require, verify-full...).
	// Default prefer.
	SSLMode string `yaml:"sslmode"`
	// Table is the table of the entries, created if missing. Default
	// strata_cache.
	Table string `yaml:"table"`
}

// set reports whether any field is given.
func (p PostgresConfig) set() bool { return p != PostgresConfig{} }

// connString is the connection URL of p, without its password.
func (p PostgresConfig) connString() string {
	port := p.Port
	if port == 0 {
		port = 5432
	}
	user, db, mode := p.User, p.Database, p.SSLMode
	if user == "" {
		user = "postgres"
	}
	if db == "" {
		db = "postgres"
	}
	if mode == "" {
		mode = "prefer"
	}
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: net.JoinHostPort(p.Host, strconv.Itoa(port)), Path: "/" + db,
		RawQuery: url.Values{"sslmode": {mode}}.Encode()}
	return u.String()
}

// DacheConfig configures the dache compatibility mode (/dache/{key}).
type DacheConfig struct {
	// Enabled serves /dache/{key} and /health. Default true.
	Enabled *bool `yaml:"enabled"`
	// Cache is the name of the cache behind /dache. Default "dache". It
	// may also be listed under caches (to override its settings); it is
	// always a JSON cache with strict writes unless strict_writes: false.
	Cache string `yaml:"cache"`
}

// OriginConfig makes a cache call an upstream on a miss.
type OriginConfig struct {
	// URL is the upstream; a miss of key k calls GET {URL}/{k}.
	URL string `yaml:"url"`
	// Timeout bounds one upstream call. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// Headers are sent with every upstream call.
	Headers map[string]string `yaml:"headers"`
}

// CacheConfig is the configuration of one cache: the fields of
// strata.CacheSettings (and their hybrid.EntryOptions) plus the server's
// own. A field left out keeps the value of the level below (defaults, then
// strata.ProductionDefaults).
type CacheConfig struct {
	// The fields of hybrid.EntryOptions (the cache's entry defaults), each
	// named after its field in snake case; see docs/settings.md.
	Duration                 *Duration `yaml:"duration"`
	L1Duration               *Duration `yaml:"l1_duration"`
	JitterMaxDuration        *Duration `yaml:"jitter_max_duration"`
	FailSafe                 *bool     `yaml:"fail_safe"`
	FailSafeMaxDuration      *Duration `yaml:"fail_safe_max_duration"`
	FailSafeThrottleDuration *Duration `yaml:"fail_safe_throttle_duration"`
	FactorySoftTimeout       *Duration `yaml:"factory_soft_timeout"`
	FactoryHardTimeout       *Duration `yaml:"factory_hard_timeout"`
	L2SoftTimeout            *Duration `yaml:"l2_soft_timeout"`
	L2HardTimeout            *Duration `yaml:"l2_hard_timeout"`
	BackgroundL2Operations   *bool     `yaml:"background_l2_operations"`
	EagerRefreshThreshold    *float64  `yaml:"eager_refresh_threshold"`
	Tags                     []string  `yaml:"tags"`
	// Cluster-wide stampede protection: server replicas (or Go services)
	// sharing the Redis load a cold key once (docs/getorset.md).
	DistributedLock        *bool     `yaml:"distributed_lock"`
	DistributedLockLease   *Duration `yaml:"distributed_lock_lease"`
	DistributedLockTimeout *Duration `yaml:"distributed_lock_timeout"`

	// The fields of strata.CacheSettings, named the same way.
	KeyPrefix                *string   `yaml:"key_prefix"`
	L1MaxEntries             *int64    `yaml:"l1_max_entries"`
	DisableL2                *bool     `yaml:"disable_l2"`
	DisableBackplane         *bool     `yaml:"disable_backplane"`
	MaxKeyLength             *int      `yaml:"max_key_length"`
	L2CircuitBreakerDuration *Duration `yaml:"l2_circuit_breaker_duration"`
	// RedisURL gives the cache a Redis of its own (isolated).
	RedisURL *string `yaml:"redis_url"`

	// ValueType is bytes (Go type []byte) or json (Go type
	// json.RawMessage; bodies must be valid JSON). Default bytes.
	ValueType *string `yaml:"value_type"`
	// ContentType is the Content-Type of the values served. Default
	// application/octet-stream for bytes, application/json for json.
	ContentType *string `yaml:"content_type"`
	// StrictWrites makes a write the distributed tier did not take a 503
	// (and turns background_l2_operations off). Default false.
	StrictWrites *bool `yaml:"strict_writes"`
	// Token, when set, is accepted as the bearer token of this cache.
	Token *string `yaml:"token"`
	// Origin, when set, makes the cache call an upstream on a miss.
	Origin *OriginConfig `yaml:"origin"`
}

// The value types of a cache.
const (
	valueBytes = "bytes"
	valueJSON  = "json"
)

// merge returns c with every field set in o replacing c's.
func (c CacheConfig) merge(o CacheConfig) CacheConfig {
	set := func(dst **Duration, src *Duration) {
		if src != nil {
			*dst = src
		}
	}
	set(&c.Duration, o.Duration)
	set(&c.L1Duration, o.L1Duration)
	set(&c.JitterMaxDuration, o.JitterMaxDuration)
	set(&c.FailSafeMaxDuration, o.FailSafeMaxDuration)
	set(&c.FailSafeThrottleDuration, o.FailSafeThrottleDuration)
	set(&c.FactorySoftTimeout, o.FactorySoftTimeout)
	set(&c.FactoryHardTimeout, o.FactoryHardTimeout)
	set(&c.L2SoftTimeout, o.L2SoftTimeout)
	set(&c.L2HardTimeout, o.L2HardTimeout)
	set(&c.L2CircuitBreakerDuration, o.L2CircuitBreakerDuration)
	set(&c.DistributedLockLease, o.DistributedLockLease)
	set(&c.DistributedLockTimeout, o.DistributedLockTimeout)
	if o.DistributedLock != nil {
		c.DistributedLock = o.DistributedLock
	}
	if o.FailSafe != nil {
		c.FailSafe = o.FailSafe
	}
	if o.BackgroundL2Operations != nil {
		c.BackgroundL2Operations = o.BackgroundL2Operations
	}
	if o.EagerRefreshThreshold != nil {
		c.EagerRefreshThreshold = o.EagerRefreshThreshold
	}
	if o.Tags != nil {
		c.Tags = o.Tags
	}
	if o.KeyPrefix != nil {
		c.KeyPrefix = o.KeyPrefix
	}
	if o.L1MaxEntries != nil {
		c.L1MaxEntries = o.L1MaxEntries
	}
	if o.DisableL2 != nil {
		c.DisableL2 = o.DisableL2
	}
	if o.DisableBackplane != nil {
		c.DisableBackplane = o.DisableBackplane
	}
	if o.MaxKeyLength != nil {
		c.MaxKeyLength = o.MaxKeyLength
	}
	if o.RedisURL != nil {
		c.RedisURL = o.RedisURL
	}
	if o.ValueType != nil {
		c.ValueType = o.ValueType
	}
	if o.ContentType != nil {
		c.ContentType = o.ContentType
	}
	if o.StrictWrites != nil {
		c.StrictWrites = o.StrictWrites
	}
	if o.Token != nil {
		c.Token = o.Token
	}
	if o.Origin != nil {
		c.Origin = o.Origin
	}
	return c
}

// apply writes the library settings of c into cs.
func (c CacheConfig) apply(cs *strata.CacheSettings) {
	e := &cs.Entry
	d := func(dst *time.Duration, src *Duration) {
		if src != nil {
			*dst = time.Duration(*src)
		}
	}
	d(&e.Duration, c.Duration)
	d(&e.L1Duration, c.L1Duration)
	d(&e.JitterMaxDuration, c.JitterMaxDuration)
	d(&e.FailSafeMaxDuration, c.FailSafeMaxDuration)
	d(&e.FailSafeThrottleDuration, c.FailSafeThrottleDuration)
	d(&e.FactorySoftTimeout, c.FactorySoftTimeout)
	d(&e.FactoryHardTimeout, c.FactoryHardTimeout)
	d(&e.L2SoftTimeout, c.L2SoftTimeout)
	d(&e.L2HardTimeout, c.L2HardTimeout)
	d(&cs.L2CircuitBreakerDuration, c.L2CircuitBreakerDuration)
	d(&e.DistributedLockLease, c.DistributedLockLease)
	d(&e.DistributedLockTimeout, c.DistributedLockTimeout)
	if c.DistributedLock != nil {
		e.DistributedLock = *c.DistributedLock
	}
	if c.FailSafe != nil {
		e.FailSafe = *c.FailSafe
	}
	if c.BackgroundL2Operations != nil {
		e.BackgroundL2Operations = *c.BackgroundL2Operations
	}
	if c.EagerRefreshThreshold != nil {
		e.EagerRefreshThreshold = *c.EagerRefreshThreshold
	}
	if c.Tags != nil {
		e.Tags = append([]string(nil), c.Tags...)
	}
	if c.KeyPrefix != nil {
		cs.KeyPrefix = *c.KeyPrefix
	}
	if c.L1MaxEntries != nil {
		cs.L1MaxEntries = *c.L1MaxEntries
	}
	if c.DisableL2 != nil {
		cs.DisableL2 = *c.DisableL2
	}
	if c.DisableBackplane != nil {
		cs.DisableBackplane = *c.DisableBackplane
	}
	if c.MaxKeyLength != nil {
		cs.MaxKeyLength = *c.MaxKeyLength
	}
	if c.RedisURL != nil && *c.RedisURL != "" {
		cs.Redis = &strata.RedisSettings{URL: *c.RedisURL}
	}
	if c.strict() {
		e.BackgroundL2Operations = false
	}
}

func (c CacheConfig) strict() bool { return c.StrictWrites != nil && *c.StrictWrites }

func (c CacheConfig) valueType() string {
	if c.ValueType == nil {
		return valueBytes
	}
	return *c.ValueType
}

func (c CacheConfig) contentType() string {
	if c.ContentType != nil && *c.ContentType != "" {
		return *c.ContentType
	}
	if c.valueType() == valueJSON {
		return "application/json"
	}
	return "application/octet-stream"
}

// Defaults of the server's own settings.
const (
	defaultListen          = ":8080"
	defaultMaxBodyBytes    = 1 << 20
	defaultMaxBatchKeys    = 1000
	defaultShutdownTimeout = 10 * time.Second
	defaultReadTimeout     = 30 * time.Second
	// writeTimeoutMargin is the default write_timeout beyond read_timeout:
	// the handler (an origin call, a strict write) and the response.
	writeTimeoutMargin   = 30 * time.Second
	defaultOriginTimeout = 10 * time.Second
	defaultDacheCache    = "dache"
)

// dacheForever is the lifetime of a dache entry written without expiry
// ("until it is deleted").
const dacheForever = 10 * 365 * 24 * time.Hour

// The engines.
const (
	engineMemory   = "memory"
	engineRedis    = "redis"
	enginePostgres = "postgres"
	engineEtcd     = "etcd"
)

// loadConfig reads the file at path (none if empty), then the
// environment through getenv, fills the defaults and validates.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	cfg := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errConfig, err)
		}
		if err := decodeYAML(b, cfg); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
		}
	}
	if err := cfg.fromEnv(getenv); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// fromEnv applies the environment on top of the file.
func (c *Config) fromEnv(getenv func(string) string) error {
	if v := getenv("STRATA_LISTEN"); v != "" {
		c.Listen = v
	} else if port := getenv("PORT"); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%w: PORT is not a port number (0 to 65535)", errConfig)
		}
		c.Listen = net.JoinHostPort(getenv("STRATA_HOST"), port)
	} else if host := getenv("STRATA_HOST"); host != "" {
		// The host on the port of listen (8080 by default): ignoring it
		// would listen on every interface when 127.0.0.1 was asked for.
		listen := c.Listen
		if listen == "" {
			listen = defaultListen
		}
		_, port, err := net.SplitHostPort(listen)
		if err != nil {
			return fmt.Errorf("%w: STRATA_HOST: listen (STRATA_LISTEN) has no port to go with it: %s", errConfig, addrProblem(err))
		}
		c.Listen = net.JoinHostPort(host, port)
	}
	switch v := getenv("LOG_FORMAT"); v {
	case "", "json", "text":
		c.logFormat = v
	default:
		return fmt.Errorf("%w: LOG_FORMAT: json or text expected", errConfig)
	}
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"STRATA_TLS_CERT_FILE", &c.TLSCertFile},
		{"STRATA_TLS_KEY_FILE", &c.TLSKeyFile},
		{"STRATA_TLS_CLIENT_CA_FILE", &c.TLSClientCAFile},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	if v := getenv("STRATA_TOKEN"); v != "" {
		c.Token = v
	}
	if v := getenv("LOGGING_REDACT_KEYS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: LOGGING_REDACT_KEYS: true or false expected", errConfig)
		}
		c.RedactKeys = b
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	if v := getenv("LOG_REQUESTS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: LOG_REQUESTS: true or false expected", errConfig)
		}
		c.LogRequests = &b
	}
	if v := getenv("STRATA_SHUTDOWN_DELAY"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return fmt.Errorf("%w: STRATA_SHUTDOWN_DELAY: %w", errConfig, err)
		}
		c.ShutdownDelay = d
	}
	if v := getenv("DURABILITY_ENGINE"); v != "" {
		c.Engine = v
	}
	if v := getenv("REDIS_URL"); v != "" {
		c.RedisURL = v
	}
	if v := getenv("POSTGRES_PORT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%w: POSTGRES_PORT is not a port number (1 to 65535)", errConfig)
		}
		c.Postgres.Port = n
	}
	if v := getenv("ETCD_ENDPOINTS"); v != "" {
		c.EtcdEndpoints = nil
		for ep := range strings.SplitSeq(v, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				c.EtcdEndpoints = append(c.EtcdEndpoints, ep)
			}
		}
	}
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"ETCD_USERNAME", &c.EtcdUsername},
		{"ETCD_PASSWORD", &c.EtcdPassword},
		{"ETCD_CA_FILE", &c.EtcdCAFile},
		{"ETCD_CERT_FILE", &c.EtcdCertFile},
		{"ETCD_KEY_FILE", &c.EtcdKeyFile},
		{"POSTGRES_HOST", &c.Postgres.Host},
		{"POSTGRES_USER", &c.Postgres.User},
		{"POSTGRES_PASSWORD", &c.Postgres.Password},
		{"POSTGRES_DATABASE", &c.Postgres.Database},
		{"POSTGRES_SSLMODE", &c.Postgres.SSLMode},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	return nil
}

func (c *Config) fillDefaults() {
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.MaxBatchKeys == 0 {
		c.MaxBatchKeys = defaultMaxBatchKeys
	}
	if c.LogRequests == nil {
		t := true
		c.LogRequests = &t
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(defaultShutdownTimeout)
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = Duration(defaultReadTimeout)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = c.ReadTimeout + Duration(writeTimeoutMargin)
	}
	if c.Engine == "" {
		c.Engine = engineMemory
	}
	if c.Dache.Enabled == nil {
		t := true
		c.Dache.Enabled = &t
	}
	if c.Dache.Cache == "" {
		c.Dache.Cache = defaultDacheCache
	}
}

func (c *Config) dacheEnabled() bool { return *c.Dache.Enabled }

// etcdSet reports whether any etcd setting is given.
func (c *Config) etcdSet() bool {
	return len(c.EtcdEndpoints) > 0 || c.EtcdUsername != "" || c.EtcdPassword != "" ||
		c.EtcdCAFile != "" || c.EtcdCertFile != "" || c.EtcdKeyFile != ""
}

func (c *Config) validate() error {
	switch c.Engine {
	case engineMemory, engineRedis, engineEtcd, enginePostgres:
	default:
		return fmt.Errorf("%w: DURABILITY_ENGINE (engine): memory, redis, etcd or postgres expected", errConfig)
	}
	switch {
	case c.Engine == engineRedis && c.RedisURL == "":
		return fmt.Errorf("%w: DURABILITY_ENGINE=redis needs REDIS_URL (redis_url)", errConfig)
	case c.Engine != engineRedis && c.RedisURL != "":
		return fmt.Errorf("%w: REDIS_URL (redis_url) is set but the engine is %q: set DURABILITY_ENGINE=redis, or unset REDIS_URL", errConfig, c.Engine)
	case c.Engine == engineEtcd && len(c.EtcdEndpoints) == 0:
		return fmt.Errorf("%w: DURABILITY_ENGINE=etcd needs ETCD_ENDPOINTS (etcd_endpoints)", errConfig)
	case c.Engine != engineEtcd && c.etcdSet():
		return fmt.Errorf("%w: ETCD_* (etcd_*) settings are set but the engine is %q: set DURABILITY_ENGINE=etcd, or unset them", errConfig, c.Engine)
	case (c.EtcdUsername == "") != (c.EtcdPassword == ""):
		return fmt.Errorf("%w: set both ETCD_USERNAME and ETCD_PASSWORD (etcd_username, etcd_password), or neither", errConfig)
	case (c.EtcdCertFile == "") != (c.EtcdKeyFile == ""):
		return fmt.Errorf("%w: set both ETCD_CERT_FILE and ETCD_KEY_FILE (etcd_cert_file, etcd_key_file), or neither", errConfig)
	case c.Engine == enginePostgres && c.Postgres.Host == "":
		return fmt.Errorf("%w: DURABILITY_ENGINE=postgres needs POSTGRES_HOST (postgres.host)", errConfig)
	case c.Engine != enginePostgres && c.Postgres.set():
		return fmt.Errorf("%w: POSTGRES_* (postgres) settings are set but the engine is %q: set DURABILITY_ENGINE=postgres, or unset them", errConfig, c.Engine)
	case c.Postgres.Port < 0 || c.Postgres.Port > 65535:
		return fmt.Errorf("%w: postgres.port (POSTGRES_PORT) is not a port number (1 to 65535)", errConfig)
	}
	for i, ep := range c.EtcdEndpoints {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return fmt.Errorf("%w: ETCD_ENDPOINTS (etcd_endpoints): endpoint %d of %d: an http:// or https:// URL expected", errConfig, i+1, len(c.EtcdEndpoints))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: listen (STRATA_LISTEN): host:port expected, such as \":8080\": %s", errConfig, addrProblem(err))
	}
	if err := validRedisURL(c.RedisURL); err != nil {
		return fmt.Errorf("%w: REDIS_URL (redis_url): %w", errConfig, err)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%w: set both tls_cert_file and tls_key_file (STRATA_TLS_CERT_FILE, STRATA_TLS_KEY_FILE), or neither", errConfig)
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return fmt.Errorf("%w: tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file", errConfig)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: max_body_bytes is negative", errConfig)
	}
	if c.MaxBatchKeys < 0 {
		return fmt.Errorf("%w: max_batch_keys is negative", errConfig)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if !sendableToken(c.Token) {
		return fmt.Errorf("%w: token (STRATA_TOKEN) %s", errConfig, unsendable)
	}
	all := map[string]CacheConfig{}
	for name, cc := range c.Caches {
		all[name] = cc
	}
	if c.dacheEnabled() {
		if _, ok := all[c.Dache.Cache]; !ok {
			all[c.Dache.Cache] = CacheConfig{}
		}
	}
	for name, cc := range all {
		m := c.cacheConfig(name, cc)
		switch m.valueType() {
		case valueBytes, valueJSON:
		default:
			return fmt.Errorf("%w: cache %q: value_type: bytes or json expected", errConfig, name)
		}
		if c.dacheEnabled() && name == c.Dache.Cache && m.valueType() != valueJSON {
			return fmt.Errorf("%w: cache %q is the dache cache: its value_type must be json", errConfig, name)
		}
		if m.Origin != nil {
			if !strings.HasPrefix(m.Origin.URL, "http://") && !strings.HasPrefix(m.Origin.URL, "https://") {
				return fmt.Errorf("%w: cache %q: origin.url must be an http:// or https:// URL", errConfig, name)
			}
		}
		if m.Token != nil && !sendableToken(*m.Token) {
			return fmt.Errorf("%w: cache %q: token %s", errConfig, name, unsendable)
		}
		if c.Engine == engineMemory && m.RedisURL != nil && *m.RedisURL != "" {
			return fmt.Errorf("%w: cache %q: redis_url is set but the engine is memory", errConfig, name)
		}
		if m.RedisURL != nil {
			if err := validRedisURL(*m.RedisURL); err != nil {
				return fmt.Errorf("%w: cache %q: redis_url: %w", errConfig, name, err)
			}
		}
	}
	return nil
}

// validRedisURL reports a Redis URL that does not parse ("" is none),
// without quoting it or any part of it: url.Parse's error quotes the URL
// and the part that failed, which may be the password ("invalid port
// \":pa\" after host" for a password with a '/'), and the library's
// masking of the password does not reach that part.
func validRedisURL(u string) error {
	if u == "" {
		return nil
	}
	if _, err := url.Parse(u); err != nil {
		return errors.New("not a URL that parses: percent-encode the special characters of its user name and password (/ is %2F, % is %25, @ is %40, # is %23)")
	}
	return nil
}

// addrProblem is the reason of a net.SplitHostPort error, without the
// address it quotes.
func addrProblem(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return "not host:port"
}

// unsendable says why a token that sendableToken refuses is refused,
// without showing it.
const unsendable = "has white space at either end or a control character: no request can carry it (net/http trims header values), so every request would be 401; a secret file's trailing newline?"

// sendableToken reports whether a bearer token can arrive in an
// Authorization header: no white space at either end, no control
// character. The empty token (none) is fine.
func sendableToken(tok string) bool {
	if strings.TrimSpace(tok) != tok {
		return false
	}
	for _, r := range tok {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// cacheConfig is the effective configuration of the cache name: the
// defaults, then the dache mode's own (for the dache cache), then the
// cache's.
func (c *Config) cacheConfig(name string, cc CacheConfig) CacheConfig {
	m := CacheConfig{}.merge(c.Defaults)
	if c.dacheEnabled() && name == c.Dache.Cache {
		m = m.merge(dacheDefaults())
	}
	return m.merge(cc)
}

// cacheNames returns every cache the server serves, the dache cache
// included.
func (c *Config) cacheNames() map[string]CacheConfig {
	out := map[string]CacheConfig{}
	for name, cc := range c.Caches {
		out[name] = c.cacheConfig(name, cc)
	}
	if c.dacheEnabled() {
		if _, ok := out[c.Dache.Cache]; !ok {
			out[c.Dache.Cache] = c.cacheConfig(c.Dache.Cache, CacheConfig{})
		}
	}
	return out
}

// dacheDefaults are the settings of the dache cache: JSON values, strict
// writes, entries that live until their expiry exactly (no jitter, no
// fail-safe, no eager refresh).
func dacheDefaults() CacheConfig {
	f, t := false, true
	json := valueJSON
	zero := Duration(0)
	forever := Duration(dacheForever)
	eager := 0.0
	return CacheConfig{
		Duration:              &forever,
		JitterMaxDuration:     &zero,
		FailSafe:              &f,
		EagerRefreshThreshold: &eager,
		FactorySoftTimeout:    &zero,
		ValueType:             &json,
		StrictWrites:          &t,
	}
}
