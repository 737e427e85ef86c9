package hybrid

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redisstore"
)

// pingKey is the key of Ping's backplane probe; receivers ignore it.
const pingKey = reservedPrefix + "ping"

// Ping checks that the distributed tier accepts this cache's reads, writes
// and deletes under its key prefix, with a probe key "<prefix>__strata_ping",
// and that the backplane accepts a publish on the cache's channel (a probe
// message that receivers ignore). Use it at startup: the cache itself
// swallows these errors (they are logged and counted), so a missing ACL
// permission (a key pattern, a channel, a command) would otherwise only
// show in the logs. A memory-only cache without a backplane returns nil.
// ErrClosed after Close, and ctx.Err() (unwrapped) for a ctx already done.
//
// An error wraps ErrL2Config when waiting will not fix it (authentication,
// permissions, a cluster client on a standalone server) and
// ErrL2Unavailable when the tier cannot be reached or timed out, whichever
// the store (Redis, etcd, PostgreSQL), so that one errors.Is tells them
// apart.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.usable(ctx); err != nil {
		return err
	}
	if c.bp != nil {
		m := backplane.Message{Kind: backplane.KindSet, Cache: c.name, Key: pingKey, Source: c.id, Timestamp: stamp()}
		if err := c.bp.Publish(ctx, m); err != nil {
			return fmt.Errorf("hybrid: ping cache %q: backplane: %w", c.name, classified(err))
		}
	}
	if c.l2 == nil {
		return nil
	}
	key := c.prefix + "__strata_ping"
	now := stamp()
	env := envelope.Envelope{Timestamp: now, FreshUntil: now}
	if _, err := c.l2.Set(ctx, key, env.Append(nil), 10*time.Second); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, classified(err))
	}
	if _, err := c.l2.Get(ctx, key); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, classified(err))
	}
	if err := c.l2.Delete(ctx, key); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, classified(err))
	}
	return nil
}

// classified wraps err with ErrL2Config or ErrL2Unavailable by its class,
// unless it wraps one already (the etcd and PostgreSQL tiers' errors do).
func classified(err error) error {
	switch classifyL2(err) {
	case redisstore.KindConfig:
		if !errors.Is(err, ErrL2Config) {
			return fmt.Errorf("%w: %w", ErrL2Config, err)
		}
	case redisstore.KindTransient:
		if !errors.Is(err, ErrL2Unavailable) {
			return fmt.Errorf("%w: %w", ErrL2Unavailable, err)
		}
	}
	return err
}
