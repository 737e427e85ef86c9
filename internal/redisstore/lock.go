package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lock of a key, for cluster-wide stampede protection: a Redis string
// holding the holder's token, written with SET NX PX, renewed and released
// only by the holder of the token (the single-instance pattern of
// https://redis.io/docs/latest/develop/use/patterns/distributed-locks/).
// The lock lives in the entry's hash slot (see LockKey), so that reading
// the entry and taking the lock are one script, atomic on a cluster too.

// getOrLockScript returns {locked, value}: it reads KEYS[1] (the entry)
// and tries to take KEYS[2] (its lock) for token ARGV[1] with a lease of
// ARGV[2] milliseconds. locked is 1 when the lock was taken, 0 when
// another token holds it; value is the entry, or nil.
var getOrLockScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
local ok = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
if ok then
  return {1, v}
end
return {0, v}
`)

// extendLockScript renews the lease of KEYS[1] to ARGV[2] milliseconds if
// token ARGV[1] holds it; it returns 1 if so, else 0.
var extendLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// unlockScript deletes KEYS[1] if token ARGV[1] holds it; it returns 1 if
// so, else 0.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// ErrInvalidLease is returned, wrapped, by GetOrLock and ExtendLock for a
// lease shorter than a millisecond, or an empty token.
var ErrInvalidLease = errors.New("redisstore: invalid lock lease or token")

// GetOrLock reads key and, in the same atomic step, tries to take the lock
// named lock (see LockKey) for token with the given lease. It returns the
// value at key (nil if none) and whether the lock was taken (false: another
// token holds it). One round trip.
func (s *Store) GetOrLock(ctx context.Context, key, lock, token string, lease time.Duration) (value []byte, locked bool, err error) {
	if lease < time.Millisecond || token == "" {
		return nil, false, fmt.Errorf("%w: lease %v", ErrInvalidLease, lease)
	}
	res, err := getOrLockScript.Run(ctx, s.client, []string{key, LockKey(key, lock)}, token, lease.Milliseconds()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("redisstore: lock %q: %w", key, err)
	}
	if len(res) != 2 {
		return nil, false, fmt.Errorf("redisstore: lock %q: unexpected reply %v", key, res)
	}
	n, _ := res[0].(int64)
	if v, ok := res[1].(string); ok {
		value = []byte(v)
	}
	return value, n == 1, nil
}

// ExtendLock renews the lease of key's lock if token holds it; held is
// false when it does not (any more). One round trip.
func (s *Store) ExtendLock(ctx context.Context, key, lock, token string, lease time.Duration) (held bool, err error) {
	if lease < time.Millisecond || token == "" {
		return false, fmt.Errorf("%w: lease %v", ErrInvalidLease, lease)
	}
	n, err := extendLockScript.Run(ctx, s.client, []string{LockKey(key, lock)}, token, lease.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstore: extend lock %q: %w", key, err)
	}
	return n == 1, nil
}

// Unlock releases key's lock if token holds it; a lock held by another
// token (the lease ran out and someone took it) is left alone. One round
// trip.
func (s *Store) Unlock(ctx context.Context, key, lock, token string) error {
	if err := unlockScript.Run(ctx, s.client, []string{LockKey(key, lock)}, token).Err(); err != nil {
		return fmt.Errorf("redisstore: unlock %q: %w", key, err)
	}
	return nil
}

// LockKey returns the Redis key of the lock named lock for the entry key:
// lock itself when it hashes to key's cluster slot, else lock with a hash
// tag appended that puts it there ("{<key's hash part>}" when that is a
// valid tag, else the first "{<n>}" that hashes to the slot). The name
// keeps its prefix, so that ACL key patterns on the cache's prefix cover
// it.
func LockKey(key, lock string) string {
	want := Slot(key)
	if Slot(lock) == want {
		return lock
	}
	if h := hashPart(key); !strings.Contains(h, "}") {
		if k := lock + "{" + h + "}"; Slot(k) == want {
			return k
		}
	}
	// A key whose hash part cannot be a tag (it holds a '}'), or a lock
	// name whose own braces get in the way: search for a tag.
	buf := make([]byte, 0, len(lock)+12)
	for n := 0; ; n++ {
		buf = append(append(append(buf[:0], lock...), '{'), strconv.Itoa(n)...)
		buf = append(buf, '}')
		if Slot(string(buf)) == want {
			return string(buf)
		}
	}
}

// hashPart is the part of key that Redis Cluster hashes: the content of
// the first "{...}" if it is not empty, else the whole key.
func hashPart(key string) string {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			return key[s+1 : s+1+e]
		}
	}
	return key
}
