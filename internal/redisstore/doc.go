// Package redisstore is Strata's L2 store: raw get, newest-wins set and
// delete of envelopes (see internal/envelope) on a go-redis v9
// [redis.UniversalClient], plus [Classify], which sorts the errors it returns
// into the kinds the engine reacts to (circuit breaker, retry queue, logs).
//
// Every operation is one round trip: GET, DEL, or one EVALSHA of a small Lua
// script for Set (go-redis falls back to EVAL when the server does not have
// the script cached yet). The script touches only its one key, so it runs
// unchanged on Redis Cluster.
//
// The store does not own the client: it never closes it, and it works with a
// standalone, failover (Sentinel) or cluster client alike.
package redisstore
