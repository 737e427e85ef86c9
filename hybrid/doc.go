// Package hybrid is Strata's cache engine: a named cache with a memory tier
// (ristretto v2), an optional distributed tier (L2, Redis through
// NewRedisL2) and an optional backplane that keeps the memory tiers of many
// processes coherent. Package strata builds named caches of this kind from
// shared settings; New builds one on its own.
//
// Values are read and written with generic functions, because Go methods
// take no type parameters:
//
//	c, _ := hybrid.New(hybrid.Options{Name: "users"})
//	defer c.Close()
//	u, err := hybrid.GetOrSet(ctx, c, "user:42", func(ctx context.Context, fc *hybrid.FactoryContext[User]) (User, error) {
//		return db.LoadUser(ctx, 42)
//	})
//
// What the engine does, in the order of a GetOrSet:
//
//   - A fresh hit in memory returns at once: a map lookup, an atomic load
//     of the cache's hit clock (Options.HitClockResolution; the system
//     clock for an entry near its expiry), no allocation and no lock of
//     ours.
//   - Otherwise one load per key per process runs (stampede protection);
//     every caller waits on its own context, and the load goes on for the
//     others if one leaves. The load reads memory again, then L2, then calls
//     the factory, stores the result in both tiers and tells the other
//     processes through the backplane.
//   - Fail-safe (EntryOptions.FailSafe) serves the newest stale value when
//     the factory fails or times out, and keeps the source from being
//     called again for FailSafeThrottleDuration.
//   - FactorySoftTimeout and FactoryHardTimeout bound the wait; a timed-out
//     factory may complete in the background and still update the cache.
//   - EagerRefreshThreshold refreshes a hot entry before it expires;
//     JitterMaxDuration spreads expiries.
//   - Every entry carries its creation timestamp: in every conflict (memory
//     against L2, a backplane message against memory, a queued write
//     against a newer one) the newest wins.
//   - RemoveByTag and Clear invalidate by timestamp, without scanning.
//   - GetOrSetMany, TryGetMany, SetMany and Cache.RemoveMany do the same
//     for many keys in one call: one memory pass, one L2 read (one MGET),
//     one BatchFactory call for the keys no tier answered, one pipelined
//     write, with stampede protection and fail-safe per key.
//
// Observability: log/slog for what the cache swallows, Cache.Stats for
// counters (hits and misses per tier, factory calls, fail-safe...),
// Options.Events for callbacks on hits, misses, factory calls, fail-safe,
// timeouts, L2 errors, the circuit breaker, the backplane and the
// auto-recovery queue, each with the caller's context, and Options.Tracer
// for spans of the operations that do more than a memory hit; package
// otelhybrid turns those into OpenTelemetry metrics and traces (it is the
// module github.com/strata-cache/strata/hybrid/otelhybrid, apart, so that
// this module requires no OpenTelemetry).
//
// Errors are sentinels matched with errors.Is: ErrInvalidKey, ErrClosed,
// ErrFactoryTimeout, ErrTypeMismatch, ErrNilFactory, ErrInvalidOptions,
// ErrFactoryPanic, ErrValueTooLarge, ErrNoStaleValue, ErrTooManyKeys,
// ErrNotFound, ErrLoadCycle, and, for a distributed tier other than Redis and for
// Cache.Ping, ErrL2Unavailable and ErrL2Config.
//
// The documentation pages in the docs directory of the repository,
// https://github.com/strata-cache/strata/tree/main/docs, describe each
// feature in depth; start with the guide (guide.md), then getorset.md,
// failsafe.md, timeouts.md, eager-refresh.md, jitter.md,
// adaptive-caching.md, l2.md, redis.md, etcd.md, postgres.md,
// serialization.md, backplane.md, tags.md, clear.md, batch.md, settings.md,
// errors.md, observability.md, server.md (the HTTP server, cmd/strata-server),
// design.md and benchmarks.md (for example
// https://github.com/strata-cache/strata/blob/main/docs/getorset.md).
package hybrid
