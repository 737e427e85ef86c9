package etcd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/tlserr"
)

// errNotConnected is returned while a client that authenticates with a user
// and password is still being created (etcd unreachable at start-up).
var errNotConnected = fmt.Errorf("%w: etcd client not connected yet", hybrid.ErrL2Unavailable)

// connectGrace is how long an operation waits for a connection that is
// being established before it fails as unavailable.
const connectGrace = 250 * time.Millisecond

// startGrace is how long after the tier's creation operations wait for the
// first authentication (within their own context); later they fail at once
// while the client is still missing.
const startGrace = time.Second

// source hands out the etcd client. A client given by the caller is there
// at once. A client this package creates with a user and password needs a
// round trip (clientv3.New authenticates before returning), so it is created
// in the background, retried until it succeeds, and callers wait for it
// within their context: an unreachable etcd never blocks start-up.
type source struct {
	mu     sync.Mutex
	client *clientv3.Client
	err    error         // last creation error (nil while none failed)
	ready  chan struct{} // closed once client is set
	done   chan struct{} // closed by close
	wg     sync.WaitGroup
	owned  bool
	closed bool
	start  time.Time // when the background creation began

	// tlsConf and endpoints are the client's, when the tier created it
	// with TLS: for diagnoseTLS. nil: no diagnosis.
	tlsConf   *tls.Config
	endpoints []string
	diagMu    sync.Mutex
	diagAt    time.Time // of the last diagnosis
	diagErr   error     // its result
}

// fixedSource is a source on an existing client.
func fixedSource(c *clientv3.Client, owned bool) *source {
	s := &source{client: c, ready: make(chan struct{}), done: make(chan struct{}), owned: owned}
	close(s.ready)
	return s
}

// dialSource creates the client of cfg: at once when that needs no round
// trip, else in the background.
func dialSource(cfg clientv3.Config) (*source, error) {
	if cfg.Username == "" && !cfg.RejectOldCluster {
		c, err := clientv3.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("etcd: new client: %w", err)
		}
		s := fixedSource(c, true)
		s.tlsConf, s.endpoints = cfg.TLS, cfg.Endpoints
		return s, nil
	}
	s := &source{ready: make(chan struct{}), done: make(chan struct{}), owned: true, start: time.Now(),
		tlsConf: cfg.TLS, endpoints: cfg.Endpoints}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Context = ctx // cancelled by close: clientv3.New stops waiting
	s.wg.Go(func() { s.dial(cfg) })
	s.wg.Go(func() { // the client lives in ctx: cancel it only on close
		<-s.done
		cancel()
	})
	return s, nil
}

// dial retries clientv3.New until it succeeds or the source is closed.
func (s *source) dial(cfg clientv3.Config) {
	delay := 100 * time.Millisecond
	for {
		c, err := clientv3.New(cfg)
		s.mu.Lock()
		if err == nil {
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.client, s.err = c, nil
			close(s.ready)
			s.mu.Unlock()
			return
		}
		s.err = err
		s.mu.Unlock()
		select {
		case <-s.done:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// get returns the client. While it is being created, get fails at once
// with the last creation error, if any; otherwise it waits for it, within
// ctx, until startGrace after the tier was created (the first
// authentication takes a round trip), and fails at once after that: the
// caller's circuit breaker, not its deadline, absorbs an etcd that is down
// at start-up.
func (s *source) get(ctx context.Context) (*clientv3.Client, error) {
	select {
	case <-s.ready:
		return s.client, nil
	default:
	}
	if err := s.lastErr(); err != nil {
		return nil, err
	}
	wait := time.Until(s.start.Add(startGrace))
	if wait <= 0 {
		return nil, errNotConnected
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.ready:
		return s.client, nil
	case <-s.done:
		return nil, fmt.Errorf("%w: etcd: closed", hybrid.ErrL2Config)
	case <-t.C:
	case <-ctx.Done():
	}
	if err := s.lastErr(); err != nil {
		return nil, err
	}
	return nil, errNotConnected
}

// lastErr returns the last creation error, classified for the cache.
func (s *source) lastErr() error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case Classify(err) == KindConfig:
		return fmt.Errorf("%w: etcd: connect: %w", hybrid.ErrL2Config, err)
	}
	return fmt.Errorf("%w: %w", errNotConnected, err)
}

// close stops the background creation and closes the client if owned.
func (s *source) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	c := s.client
	s.mu.Unlock()
	s.wg.Wait()
	if s.owned && c != nil {
		return c.Close()
	}
	return nil
}

// unreachable returns the error of an operation that cannot reach etcd
// now (see unreachable), or nil. With TLS, it tells a handshake that
// fails on the server's certificate (a configuration error: waiting will
// not fix it) from an outage, which gRPC's connection state does not.
func (s *source) unreachable(ctx context.Context, c *clientv3.Client) error {
	if !unreachable(ctx, c) {
		return nil
	}
	if err := s.diagnoseTLS(ctx); err != nil {
		return err
	}
	return errUnreachable
}

// diagnoseTLS makes a TLS handshake with the first endpoint, with the
// client's TLS settings, at most once a second, and returns a
// configuration error when it fails on the server's certificate.
func (s *source) diagnoseTLS(ctx context.Context) error {
	if s.tlsConf == nil || len(s.endpoints) == 0 {
		return nil
	}
	s.diagMu.Lock()
	defer s.diagMu.Unlock()
	if time.Since(s.diagAt) < time.Second {
		return s.diagErr
	}
	s.diagAt, s.diagErr = time.Now(), nil
	host := s.endpoints[0]
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Host
	}
	conf := s.tlsConf.Clone()
	if conf.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			conf.ServerName = h
		}
	}
	dctx, cancel := context.WithTimeout(ctx, connectGrace)
	defer cancel()
	conn, err := (&tls.Dialer{Config: conf}).DialContext(dctx, "tcp", host)
	if err == nil {
		conn.Close()
		return nil
	}
	if tlserr.Untrusted(err) {
		s.diagErr = fmt.Errorf("%w: etcd: TLS handshake with %s: %w", hybrid.ErrL2Config, host, err)
	}
	return s.diagErr
}
