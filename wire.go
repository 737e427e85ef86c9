package strata

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// wire connects a cache's options to its Redis client: distributed tier
// and backplane, unless the settings turn them off. A nil client means
// memory-only. The backplane's channel is named after the key prefix, so
// that caches sharing a Redis never hear each other.
func (p *Provider) wire(o *hybrid.Options, cs *CacheSettings, client redis.UniversalClient) error {
	o.KeyPrefix = cs.KeyPrefix
	if client == nil {
		return nil
	}
	if !cs.DisableL2 {
		o.L2 = hybrid.NewRedisL2(client)
	}
	if !cs.DisableBackplane {
		bp, err := backplane.NewRedis(client, backplane.RedisOptions{
			Channel: backplane.ChannelName("", cs.KeyPrefix),
			Logger:  p.logger.With("cache", o.Name),
		})
		if err != nil {
			return fmt.Errorf("backplane: %w", err)
		}
		o.Backplane = bp
	}
	return nil
}
