// Package backplane carries change notifications between the memory tiers of the
// replicas of a cache, so that each replica drops or refreshes its copy of a key that
// another one changed.
//
// A [Backplane] publishes [Message]s and delivers what it receives to one [Handler].
// Two implementations are provided: [Redis], over Redis pub/sub (classic or sharded),
// and [MemoryHub], which connects backplanes inside one process (several caches or
// simulated instances, and engine tests).
//
// # Messages
//
// A message says that a key of a named cache was set, removed or expired, or that the
// cache was cleared, by which instance (Source) and when (Timestamp, Unix nanoseconds).
// A set may carry the entry it wrote (Message.Value; the hybrid engine sends entries up
// to hybrid.Options.BackplaneValueMaxSize), which a receiver holding an older copy
// installs instead of re-reading the distributed tier; without one, receivers re-read
// the distributed tier when they need the value. Receivers compare timestamps so that
// the newest change wins.
//
// On the wire a message is a small versioned binary record (integers big-endian):
//
//	magic     2 bytes  0xC1 0x42
//	version   1 byte   1
//	kind      1 byte   1 set, 2 remove, 3 expire, 4 clear
//	timestamp 8 bytes  int64 Unix nanoseconds
//	cache     uvarint length, then the bytes
//	key       uvarint length, then the bytes
//	source    uvarint length, then the bytes
//	value     optional (a set carrying its entry): uvarint length >= 1, then the bytes
//
// Strings are length-prefixed bytes, so any key round-trips, including invalid UTF-8
// (JSON would replace it). Lengths are minimal uvarints, an empty value is left out
// and nothing may follow the value (or the source), so each message has one encoding. [DecodeMessage] rejects anything else
// with [ErrCorrupt] (or [ErrVersion] for another format version) and never panics; a
// format change increments the version byte.
//
// # Channels
//
// Each cache has its own channel, named by [ChannelName] from the cache's key prefix: a
// strata.Provider names the channel ChannelName("", KeyPrefix), so the cache "users"
// with its default key prefix "users:" publishes on "strata:{users:}:bp" (mind the
// colon inside the braces when you write a Redis ACL: &strata:{users:}:bp). The braces are a Redis Cluster hash tag, so all of a cache's traffic
// maps to one slot, which sharded pub/sub (SPUBLISH/SSUBSCRIBE) requires. '{', '}' and
// '%' in names are percent-encoded so that no cache name can break the tag or collide
// with another. [Redis] uses sharded pub/sub when given a *redis.ClusterClient (see
// [RedisOptions]): a message then travels only inside the shard that owns the slot,
// while classic PUBLISH on a cluster is broadcast to every node.
//
// # Delivery: at most once, and gaps
//
// Pub/sub is at-most-once: a message published while a subscriber is disconnected, or
// while its receive queue is full, is lost for that subscriber, and nobody is told. A
// backplane does not retry or replay; the sender's Publish returns an error only when
// the message could not be handed to Redis at all.
//
// What a backplane does guarantee is that a subscriber learns when it may have missed
// something: [Handler.HandleGap] is called after the subscription was re-established
// following a disconnect (go-redis reconnects by itself; every resubscription is seen
// through the PubSub's ChannelWithSubscriptions), after the receive queue overflowed
// (a slow handler), and after a subscription that was confirmed only after Subscribe
// had given up waiting. The first subscription is not a gap. Gaps are coalesced: many
// in a row before the handler runs give one call. A cache answers a gap by treating
// everything its memory tier held before it as "verify before use".
//
// The handler is called from a single goroutine, never under the backplane's locks,
// and never after Close has returned. A sender receives its own messages; receivers
// ignore the ones whose Source is their own instance id.
package backplane
