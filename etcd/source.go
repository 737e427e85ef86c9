package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/hybrid"
)

// errNotConnected is returned while a client that authenticates with a user
// and password is still being created (etcd unreachable at start-up).
var errNotConnected = fmt.Errorf("%w: etcd client not connected yet", hybrid.ErrL2Unavailable)

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
		return fixedSource(c, true), nil
	}
	s := &source{ready: make(chan struct{}), done: make(chan struct{}), owned: true}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	s.wg.Go(func() { s.dial(cfg) })
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

// get returns the client, waiting for it within ctx.
func (s *source) get(ctx context.Context) (*clientv3.Client, error) {
	select {
	case <-s.ready:
		return s.client, nil
	default:
	}
	select {
	case <-s.ready:
		return s.client, nil
	case <-s.done:
		return nil, fmt.Errorf("%w: etcd: closed", hybrid.ErrL2Config)
	case <-ctx.Done():
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil && Classify(err) == KindConfig {
			return nil, fmt.Errorf("%w: etcd: connect: %w", hybrid.ErrL2Config, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errNotConnected, err)
		}
		return nil, errors.Join(errNotConnected, ctx.Err())
	}
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
