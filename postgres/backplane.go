package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-cache/strata/backplane"
)

const (
	// maxPayload is the largest NOTIFY payload PostgreSQL accepts (8000
	// bytes, less one): a message whose encoding is larger travels
	// without its value (receivers read the table instead).
	maxPayload = 7999
	// subscribeTimeout bounds Subscribe's wait for the first LISTEN.
	subscribeTimeout = 5 * time.Second
	// idlePing is how long the listening connection may stay silent before
	// it is checked with a round trip; pingTimeout bounds that check.
	idlePing    = 30 * time.Second
	pingTimeout = 5 * time.Second
	// The pause between attempts to listen again after a failure, doubling.
	firstRetry = 100 * time.Millisecond
	maxRetry   = 2 * time.Second
)

// Backplane is a backplane.Backplane on PostgreSQL's LISTEN/NOTIFY: one
// notification channel per cache (ChannelName), a listening connection of
// its own, re-established after any failure. Delivery is at-most-once: a
// notification sent while the connection is down is lost, and every
// re-established LISTEN is reported to the handler as a gap.
type Backplane struct {
	t       *Tier
	channel string
	log     *slog.Logger

	mu         sync.Mutex // guards subscribed and the closed transition
	subscribed bool
	closed     atomic.Bool
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	// state of the first LISTEN: 0 pending, 1 confirmed in time, 2
	// Subscribe gave up (the late confirmation is then a gap).
	firstState atomic.Int32

	published, received, corrupt, gaps, resubscribes atomic.Uint64
}

var _ backplane.Backplane = (*Backplane)(nil)

func newBackplane(t *Tier, channel string, log *slog.Logger) *Backplane {
	b := &Backplane{t: t, channel: channel, log: log}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// Channel returns the notification channel of b.
func (b *Backplane) Channel() string { return b.channel }

// Publish sends m with pg_notify. It returns the driver's error wrapped, an
// error wrapping backplane.ErrInvalidMessage for an unknown kind, and
// backplane.ErrClosed after Close.
func (b *Backplane) Publish(ctx context.Context, m backplane.Message) error {
	if b.closed.Load() {
		return backplane.ErrClosed
	}
	if !m.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", backplane.ErrInvalidMessage, m.Kind)
	}
	if _, err := b.t.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, b.channel, encodePayload(m)); err != nil {
		return wrap("publish", m.Key, err)
	}
	b.published.Add(1)
	return nil
}

// Subscribe starts delivering to h and waits until the first LISTEN is in
// place. If that takes longer than 5 s (PostgreSQL down, for example), it
// returns an error wrapping backplane.ErrSubscribeTimeout but delivery stays
// started: the handler gets HandleGap when the LISTEN finally succeeds.
func (b *Backplane) Subscribe(h backplane.Handler) error {
	ready, err := b.StartSubscribe(h)
	if err != nil {
		return err
	}
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-b.ctx.Done():
		return backplane.ErrClosed
	case <-t.C:
		if b.firstState.CompareAndSwap(0, 2) {
			return fmt.Errorf("postgres: subscribe %s: %w after %s", b.channel, backplane.ErrSubscribeTimeout, subscribeTimeout)
		}
		return nil
	}
}

// StartSubscribe is Subscribe without the wait: ready is closed once the
// first LISTEN is in place; that first one is not a gap.
func (b *Backplane) StartSubscribe(h backplane.Handler) (ready <-chan struct{}, err error) {
	if h == nil {
		return nil, errors.New("postgres: nil handler")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, backplane.ErrClosed
	}
	if b.subscribed {
		return nil, backplane.ErrSubscribed
	}
	b.subscribed = true
	rc := make(chan struct{})
	b.wg.Go(func() { b.run(h, rc) })
	return rc, nil
}

// run listens until Close: connect, LISTEN, deliver, and after any failure
// start again (a gap).
func (b *Backplane) run(h backplane.Handler, ready chan struct{}) {
	first := true
	delay := firstRetry
	failing := false
	for b.ctx.Err() == nil {
		conn, err := b.listen()
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			if !failing {
				b.log.Warn("backplane cannot listen, retrying", "channel", b.channel, "err", err)
				failing = true
			}
			if !sleep(b.ctx, delay) {
				return
			}
			delay = min(2*delay, maxRetry)
			continue
		}
		failing, delay = false, firstRetry
		switch {
		case first && b.firstState.CompareAndSwap(0, 1):
			close(ready)
		case first:
			b.gap(h, "listening late")
		default:
			b.resubscribes.Add(1)
			b.gap(h, "listening again after a disconnect")
		}
		first = false
		err = b.deliver(conn, h)
		_ = conn.Close(context.Background())
		if b.ctx.Err() != nil {
			return
		}
		b.log.Warn("backplane connection lost, listening again", "channel", b.channel, "err", err)
	}
}

// listen opens the listening connection and issues LISTEN.
func (b *Backplane) listen() (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, b.t.connCf.Copy())
	if err != nil {
		return nil, wrap("listen", "", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, wrap("listen", "", err)
	}
	return conn, nil
}

// deliver hands the notifications of conn to h until the connection fails
// (or a check after a silence finds it dead) or b is closed.
func (b *Backplane) deliver(conn *pgx.Conn, h backplane.Handler) error {
	for {
		ctx, cancel := context.WithTimeout(b.ctx, idlePing)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		if err != nil {
			if conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			// Nothing for a while: is the connection still there?
			pctx, pcancel := context.WithTimeout(b.ctx, pingTimeout)
			err = conn.Ping(pctx)
			pcancel()
			if err != nil {
				return err
			}
			continue
		}
		b.received.Add(1)
		m, err := decodePayload(n.Payload)
		if err != nil {
			b.corrupt.Add(1)
			b.log.Warn("backplane dropped an undecodable message", "channel", b.channel, "err", err)
			continue
		}
		h.HandleMessage(m)
	}
}

func (b *Backplane) gap(h backplane.Handler, why string) {
	b.gaps.Add(1)
	b.log.Info("backplane gap: "+why, "channel", b.channel)
	h.HandleGap()
}

// Close stops listening and waits for the goroutine that calls the
// handler. It is idempotent and returns nil.
func (b *Backplane) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// Stats returns the backplane's counters.
func (b *Backplane) Stats() backplane.Stats {
	return backplane.Stats{Published: b.published.Load(), Received: b.received.Load(), Corrupt: b.corrupt.Load(),
		Gaps: b.gaps.Load(), Resubscribes: b.resubscribes.Load()}
}

// encodePayload returns m as a NOTIFY payload: its binary encoding in
// base64, without the value when that would exceed PostgreSQL's limit.
func encodePayload(m backplane.Message) string {
	bin, _ := m.MarshalBinary()
	s := base64.StdEncoding.EncodeToString(bin)
	if len(s) > maxPayload && m.Value != "" {
		m.Value = ""
		bin, _ = m.MarshalBinary()
		s = base64.StdEncoding.EncodeToString(bin)
	}
	return s
}

// decodePayload is the inverse of encodePayload.
func decodePayload(s string) (backplane.Message, error) {
	bin, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return backplane.Message{}, fmt.Errorf("%w: not base64", backplane.ErrCorrupt)
	}
	return backplane.DecodeMessage(bin)
}

// sleep waits d or until ctx ends; it reports false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
