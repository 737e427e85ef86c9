package backplane

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// BatchPublisher is implemented by backplanes that can send many messages in
// one round trip. Each message stays an ordinary [Message] on the wire, so a
// receiver applies it exactly as if it had been published alone; only the
// sending is batched. The cache uses it for the notifications of a batch
// operation when its backplane implements it, and publishes one message at
// a time otherwise.
type BatchPublisher interface {
	// PublishBatch sends ms, in order. errs is nil when every message was
	// handed to the transport; otherwise it is aligned with ms and holds
	// the error of each message that was not (the others were sent).
	PublishBatch(ctx context.Context, ms []Message) (errs []error)
}

var (
	_ BatchPublisher = (*Redis)(nil)
	_ BatchPublisher = (*MemoryBackplane)(nil)
)

// PublishBatch sends ms as one pipeline of PUBLISH (or SPUBLISH) commands:
// one round trip. Every message goes to the backplane's one channel, so on a
// cluster with sharded pub/sub the whole pipeline goes to the one node that
// owns the channel's slot. An invalid message gets an error wrapping
// [ErrInvalidMessage] and is not sent; after Close every message gets
// [ErrClosed].
func (r *Redis) PublishBatch(ctx context.Context, ms []Message) (errs []error) {
	if len(ms) == 0 {
		return nil
	}
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(ms))
		}
		errs[i] = err
	}
	if r.closed.Load() {
		for i := range ms {
			fail(i, ErrClosed)
		}
		return errs
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(ms))
	for i, m := range ms {
		if err := validate(m); err != nil {
			fail(i, err)
			continue
		}
		payload := m.AppendBinary(make([]byte, 0, m.encodedLen()))
		if r.sharded {
			cmds[i] = pipe.SPublish(ctx, r.channel, payload)
		} else {
			cmds[i] = pipe.Publish(ctx, r.channel, payload)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // errors are per command, read below
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		if err := cmd.Err(); err != nil {
			fail(i, fmt.Errorf("backplane: publish %s: %w", ms[i].Kind, err))
			continue
		}
		r.published.Add(1)
	}
	return errs
}

// PublishBatch publishes each message of ms in order, as Publish does.
func (b *MemoryBackplane) PublishBatch(ctx context.Context, ms []Message) (errs []error) {
	for i, m := range ms {
		if err := b.Publish(ctx, m); err != nil {
			if errs == nil {
				errs = make([]error, len(ms))
			}
			errs[i] = err
		}
	}
	return errs
}
