package backplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	defaultQueueSize        = 1024
	defaultSubscribeTimeout = 5 * time.Second
)

// RedisOptions configure [NewRedis]. Every field says what its zero value does.
type RedisOptions struct {
	// Channel is the pub/sub channel; required. Use [ChannelName] to build it, so that
	// sharded pub/sub works on a cluster.
	Channel string
	// QueueSize bounds the receive queue between the Redis reader and the handler. A
	// message that arrives while the queue is full is dropped and reported as a gap.
	// Zero means 1024; negative is an error.
	QueueSize int
	// Logger receives what the backplane swallows: undecodable payloads, queue
	// overflows, resubscriptions. Nil means [slog.Default].
	Logger *slog.Logger
	// Sharded selects sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+), which on a
	// Redis Cluster keeps a channel's traffic on the shard that owns its slot instead
	// of broadcasting it to every node. When the client is a *redis.ClusterClient,
	// sharded pub/sub is used even if Sharded is false, unless DisableSharded is set.
	Sharded bool
	// DisableSharded forces classic PUBLISH/SUBSCRIBE, also on a *redis.ClusterClient.
	// It wins over Sharded.
	DisableSharded bool
	// SubscribeTimeout bounds how long Subscribe waits for the first subscription to
	// be confirmed. Zero means 5 s; negative is an error.
	SubscribeTimeout time.Duration
}

// Redis is a [Backplane] over Redis pub/sub. It uses one dedicated connection for its
// subscription (a *redis.PubSub), which go-redis re-establishes by itself after a
// disconnect; every re-established subscription is reported to the handler as a gap.
//
// A reader goroutine takes what Redis sends and pushes it onto a bounded queue without
// ever waiting; a dispatcher goroutine calls the handler. So a slow handler cannot
// stall the connection (which Redis would cut off once its output buffer limit is
// reached): it loses messages instead, and is told so through HandleGap.
type Redis struct {
	client           redis.UniversalClient
	channel          string
	sharded          bool
	queueSize        int
	subscribeTimeout time.Duration
	log              *slog.Logger

	mu         sync.Mutex // serializes Subscribe and Close
	subscribed bool
	ps         *redis.PubSub
	in         atomic.Pointer[inbox]
	done       chan struct{} // closed by Close
	closed     atomic.Bool
	wg         sync.WaitGroup

	// state of the first subscription: 0 pending, 1 confirmed in time, 2 Subscribe
	// gave up (then the late confirmation is a gap).
	firstState atomic.Int32

	published    atomic.Uint64
	resubscribes atomic.Uint64
}

var _ Backplane = (*Redis)(nil)

// NewRedis returns a backplane on o.Channel over client. It does not own the client:
// Close leaves it open. Nothing is sent to Redis before Subscribe or Publish. It returns
// an error naming the field for invalid options.
func NewRedis(client redis.UniversalClient, o RedisOptions) (*Redis, error) {
	switch {
	case client == nil:
		return nil, errors.New("backplane: invalid options: nil client")
	case o.Channel == "":
		return nil, errors.New("backplane: invalid options: Channel is empty")
	case o.QueueSize < 0:
		return nil, errors.New("backplane: invalid options: QueueSize is negative")
	case o.SubscribeTimeout < 0:
		return nil, errors.New("backplane: invalid options: SubscribeTimeout is negative")
	}
	r := &Redis{
		client:           client,
		channel:          o.Channel,
		queueSize:        o.QueueSize,
		subscribeTimeout: o.SubscribeTimeout,
		log:              o.Logger,
		done:             make(chan struct{}),
	}
	if r.queueSize == 0 {
		r.queueSize = defaultQueueSize
	}
	if r.subscribeTimeout == 0 {
		r.subscribeTimeout = defaultSubscribeTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if !o.DisableSharded {
		_, cluster := client.(*redis.ClusterClient)
		r.sharded = o.Sharded || cluster
	}
	return r, nil
}

// Channel returns the pub/sub channel of r.
func (r *Redis) Channel() string { return r.channel }

// Sharded reports whether r uses sharded pub/sub (SPUBLISH/SSUBSCRIBE).
func (r *Redis) Sharded() bool { return r.sharded }

// Publish sends m with PUBLISH, or SPUBLISH when sharded. It does not retry: it returns
// the client's error wrapped, an error wrapping [ErrInvalidMessage] for an unknown
// kind, and [ErrClosed] after Close. A nil error means Redis accepted the message, not
// that anyone received it.
func (r *Redis) Publish(ctx context.Context, m Message) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := validate(m); err != nil {
		return err
	}
	payload := m.AppendBinary(make([]byte, 0, m.encodedLen()))
	var err error
	if r.sharded {
		err = r.client.SPublish(ctx, r.channel, payload).Err()
	} else {
		err = r.client.Publish(ctx, r.channel, payload).Err()
	}
	if err != nil {
		return fmt.Errorf("backplane: publish %s: %w", m.Kind, err)
	}
	r.published.Add(1)
	return nil
}

// Subscribe subscribes to the channel and starts delivering to h. It returns once Redis
// has confirmed the subscription; messages published before that are not delivered. It
// returns [ErrSubscribed] on a second call and [ErrClosed] after Close.
//
// If the subscription is not confirmed within RedisOptions.SubscribeTimeout (Redis
// down, for example), Subscribe returns an error wrapping [ErrSubscribeTimeout] but
// delivery stays started: go-redis keeps trying, and when the subscription is finally
// established the handler gets HandleGap (whatever was published meanwhile is lost).
// Call Close to give up instead.
//
// WARNING: h must not call Close; Close waits for the goroutine that calls h.
func (r *Redis) Subscribe(h Handler) error {
	if h == nil {
		return errNilHandler
	}
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.subscribed {
		r.mu.Unlock()
		return ErrSubscribed
	}
	r.subscribed = true

	// The subscribe command is written right away; if that fails, the channel is still
	// recorded and the PubSub's receive loop subscribes when it (re)connects.
	ctx, cancel := context.WithTimeout(context.Background(), r.subscribeTimeout)
	if r.sharded {
		r.ps = r.client.SSubscribe(ctx, r.channel)
	} else {
		r.ps = r.client.Subscribe(ctx, r.channel)
	}
	cancel()
	// Our reader never blocks, so the send timeout only matters if it is descheduled;
	// a queue overflow is detected on our side.
	msgs := r.ps.ChannelWithSubscriptions(redis.WithChannelSize(256))
	in := newInbox(r.queueSize)
	r.in.Store(in)
	ready := make(chan struct{})
	r.wg.Go(func() { r.read(msgs, in, ready) })
	r.wg.Go(func() { in.run(h) })
	r.mu.Unlock()

	t := time.NewTimer(r.subscribeTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-r.done:
		return ErrClosed
	case <-t.C:
		if r.firstState.CompareAndSwap(0, 2) {
			return fmt.Errorf("backplane: subscribe %q: %w after %s", r.channel, ErrSubscribeTimeout, r.subscribeTimeout)
		}
		return nil // confirmed at the last moment
	}
}

// read runs until go-redis closes msgs (after PubSub.Close). It never blocks on the
// handler, so go-redis never has to drop a message for lack of a reader.
func (r *Redis) read(msgs <-chan any, in *inbox, ready chan struct{}) {
	first := true
	for v := range msgs {
		if r.closed.Load() {
			continue // drain until go-redis closes the channel
		}
		switch v := v.(type) {
		case *redis.Message:
			in.received.Add(1)
			m, err := decode(v.Payload)
			if err != nil {
				in.corrupt.Add(1)
				r.log.Warn("backplane dropped an undecodable message", "channel", r.channel, "err", err)
				continue
			}
			if ok, newGap := in.push(m); !ok && newGap {
				r.log.Warn("backplane receive queue full, dropping messages", "channel", r.channel, "queue_size", r.queueSize)
			}
		case *redis.Subscription:
			switch v.Kind {
			case "subscribe", "ssubscribe":
				if first {
					first = false
					if r.firstState.CompareAndSwap(0, 1) {
						close(ready)
					} else {
						// Subscribe already returned ErrSubscribeTimeout.
						in.flagGap()
						r.log.Info("backplane subscribed late", "channel", r.channel)
					}
					continue
				}
				r.resubscribes.Add(1)
				in.flagGap()
				r.log.Info("backplane resubscribed after a disconnect", "channel", r.channel)
			case "unsubscribe", "sunsubscribe":
				// We never unsubscribe: the server dropped the subscription, e.g. after
				// its slot moved to another shard. Messages may be lost from now on.
				in.flagGap()
				r.log.Warn("backplane subscription dropped by the server", "channel", r.channel, "kind", v.Kind)
			}
		}
	}
}

// Close closes the subscription, stops the reader and the dispatcher and waits for
// them. After Close returns, the handler is not called again. It does not close the
// client. Close is idempotent and returns nil.
func (r *Redis) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Swap(true) {
		return nil
	}
	close(r.done)
	if in := r.in.Load(); in != nil {
		close(in.stop)
	}
	if r.ps != nil {
		// Closing the PubSub makes go-redis close the channel the reader ranges over.
		_ = r.ps.Close()
	}
	r.wg.Wait()
	return nil
}

// Stats returns the backplane's counters.
func (r *Redis) Stats() Stats {
	s := Stats{Published: r.published.Load(), Resubscribes: r.resubscribes.Load()}
	if in := r.in.Load(); in != nil {
		s.Received = in.received.Load()
		s.Dropped = in.dropped.Load()
		s.Corrupt = in.corrupt.Load()
		s.Gaps = in.gaps.Load()
	}
	return s
}
