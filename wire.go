package strata

import (
	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
)

// wire connects a cache's options to its Redis client: distributed tier
// and backplane, unless the settings turn them off. A nil client means
// memory-only.
func (p *Provider) wire(o *hybrid.Options, cs *CacheSettings, client redis.UniversalClient) error {
	o.KeyPrefix = cs.KeyPrefix
	if client == nil || cs.DisableL2 {
		return nil
	}
	o.L2 = hybrid.NewRedisL2(client)
	return nil
}
