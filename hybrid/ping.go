package hybrid

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-cache/strata/internal/envelope"
)

// Ping checks that the distributed tier accepts this cache's reads, writes
// and deletes under its key prefix, with a probe key "<prefix>__strata_ping".
// Use it at startup: the cache itself swallows distributed-tier errors
// (they are logged and counted), so a missing ACL permission would otherwise
// only show in the logs. A memory-only cache returns nil.
func (c *Cache) Ping(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
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
