package hybrid

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/envelope"
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
func (c *Cache) Ping(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.bp != nil {
		m := backplane.Message{Kind: backplane.KindSet, Cache: c.name, Key: pingKey, Source: c.id, Timestamp: stamp()}
		if err := c.bp.Publish(ctx, m); err != nil {
			return fmt.Errorf("hybrid: ping cache %q: backplane: %w", c.name, err)
		}
	}
	if c.l2 == nil {
		return nil
	}
	key := c.prefix + "__strata_ping"
	now := stamp()
	env := envelope.Envelope{Timestamp: now, FreshUntil: now}
	if _, err := c.l2.Set(ctx, key, env.Append(nil), 10*time.Second); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, err)
	}
	if _, err := c.l2.Get(ctx, key); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, err)
	}
	if err := c.l2.Delete(ctx, key); err != nil {
		return fmt.Errorf("hybrid: ping cache %q: %w", c.name, err)
	}
	return nil
}
