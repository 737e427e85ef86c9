// Package bench compares Strata with its peers: raw ristretto v2 (the floor),
// otter v2, sturdyc, eko/gocache (loadable and chain), go-redis/cache and raw
// go-redis (GET, and GET plus msgpack decode).
//
// It is a module of its own so that the peers never become dependencies of
// the library. Each peer sits behind the contender interface, used the way its
// documentation recommends; the benchmarks live in the _test.go files and
// run.sh runs them and summarises them with benchstat.
//
// Every contender gets the same value type, the same pre-generated keys, the
// same index streams (built outside the timer with a fixed seed), a capacity
// of twice the key space (so hit benchmarks never evict), metrics off, and,
// when it talks to Redis, a client built by newRedisClient.
package bench
