// Package strata is a provider of named, isolated hybrid caches for Go
// services: each cache has a memory tier (ristretto v2), an optional Redis
// tier (go-redis v9, shared with the other caches or on a client of its
// own) and a Redis pub/sub backplane that keeps the memory tiers of many
// replicas coherent. On top: stampede protection, fail-safe, factory and
// Redis timeouts, eager refresh, jitter, tags, Clear, adaptive caching and
// conditional refresh, and event hooks for metrics. It is modelled on
// FusionCache (.NET).
//
// # The provider
//
// A service creates one [Provider] with [NewProvider] and registers a cache
// per kind of data. Without Redis every cache is memory-only; with
// [Settings.Redis] every cache gets a distributed tier and a backplane on
// the shared client, under a key prefix and a channel of its own:
//
//	p, err := strata.NewProvider(strata.Settings{
//		Redis: &strata.RedisSettings{URL: "redis://127.0.0.1:6379"}, // nil: memory-only
//	})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	users, err := p.Register("users") // ProductionDefaults(): 30m, fail-safe, eager refresh, jitter
//	if err != nil {
//		return err
//	}
//	u, err := hybrid.GetOrSet(ctx, users, "user:42", func(ctx context.Context, fc *hybrid.FactoryContext[User]) (User, error) {
//		return db.LoadUser(ctx, 42) // one call per key per process, however many callers wait
//	})
//
// Every cache starts from a copy of the provider's defaults
// ([ProductionDefaults] unless [Settings.Defaults] says otherwise); each
// configure func passed to [Provider.Register] changes that copy, so an
// override keeps the other fields and an explicit false or 0 wins. A cache
// with its own [CacheSettings.Redis] is isolated on a client of its own;
// [CacheSettings.DisableL2] makes it memory-only. Invalid settings are
// errors matching [ErrInvalidSettings], naming the field; nothing is
// created.
//
// The caches are [*hybrid.Cache] values: package
// github.com/strata-cache/strata/hybrid has the operations (GetOrSet,
// TryGet, Set, Remove, Expire, RemoveByTag, Clear), their options and their
// errors. Package github.com/strata-cache/strata/backplane has the
// backplane, and the separate module
// github.com/strata-cache/strata/hybrid/otelhybrid the OpenTelemetry
// metrics.
//
// # Examples
//
// The examples of this package: a memory-only provider (the package
// example), [NewProvider] with Redis and with Events, and
// [Provider.Register] with overrides. Package hybrid has examples of each
// cache operation; the program examples/quickstart in the repository runs
// named caches, stampede protection and fail-safe without Redis.
//
// # Documentation
//
// The guide, from a memory-only cache to three replicas over Redis:
// https://github.com/strata-cache/strata/blob/main/docs/guide.md. One page
// per feature in https://github.com/strata-cache/strata/tree/main/docs;
// for this package: settings
// (https://github.com/strata-cache/strata/blob/main/docs/settings.md),
// Redis topologies and ACLs
// (https://github.com/strata-cache/strata/blob/main/docs/redis.md), errors
// (https://github.com/strata-cache/strata/blob/main/docs/errors.md).
package strata
