package backplane

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/strata-cache/strata/internal/backplanetest"
)

// memoryQueueSize is the receive queue of each subscribed memory backplane. It is large
// because in-process delivery is fast and engine tests want no spurious gaps.
const memoryQueueSize = 1 << 14

// MemoryHub connects in-process backplanes: every [Backplane] obtained from the same hub
// with the same channel name receives the messages the others publish. It serves one
// process that runs several caches or several simulated instances, and engine tests.
// The zero value is not usable; call [NewMemoryHub].
//
// Publish never waits for a receiver: each subscriber has its own bounded queue
// (16384 messages) and dispatcher goroutine, and a full queue drops the message and
// reports a gap, like [Redis].
type MemoryHub struct {
	mu       sync.Mutex
	channels map[string]*memoryChannel
}

type memoryChannel struct {
	mu   sync.Mutex                         // serializes writers of subs
	subs atomic.Pointer[[]*MemoryBackplane] // copy-on-write, read without a lock by Publish
}

// NewMemoryHub returns an empty hub.
func NewMemoryHub() *MemoryHub {
	return &MemoryHub{channels: make(map[string]*memoryChannel)}
}

func (h *MemoryHub) channel(name string) *memoryChannel {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.channels[name]
	if !ok {
		c = &memoryChannel{}
		c.subs.Store(new([]*MemoryBackplane))
		h.channels[name] = c
	}
	return c
}

// Backplane returns a new backplane on the named channel of the hub. It receives the
// messages of every subscribed backplane on the same channel, its own included
// (receivers filter by [Message.Source]). Channels are isolated from each other.
func (h *MemoryHub) Backplane(channel string) *MemoryBackplane {
	return &MemoryBackplane{ch: h.channel(channel)}
}

func init() {
	backplanetest.RegisterSimulateGap(func(hub any, channel string) { hub.(*MemoryHub).simulateGap(channel) })
}

// simulateGap makes every subscribed backplane on the channel report a gap to its
// handler, as if its subscription had been re-established after a disconnect. Tests
// reach it through internal/backplanetest.SimulateGap.
func (h *MemoryHub) simulateGap(channel string) {
	for _, b := range *h.channel(channel).subs.Load() {
		if b.in.Load().flagGap() {
			b.resubscribes.Add(1)
		}
	}
}

// MemoryBackplane is the [Backplane] a [MemoryHub] hands out.
type MemoryBackplane struct {
	ch *memoryChannel

	mu     sync.Mutex            // serializes Subscribe and Close
	in     atomic.Pointer[inbox] // nil until Subscribe
	closed atomic.Bool
	wg     sync.WaitGroup

	published    atomic.Uint64
	resubscribes atomic.Uint64
}

var _ Backplane = (*MemoryBackplane)(nil)

// Publish hands m to the queue of every subscribed backplane on the channel, the sender
// included, without waiting for any handler. It returns ctx's error if ctx is done,
// an error wrapping [ErrInvalidMessage] for an unknown kind, and [ErrClosed] after
// Close.
func (b *MemoryBackplane) Publish(ctx context.Context, m Message) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(m); err != nil {
		return err
	}
	for _, s := range *b.ch.subs.Load() {
		in := s.in.Load()
		in.received.Add(1)
		in.push(m)
	}
	b.published.Add(1)
	return nil
}

// Subscribe starts delivering the channel's messages to h, from a goroutine of its own.
// Messages published before Subscribe are not delivered. It returns [ErrSubscribed] on
// a second call and [ErrClosed] after Close.
func (b *MemoryBackplane) Subscribe(h Handler) error {
	if h == nil {
		return errNilHandler
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.in.Load() != nil {
		return ErrSubscribed
	}
	in := newInbox(memoryQueueSize)
	b.in.Store(in)
	b.wg.Go(func() { in.run(h) })
	b.ch.mu.Lock()
	subs := append(slices.Clone(*b.ch.subs.Load()), b)
	b.ch.subs.Store(&subs)
	b.ch.mu.Unlock()
	return nil
}

// Close unsubscribes b, stops its dispatcher and waits for it. It is idempotent and
// always returns nil.
func (b *MemoryBackplane) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	in := b.in.Load()
	if in == nil {
		return nil
	}
	b.ch.mu.Lock()
	subs := slices.DeleteFunc(slices.Clone(*b.ch.subs.Load()), func(s *MemoryBackplane) bool { return s == b })
	b.ch.subs.Store(&subs)
	b.ch.mu.Unlock()
	close(in.stop)
	b.wg.Wait()
	return nil
}

// Stats returns the backplane's counters.
func (b *MemoryBackplane) Stats() Stats {
	in := b.in.Load()
	s := Stats{Published: b.published.Load(), Resubscribes: b.resubscribes.Load()}
	if in != nil {
		s.Received = in.received.Load()
		s.Dropped = in.dropped.Load()
		s.Corrupt = in.corrupt.Load()
		s.Gaps = in.gaps.Load()
	}
	return s
}
