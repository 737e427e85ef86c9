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
	// firstRetryDelay is how long a replacement subscription may take to be confirmed
	// before it is replaced again (the cluster state may still name the old shard).
	firstRetryDelay = 250 * time.Millisecond
)

// MaxQueueSize is the largest RedisOptions.QueueSize: the queue is
// allocated whole when the backplane subscribes, and a million messages
// outlast any burst a handler can fall behind by.
const MaxQueueSize = 1 << 20

// RedisOptions configure [NewRedis]. Every field says what its zero value does.
type RedisOptions struct {
	// Channel is the pub/sub channel; required. Use [ChannelName] to build it, so that
	// sharded pub/sub works on a cluster.
	Channel string
	// QueueSize bounds the receive queue between the Redis reader and the handler. A
	// message that arrives while the queue is full is dropped and reported as a gap.
	// Zero means 1024; negative or above MaxQueueSize is an error.
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

	mu         sync.Mutex // guards subscribed, ps and the closed transition; never held while waiting
	subscribed bool
	ps         *redis.PubSub
	in         atomic.Pointer[inbox]
	done       chan struct{}   // closed by Close
	ctx        context.Context // cancelled by Close: bounds the (re)subscribe calls
	cancel     context.CancelFunc
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
	case o.QueueSize > MaxQueueSize:
		return nil, fmt.Errorf("backplane: invalid options: QueueSize is above MaxQueueSize (%d)", MaxQueueSize)
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
	r.ctx, r.cancel = context.WithCancel(context.Background())
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

// Client returns the client r publishes and subscribes with.
func (r *Redis) Client() redis.UniversalClient { return r.client }

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
// Call Close to give up instead. [Redis.StartSubscribe] does not wait at all.
//
// WARNING: h must not call Close; Close waits for the goroutine that calls h.
func (r *Redis) Subscribe(h Handler) error {
	ready, err := r.StartSubscribe(h)
	if err != nil {
		return err
	}
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

// StartSubscribe is Subscribe without the wait: it starts the subscription and the
// delivery to h and returns without waiting for Redis's confirmation. It waits up to
// 200 ms for go-redis to send SUBSCRIBE (a Redis that answers then sees it before any
// PUBLISH sent after StartSubscribe returns); a Redis that is down or hung costs no
// more than that, and a goroutine goes on opening the subscription. ready is closed
// when Redis confirms the first subscription, which may be much later (Redis down at
// start-up: go-redis keeps trying); messages published before that are not delivered,
// and that first confirmation is not reported as a gap. Later resubscriptions are, as
// with Subscribe. The cache engine uses it so that creating a cache never waits for Redis.
//
// It returns [ErrSubscribed] on a second call (of either method) and [ErrClosed] after
// Close. WARNING: h must not call Close.
func (r *Redis) StartSubscribe(h Handler) (ready <-chan struct{}, err error) {
	if h == nil {
		return nil, errNilHandler
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if r.subscribed {
		return nil, ErrSubscribed
	}
	r.subscribed = true

	in := newInbox(r.queueSize)
	r.in.Store(in)
	rc := make(chan struct{})
	// go-redis dials and sends SUBSCRIBE within Subscribe, and a hung Redis
	// holds that for up to the client's read timeout: the reader does it,
	// and this call waits at most openWait for it. A Redis that answers
	// has the SUBSCRIBE before this returns, so that it sees it before a
	// PUBLISH sent after (as it did when this call sent it).
	opened := make(chan struct{})
	r.wg.Go(func() {
		ps := r.open()
		close(opened)
		r.mu.Lock()
		if r.closed.Load() {
			r.mu.Unlock()
			_ = ps.Close()
			return
		}
		r.ps = ps
		r.mu.Unlock()
		r.read(ps, in, rc)
	})
	r.wg.Go(func() { in.run(h) })
	t := time.NewTimer(openWait)
	defer t.Stop()
	select {
	case <-opened:
	case <-t.C:
	}
	return rc, nil
}

// openWait is how long StartSubscribe waits for go-redis to send SUBSCRIBE:
// a few round trips to a Redis that answers, and the most that a hung one
// costs the caller.
const openWait = 200 * time.Millisecond

// open returns a new PubSub subscribed to the channel. The subscribe command is
// written right away; if that fails, the channel is still recorded and the PubSub's
// receive loop subscribes when it (re)connects.
func (r *Redis) open() *redis.PubSub {
	ctx, cancel := context.WithTimeout(r.ctx, r.subscribeTimeout)
	defer cancel()
	if r.sharded {
		return r.client.SSubscribe(ctx, r.channel)
	}
	return r.client.Subscribe(ctx, r.channel)
}

// messages returns the Go channel of ps. Our reader never blocks, so go-redis's send
// timeout does not matter; a queue overflow is detected on our side.
func messages(ps *redis.PubSub) <-chan any {
	return ps.ChannelWithSubscriptions(redis.WithChannelSize(256))
}

// read runs until go-redis closes the channel of the current PubSub (after Close). It
// never blocks on the handler, so go-redis never has to drop a message for lack of a
// reader.
func (r *Redis) read(ps *redis.PubSub, in *inbox, ready chan struct{}) {
	msgs := messages(ps)
	first := true
	// While a replacement PubSub awaits its first confirmation, retry fires if it
	// does not come in time (the cluster state may still point to the old shard).
	var retry *time.Timer
	var retryC <-chan time.Time
	delay := firstRetryDelay // doubles up to subscribeTimeout while unconfirmed
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	replace := func() {
		var ok bool
		if msgs, ok = r.replace(msgs); !ok {
			return // closed: keep draining until go-redis closes msgs
		}
		if retry == nil {
			retry = time.NewTimer(delay)
		} else {
			retry.Reset(delay)
		}
		retryC = retry.C
		delay = min(2*delay, r.subscribeTimeout)
	}
	for {
		var v any
		select {
		case <-retryC:
			retryC = nil
			r.log.Warn("backplane resubscription not confirmed, retrying", "channel", r.channel)
			replace()
			continue
		case m, ok := <-msgs:
			if !ok {
				return
			}
			v = m
		}
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
				retryC, delay = nil, firstRetryDelay
				r.resubscribes.Add(1)
				in.flagGap()
				r.log.Info("backplane resubscribed after a disconnect", "channel", r.channel)
			case "unsubscribe", "sunsubscribe":
				// We never unsubscribe: the server dropped the subscription, e.g.
				// because the channel's slot moved to another shard. go-redis would
				// not resubscribe (its connection is fine), so a new PubSub is made;
				// its confirmation is reported as a gap.
				r.log.Warn("backplane subscription dropped by the server, resubscribing", "channel", r.channel, "kind", v.Kind)
				replace()
			}
		}
	}
}

// replace swaps the current PubSub, whose channel is old, for a new one, and returns
// the new one's channel. It returns old and false if the backplane is closed.
func (r *Redis) replace(old <-chan any) (<-chan any, bool) {
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		r.awaitMaster(cc)
	}
	ps := r.open()
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		_ = ps.Close()
		return old, false
	}
	prev := r.ps
	r.ps = ps
	msgs := messages(ps)
	r.mu.Unlock()
	_ = prev.Close()
	for range old {
		// Whatever is left was received before the server dropped us; it is covered
		// by the gap that the new subscription reports.
	}
	return msgs, true
}

// awaitMaster reloads cc's slot map and waits until the node that it names for the
// channel answers as a master, for up to SubscribeTimeout (or Close). ReloadState only
// starts a reload in the background, and a subscription made from a stale map goes back
// to the node that dropped it: after a failover, the old master, now a replica. A
// replica accepts SSUBSCRIBE for its master's slots, so the subscription is confirmed
// and the gap reported, but it gets nothing that the new master publishes until that
// master has learnt of its new replica (0.15-0.3 s after the failover here): messages
// lost after the gap, which no gap covers (TestRedisClusterFailoverResubscribesOnNewMaster).
// A master that does not own the slot (a stale map after a slot migration) answers
// SSUBSCRIBE with MOVED, and the retry in read subscribes again; so does a subscription
// made once no master showed up in time.
func (r *Redis) awaitMaster(cc *redis.ClusterClient) {
	deadline := time.Now().Add(r.subscribeTimeout)
	for {
		cc.ReloadState(r.ctx)
		select {
		case <-r.done:
			return
		case <-time.After(masterPoll):
		}
		if r.namesMaster(cc) {
			return
		}
		if time.Now().After(deadline) {
			r.log.Warn("backplane found no master for the channel, subscribing where the slot map says", "channel", r.channel)
			return
		}
	}
}

// masterPoll is how often awaitMaster looks at the reloaded slot map.
const masterPoll = 10 * time.Millisecond

// namesMaster reports whether the node that cc's slot map names for the channel says
// that it is a master. It asks with HELLO, which reports the role and which every user
// may send (ROLE needs a permission).
func (r *Redis) namesMaster(cc *redis.ClusterClient) bool {
	node, err := cc.MasterForKey(r.ctx, r.channel)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.subscribeTimeout)
	defer cancel()
	v, err := node.Do(ctx, "HELLO").Result()
	if err != nil {
		return false
	}
	switch v := v.(type) {
	case map[any]any: // RESP3
		return v["role"] == "master"
	case []any: // RESP2: field, value, ...
		for i := 0; i+1 < len(v); i += 2 {
			if v[i] == "role" {
				return v[i+1] == "master"
			}
		}
	}
	return false
}

// Close closes the subscription, stops the reader and the dispatcher and waits for
// them. After Close returns, the handler is not called again. It does not close the
// client. Close is idempotent and returns nil. It does not wait for Redis to answer,
// also while a resubscription is in progress (the lock is released before waiting for
// the reader, which may need it to finish a replacement, and Close cancels the
// replacement's calls), with one exception: a subscription whose connection go-redis
// is opening at that moment to a Redis that accepts connections but does not answer
// is released when the handshake times out, after the client's ReadTimeout at most
// (500 ms with the provider's clients, 3 s by go-redis's default).
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed.Swap(true) {
		r.mu.Unlock()
		return nil
	}
	close(r.done)
	r.cancel()
	if in := r.in.Load(); in != nil {
		close(in.stop)
	}
	ps := r.ps // a replacement made after this point sees closed and closes itself
	r.mu.Unlock()
	if ps != nil {
		// Closing the PubSub makes go-redis close the channel the reader ranges over.
		_ = ps.Close()
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
