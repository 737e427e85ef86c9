// Package etcd puts Strata caches on etcd: a distributed tier (hybrid.L2) and
// a backplane on etcd Watch that loses no change across disconnects.
//
// It is a module of its own (github.com/strata-cache/strata/etcd), so that an
// application that does not use etcd never gets gRPC in its go.sum.
//
// # Distributed tier
//
// [L2] stores each entry's envelope as the bytes of one etcd key (the cache's
// key prefix followed by the cache key). A read is one Get. A write is one
// transaction that keeps a newer entry: the envelope's header (magic, version,
// big-endian timestamp) is compared as bytes by the transaction itself, and a
// stored value that only looks newer is decoded and, if corrupt, replaced by a
// second transaction conditioned on its mod revision. Lifetimes go through
// leases shared per time bucket ([Leases]), never one lease per key. Values
// larger than etcd's request limit are refused before sending, with an error
// wrapping hybrid.ErrValueTooLarge.
//
// # Backplane
//
// [Backplane] watches one feed key per cache ([FeedKey]). Every change is a put
// of a small record (a backplane.Message) on that key, written in the same
// transaction as the data when the write goes through [L2] (see hybrid.FeedL2),
// or by Publish otherwise. The receiver remembers the revision of the last
// record it applied and, after any disconnect, resumes watching from the next
// one, so nothing written meanwhile is lost. Only a compaction of the history
// past that revision loses records, or another cluster answering at the same
// address (a restore, a rebuild, seen by its cluster ID): those, and only
// those, are reported as a gap (backplane.Handler.HandleGap).
//
// # Provider
//
// [Settings] and [ClientSettings] return the strata.TierSettings that put a
// provider's caches (Settings.Tier) or one cache (CacheSettings.Tier) on etcd.
// See docs/etcd.md.
package etcd
