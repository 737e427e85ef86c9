package strata

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// wire connects a cache's options to its Redis client: distributed tier
// and backplane, unless the settings turn them off. A nil client means
// memory-only. The backplane's channel is named after the key prefix, and
// the database when it is not 0 (pub/sub channels are server-wide, keys
// are per database), so that caches sharing a Redis never hear each other.
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
			Channel: backplane.ChannelName(channelPrefix(client), cs.KeyPrefix),
			Logger:  p.logger.With("cache", o.Name),
		})
		if err != nil {
			return fmt.Errorf("backplane: %w", err)
		}
		o.Backplane = bp
	}
	return nil
}

// channelPrefix is the backplane channels' prefix for client: the default,
// "strata", for database 0 (and a cluster, which has no other), else
// "strata:db<N>": two caches of the same name in two databases of one
// server keep their keys apart, and must keep their messages apart too.
func channelPrefix(client redis.UniversalClient) string {
	db := 0
	switch c := client.(type) {
	case *redis.Client: // standalone or Sentinel (failover)
		db = c.Options().DB
	case *redis.Ring:
		db = c.Options().DB
	}
	if db == 0 {
		return backplane.DefaultChannelPrefix
	}
	return fmt.Sprintf("%s:db%d", backplane.DefaultChannelPrefix, db)
}
