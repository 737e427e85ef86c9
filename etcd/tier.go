package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
)

// Config is how to reach etcd: the fields of clientv3.Config that a cache
// needs (the same ones Souin's etcd storage takes), plus the tier's own.
// Only Endpoints is required; every other field says what its zero value
// does.
type Config struct {
	// Endpoints are the etcd members' client URLs (http://host:port, or
	// https:// with TLS). Required.
	Endpoints []string
	// AutoSyncInterval refreshes the endpoints from the cluster's member
	// list at this interval. Zero means never.
	AutoSyncInterval time.Duration
	// DialTimeout bounds the authentication round trip when Username is
	// set (done in the background: it never blocks start-up). Zero means 5 s.
	DialTimeout time.Duration
	// DialKeepAliveTime is how long a connection may stay silent before the
	// client pings the member. Zero means DefaultDialKeepAliveTime (10 s,
	// the least gRPC allows); negative means no keepalive pings.
	//
	// WARNING: without pings, a member that hangs (a stalled disk, a
	// partition that drops packets) keeps the connection open: the change
	// feed's watch on it waits for as long as it hangs, and the cache serves
	// what it holds as fresh meanwhile, though the other members answer.
	DialKeepAliveTime time.Duration
	// DialKeepAliveTimeout is how long the client waits for a keepalive
	// answer before it closes the connection (its calls and watches move
	// to another endpoint, or wait for the member to answer again). Zero
	// means DefaultDialKeepAliveTimeout (5 s).
	DialKeepAliveTimeout time.Duration
	// MaxCallSendMsgSize is the client's request size limit. Zero means
	// 2 MiB (the etcd client's default).
	MaxCallSendMsgSize int
	// MaxCallRecvMsgSize is the client's response size limit. Zero means
	// unlimited (math.MaxInt32).
	MaxCallRecvMsgSize int
	// Username and Password authenticate with etcd's auth. Both or neither.
	Username string
	// Password of Username. It never appears in errors or logs.
	Password string
	// RejectOldCluster refuses a cluster older than the client (3.4 and
	// older: Debian's etcd-server 3.4 is rejected with it).
	RejectOldCluster bool
	// PermitWithoutStream sends keepalive pings even without active streams.
	PermitWithoutStream bool
	// TLS is the client's TLS configuration (https:// endpoints). Nil means
	// plaintext.
	TLS *tls.Config

	// MaxRequestBytes is the servers' --max-request-bytes. Zero means
	// DefaultMaxRequestBytes (1.5 MiB).
	MaxRequestBytes int
	// Logger is the etcd client's zap logger. Nil means none (the tier logs
	// through the provider's slog logger).
	Logger *zap.Logger
}

// Defaults of Config's keepalive: a member that stops answering is left
// within about 15 s (gRPC pings no more often than every 10 s).
const (
	// DefaultDialKeepAliveTime is Config.DialKeepAliveTime's zero value.
	DefaultDialKeepAliveTime = 10 * time.Second
	// DefaultDialKeepAliveTimeout is Config.DialKeepAliveTimeout's zero value.
	DefaultDialKeepAliveTimeout = 5 * time.Second
)

// TierOptions configure a tier on a client of the caller's.
type TierOptions struct {
	// MaxRequestBytes is the servers' --max-request-bytes. Zero means
	// DefaultMaxRequestBytes (1.5 MiB).
	MaxRequestBytes int
}

func (c *Config) validate() error {
	switch {
	case len(c.Endpoints) == 0:
		return fmt.Errorf("%w: etcd: Endpoints is empty", strata.ErrInvalidSettings)
	case c.AutoSyncInterval < 0 || c.DialTimeout < 0 || c.DialKeepAliveTimeout < 0:
		return fmt.Errorf("%w: etcd: a duration is negative", strata.ErrInvalidSettings)
	case c.MaxCallSendMsgSize < 0 || c.MaxCallRecvMsgSize < 0 || c.MaxRequestBytes < 0:
		return fmt.Errorf("%w: etcd: a size is negative", strata.ErrInvalidSettings)
	case c.MaxCallRecvMsgSize > 0 && c.MaxCallSendMsgSize > c.MaxCallRecvMsgSize:
		return fmt.Errorf("%w: etcd: MaxCallSendMsgSize is above MaxCallRecvMsgSize", strata.ErrInvalidSettings)
	case (c.Username == "") != (c.Password == ""):
		return fmt.Errorf("%w: etcd: set both Username and Password, or neither", strata.ErrInvalidSettings)
	}
	for _, e := range c.Endpoints {
		if e == "" {
			return fmt.Errorf("%w: etcd: an endpoint is empty", strata.ErrInvalidSettings)
		}
	}
	return nil
}

// clientConfig maps c to the etcd client's configuration.
func (c *Config) clientConfig() clientv3.Config {
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	keepAlive, keepAliveTimeout := c.DialKeepAliveTime, c.DialKeepAliveTimeout
	switch {
	case keepAlive < 0:
		keepAlive, keepAliveTimeout = 0, 0
	case keepAlive == 0:
		keepAlive = DefaultDialKeepAliveTime
	}
	if keepAlive > 0 && keepAliveTimeout == 0 {
		keepAliveTimeout = DefaultDialKeepAliveTimeout
	}
	return clientv3.Config{
		Endpoints:            append([]string(nil), c.Endpoints...),
		AutoSyncInterval:     c.AutoSyncInterval,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    keepAlive,
		DialKeepAliveTimeout: keepAliveTimeout,
		MaxCallSendMsgSize:   c.MaxCallSendMsgSize,
		MaxCallRecvMsgSize:   c.MaxCallRecvMsgSize,
		Username:             c.Username,
		Password:             c.Password,
		RejectOldCluster:     c.RejectOldCluster,
		PermitWithoutStream:  c.PermitWithoutStream,
		TLS:                  c.TLS,
		Logger:               log,
		// Reconnect within 2 s of etcd coming back (gRPC's default backoff
		// grows to 2 minutes).
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: time.Second,
		})},
	}
}

// Tier puts caches on etcd: it implements strata.Tier. Each cache gets an
// L2 and a Backplane on its key prefix, sharing the tier's client.
type Tier struct {
	src        *source
	maxRequest int
}

var _ strata.Tier = (*Tier)(nil)

// NewTier creates the etcd client of cfg and a tier on it; Close closes the
// client. It does not contact etcd (with Username set, it authenticates in
// the background: operations wait for it within their own timeouts).
func NewTier(cfg Config) (*Tier, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	src, err := dialSource(cfg.clientConfig())
	if err != nil {
		return nil, err
	}
	return &Tier{src: src, maxRequest: cfg.MaxRequestBytes}, nil
}

// NewTierFromClient returns a tier on the caller's client, which it never
// closes.
func NewTierFromClient(client *clientv3.Client, o TierOptions) (*Tier, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: etcd: nil client", strata.ErrInvalidSettings)
	}
	if o.MaxRequestBytes < 0 {
		return nil, fmt.Errorf("%w: etcd: MaxRequestBytes is negative", strata.ErrInvalidSettings)
	}
	return &Tier{src: fixedSource(client, false), maxRequest: o.MaxRequestBytes}, nil
}

// Settings returns the strata.TierSettings of a tier on a client built
// from cfg: the provider builds it (once for Settings.Tier, once per cache
// for CacheSettings.Tier) and closes it on Close.
func Settings(cfg Config) *strata.TierSettings {
	cfg.Endpoints = append([]string(nil), cfg.Endpoints...)
	return &strata.TierSettings{New: func() (strata.Tier, error) { return NewTier(cfg) }}
}

// ClientSettings returns the strata.TierSettings of a tier on the caller's
// client. The provider closes the tier, never the client.
func ClientSettings(client *clientv3.Client, o TierOptions) *strata.TierSettings {
	return &strata.TierSettings{New: func() (strata.Tier, error) { return NewTierFromClient(client, o) }}
}

// Open returns the L2 and the Backplane of one cache (see the package
// function Open). It does not contact etcd.
func (t *Tier) Open(o strata.TierCacheOptions) (strata.TierCache, error) {
	l2, bp, err := open(t.src, Options{KeyPrefix: o.KeyPrefix, DisableL2: o.DisableL2, DisableBackplane: o.DisableBackplane,
		MaxRequestBytes: t.maxRequest, Logger: o.Logger})
	if err != nil {
		return strata.TierCache{}, err
	}
	var tc strata.TierCache
	if l2 != nil {
		tc.L2 = l2
		// Room for the longest key (four times in the transaction, once
		// more in the feed record), the rest of the record and its key.
		tc.MaxValueSize = l2.maxRequest - requestOverhead - 5*hybrid.DefaultMaxKeyLength - 5*len(o.KeyPrefix) - 512
	}
	if bp != nil {
		tc.Backplane = bp
	}
	return tc, nil
}

// Ping checks that etcd answers and accepts the tier's credentials: a
// Status call on one endpoint, bounded by ctx. Errors wrap
// hybrid.ErrL2Config for an authentication failure and
// hybrid.ErrL2Unavailable when etcd cannot be reached.
func (t *Tier) Ping(ctx context.Context) error {
	c, err := t.src.get(ctx)
	if err != nil {
		return wrap("ping", "", err)
	}
	eps := c.Endpoints()
	if len(eps) == 0 {
		return errors.New("etcd: ping: no endpoint")
	}
	if _, err := c.Status(ctx, eps[0]); err != nil {
		return wrap("ping", eps[0], err)
	}
	return nil
}

// Close closes the client if the tier created it. Close the caches first
// (the provider does).
func (t *Tier) Close() error { return t.src.close() }

// unreachable reports whether c cannot reach etcd now: its connection is
// in transient failure and a new attempt, started at once, does not succeed
// within connectGrace (every member refused or timed out), or it is still
// connecting after connectGrace. Then an operation fails at once instead of
// waiting for its deadline, so that the cache's circuit breaker opens; an
// operation on a ready connection is not delayed at all.
//
// A connection in transient failure waits out gRPC's reconnect backoff
// (up to 2 s with the tier's own client, 2 minutes with gRPC's defaults)
// before it tries again, so that after etcd comes back the calls in that
// window would fail and open the breaker though etcd answers. The backoff
// is cut short instead (ResetConnectBackoff): the call that finds the
// connection failed pays for one connection attempt, and the breaker keeps
// the calls that follow a real outage from paying it again.
func unreachable(ctx context.Context, c *clientv3.Client) bool {
	conn := c.ActiveConnection()
	if conn == nil {
		return false
	}
	st := conn.GetState()
	switch st {
	case connectivity.Ready:
		return false
	case connectivity.Idle:
		conn.Connect()
	}
	wctx, cancel := context.WithTimeout(ctx, connectGrace)
	defer cancel()
	if st == connectivity.TransientFailure {
		conn.ResetConnectBackoff()
		if !conn.WaitForStateChange(wctx, st) {
			return true // no new attempt within the grace
		}
	}
	for {
		switch st = conn.GetState(); st {
		case connectivity.Ready:
			return false
		case connectivity.TransientFailure:
			return true
		case connectivity.Shutdown:
			return false // the call reports the closed client
		}
		if !conn.WaitForStateChange(wctx, st) {
			return ctx.Err() == nil // still connecting after the grace
		}
	}
}

var errUnreachable = fmt.Errorf("%w: etcd unreachable (connection in transient failure)", hybrid.ErrL2Unavailable)
