package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/backplane"
)

const (
	defaultSubscribeTimeout = 5 * time.Second
	maxRetryDelay           = 2 * time.Second
)

// FeedKey returns the feed key of the cache whose keys start with
// keyPrefix: keyPrefix + "__strata:feed". It lies inside the cache's key
// range (so an etcd role granted that range covers it) and in the part of
// it reserved for the cache's own state (no cache key can be it).
func FeedKey(keyPrefix string) string { return keyPrefix + "__strata:feed" }

// BackplaneOptions configure [NewBackplane]. Every field says what its zero
// value does.
type BackplaneOptions struct {
	// FeedKey is the etcd key whose puts carry the changes; required. Use
	// [FeedKey] to build it.
	FeedKey string
	// SubscribeTimeout bounds how long Subscribe waits for etcd to tell the
	// revision the feed starts from. Zero means 5 s; negative is an error.
	SubscribeTimeout time.Duration
	// Logger receives what the backplane swallows: undecodable records,
	// re-established watches, gaps. Nil means slog.Default().
	Logger *slog.Logger
}

// Backplane is a backplane.Backplane on etcd Watch. Publish puts a record
// (the binary backplane.Message) on the feed key; receivers watch that key
// from the revision after the last record they applied, and resume from
// there after any disconnect (the etcd client re-establishes the watch, and
// so does the backplane when the watch is cancelled), so every record
// written meanwhile is delivered, in revision order. Only a compaction of
// etcd's history past that revision that removes records of this feed
// loses records; it is reported once to the handler as a gap, and delivery
// resumes from the oldest revision kept. A compaction that removes only
// other keys' history is not a gap: delivery resumes there silently. A
// response from another cluster than the last (its ID changed: etcd was
// rebuilt or restored at the same address) is a gap too.
//
// The handler is called on the watch goroutine: a slow handler delays the
// watch but loses nothing (etcd replays from its history).
type Backplane struct {
	src              *source
	feedKey          string
	subscribeTimeout time.Duration
	log              *slog.Logger

	mu         sync.Mutex
	subscribed bool
	closed     atomic.Bool
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	last       atomic.Int64  // revision of the last record applied (or of the start)
	cluster    atomic.Uint64 // ID of the etcd cluster the watch last answered from (0: none yet)
	firstState atomic.Int32  // 0 pending, 1 started in time, 2 Subscribe gave up, 3 StartSubscribe

	published, received, corrupt, gaps, rewatches atomic.Uint64
}

var _ backplane.Backplane = (*Backplane)(nil)

// NewBackplane returns a backplane on o.FeedKey over client. It never closes
// the client. Nothing is sent to etcd before Subscribe or Publish.
func NewBackplane(client *clientv3.Client, o BackplaneOptions) (*Backplane, error) {
	if client == nil {
		return nil, errors.New("etcd: invalid options: nil client")
	}
	return newBackplane(fixedSource(client, false), o)
}

func newBackplane(src *source, o BackplaneOptions) (*Backplane, error) {
	switch {
	case o.FeedKey == "":
		return nil, errors.New("etcd: invalid options: FeedKey is empty")
	case o.SubscribeTimeout < 0:
		return nil, errors.New("etcd: invalid options: SubscribeTimeout is negative")
	}
	b := &Backplane{src: src, feedKey: o.FeedKey, subscribeTimeout: o.SubscribeTimeout, log: o.Logger}
	if b.subscribeTimeout == 0 {
		b.subscribeTimeout = defaultSubscribeTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

// FeedKey returns the feed key b watches.
func (b *Backplane) FeedKey() string { return b.feedKey }

// Revision returns the revision of the last record applied (the start
// revision before the first one).
func (b *Backplane) Revision() int64 { return b.last.Load() }

// recordOp is the put of m's record on the feed key.
func (b *Backplane) recordOp(m backplane.Message) clientv3.Op {
	rec, _ := m.MarshalBinary()
	return clientv3.OpPut(b.feedKey, string(rec))
}

// Publish puts m's record on the feed key. It returns an error wrapping
// backplane.ErrInvalidMessage for an unknown kind, backplane.ErrClosed
// after Close, and etcd's error wrapped otherwise. A nil error means the
// record is in etcd's history: every subscriber gets it unless a compaction
// removes it first (then it gets a gap).
func (b *Backplane) Publish(ctx context.Context, m backplane.Message) error {
	if b.closed.Load() {
		return backplane.ErrClosed
	}
	if !m.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", backplane.ErrInvalidMessage, m.Kind)
	}
	c, err := b.src.get(ctx)
	if err == nil {
		err = b.src.unreachable(ctx, c)
	}
	if err != nil {
		return wrap("publish", b.feedKey, err)
	}
	op := b.recordOp(m)
	if _, err := c.Do(ctx, op); err != nil {
		return wrap("publish", b.feedKey, err)
	}
	b.published.Add(1)
	return nil
}

// Subscribe starts delivering to h. It returns once etcd has told the
// current revision, from which delivery starts; records put before that are
// not delivered. It returns backplane.ErrSubscribed on a second call and
// backplane.ErrClosed after Close.
//
// If etcd does not answer within SubscribeTimeout, Subscribe returns an
// error wrapping backplane.ErrSubscribeTimeout but delivery stays started:
// when etcd answers, the handler gets HandleGap (what was put meanwhile is
// not delivered). Call Close to give up instead.
//
// WARNING: h must not call Close; Close waits for the goroutine that calls h.
func (b *Backplane) Subscribe(h backplane.Handler) error {
	ready, err := b.start(h, false)
	if err != nil {
		return err
	}
	t := time.NewTimer(b.subscribeTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-t.C:
		if b.firstState.CompareAndSwap(0, 2) {
			return fmt.Errorf("etcd: subscribe %q: %w after %s", b.feedKey, backplane.ErrSubscribeTimeout, b.subscribeTimeout)
		}
		return nil
	}
}

// StartSubscribe is Subscribe without the wait: it starts delivery to h and
// returns at once, without a round trip. ready is closed once etcd has told
// the revision delivery starts from; records put before that are not
// delivered, and that late start is not reported as a gap (the cache
// engine, which calls StartSubscribe so that creating a cache never waits
// for etcd, verifies what it stored meanwhile). Later gaps are reported as
// with Subscribe. It returns backplane.ErrSubscribed on a second call (of
// either method) and backplane.ErrClosed after Close.
func (b *Backplane) StartSubscribe(h backplane.Handler) (ready <-chan struct{}, err error) {
	return b.start(h, true)
}

func (b *Backplane) start(h backplane.Handler, async bool) (chan struct{}, error) {
	if h == nil {
		return nil, errors.New("etcd: nil handler")
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
	if async {
		b.firstState.Store(3)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	ready := make(chan struct{})
	b.wg.Go(func() { b.run(ctx, h, ready) })
	return ready, nil
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
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

// run learns the start revision, then watches until ctx is cancelled.
func (b *Backplane) run(ctx context.Context, h backplane.Handler, ready chan struct{}) {
	delay := 50 * time.Millisecond
	for {
		rev, err := b.currentRevision(ctx)
		if err == nil {
			b.last.Store(rev)
			break
		}
		if ctx.Err() != nil {
			return
		}
		lvl := slog.LevelWarn
		if Classify(err) == KindConfig {
			lvl = slog.LevelError // a wrong password or a missing permission: needs a person
		}
		if delay == maxRetryDelay || lvl == slog.LevelError || delay == 50*time.Millisecond {
			b.log.Log(ctx, lvl, "etcd backplane: cannot read the feed's revision yet", "feed", b.feedKey, "err", err)
		}
		if !sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, maxRetryDelay)
	}
	switch {
	case b.firstState.CompareAndSwap(0, 1), b.firstState.Load() == 3:
		close(ready)
	default: // Subscribe gave up waiting: what was put meanwhile is lost
		close(ready)
		b.gap(h, "backplane subscribed late")
	}
	delay = 50 * time.Millisecond
	for ctx.Err() == nil {
		if b.watch(ctx, h) {
			delay = 50 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		b.rewatches.Add(1)
		if !sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// currentRevision returns etcd's current revision, as seen by a read of the
// feed key.
func (b *Backplane) currentRevision(ctx context.Context) (int64, error) {
	c, err := b.src.get(ctx)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, b.subscribeTimeout)
	defer cancel()
	resp, err := c.Get(rctx, b.feedKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// readFeedModRevision returns the mod revision of the feed key as of
// revision rev (the last put of a record at or before rev), or 0 when the
// key does not exist then. It returns etcd's error, ErrCompacted too when
// rev has been compacted meanwhile.
func (b *Backplane) readFeedModRevision(ctx context.Context, c *clientv3.Client, rev int64) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, b.subscribeTimeout)
	defer cancel()
	resp, err := c.Get(rctx, b.feedKey, clientv3.WithRev(rev), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].ModRevision, nil
}

// watch watches the feed from the revision after the last one applied,
// until the watch ends. It reports whether it delivered or confirmed
// anything (the watch was healthy).
func (b *Backplane) watch(ctx context.Context, h backplane.Handler) (healthy bool) {
	c, err := b.src.get(ctx)
	if err != nil {
		return false
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := b.last.Load() + 1
	for resp := range c.Watch(wctx, b.feedKey, clientv3.WithRev(from), clientv3.WithProgressNotify()) {
		if resp.CompactRevision != 0 {
			// History before CompactRevision is gone. Records are lost only
			// if the feed key was put after the last one applied: its mod
			// revision as of CompactRevision tells (the compaction of other
			// keys' history loses nothing of this feed).
			last := b.last.Load()
			mod, err := b.readFeedModRevision(ctx, c, resp.CompactRevision)
			if err != nil {
				if ctx.Err() == nil {
					b.log.Warn("etcd backplane: history compacted, cannot read the feed's revision yet", "feed", b.feedKey,
						"from", last+1, "compacted", resp.CompactRevision, "err", err)
				}
				return false // watch again: etcd answers compacted again, and this is asked again
			}
			b.last.Store(max(last, resp.CompactRevision-1))
			if mod > last {
				b.gap(h, "etcd compacted the feed's history past the last revision applied")
			}
			return true
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				lvl := slog.LevelWarn
				if Classify(err) == KindConfig {
					lvl = slog.LevelError
				}
				b.log.Log(ctx, lvl, "etcd backplane: watch ended, resuming", "feed", b.feedKey,
					"from", b.last.Load()+1, "err", err, "no_leader", errors.Is(err, rpctypes.ErrNoLeader))
			}
			return healthy
		}
		healthy = true
		if id := resp.Header.ClusterId; id != 0 {
			if prev := b.cluster.Swap(id); prev != 0 && prev != id {
				// Another cluster answers at the same address (rebuilt, or
				// restored from a snapshot): its revisions are not the
				// ones last counts, and records it took below last+1 were
				// never delivered. Whatever came before is to verify.
				b.gap(h, "etcd answers from another cluster (rebuilt or restored): records may be lost")
			}
		}
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			b.received.Add(1)
			m, err := backplane.DecodeMessage(ev.Kv.Value)
			if err != nil {
				b.corrupt.Add(1)
				b.log.Warn("etcd backplane: dropped an undecodable record", "feed", b.feedKey, "revision", ev.Kv.ModRevision, "err", err)
			} else {
				h.HandleMessage(m)
			}
			b.last.Store(ev.Kv.ModRevision)
		}
		if resp.IsProgressNotify() && resp.Header.Revision > b.last.Load() {
			// Everything up to this revision has been sent.
			b.last.Store(resp.Header.Revision)
		}
	}
	return healthy
}

// gap reports lost records to h.
func (b *Backplane) gap(h backplane.Handler, why string) {
	b.gaps.Add(1)
	b.log.Warn("etcd backplane: gap, "+why, "feed", b.feedKey)
	h.HandleGap()
}

// Close stops the watch and waits for the goroutine that calls the
// handler. It does not close the client. Close is idempotent and returns
// nil.
func (b *Backplane) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	return nil
}

// Stats returns the backplane's counters. Resubscribes counts watches
// re-established by the backplane (the etcd client also resumes a watch by
// itself, which is not counted); Dropped is always zero.
func (b *Backplane) Stats() backplane.Stats {
	return backplane.Stats{
		Published: b.published.Load(), Received: b.received.Load(), Corrupt: b.corrupt.Load(),
		Gaps: b.gaps.Load(), Resubscribes: b.rewatches.Load(),
	}
}
