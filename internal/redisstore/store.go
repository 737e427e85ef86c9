package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/envelope"
)

const (
	// HardMaxValueSize is the largest value Set ever sends: Redis's default
	// proto-max-bulk-len (512 MiB). Redis drops the connection on a larger
	// bulk string, so the store refuses such a value before sending it.
	HardMaxValueSize = 512 << 20
	// DefaultMaxValueSize is the largest value Set accepts unless
	// WithMaxValueSize says otherwise: HardMaxValueSize. The store only
	// guards the protocol; the size limit a user sets is the engine's
	// (hybrid.Options.MaxValueSize), checked before a value reaches the
	// store, so that there is one limit and one error.
	DefaultMaxValueSize = HardMaxValueSize
)

var (
	// ErrValueTooLarge is returned, wrapped with the sizes, by Set for a
	// value longer than the store's maximum value size. It is the very
	// sentinel hybrid.ErrValueTooLarge, so one errors.Is matches both.
	ErrValueTooLarge = errors.New("hybrid: value too large")
	// ErrNotEnvelope is returned, wrapped, by Set for a value that does not
	// start with a valid envelope header (see envelope.Timestamp): without
	// a timestamp the store cannot apply newest-wins.
	ErrNotEnvelope = errors.New("redisstore: value is not an envelope")
	// ErrInvalidTTL is returned, wrapped, by Set for a TTL <= 0.
	ErrInvalidTTL = errors.New("redisstore: invalid ttl")
)

// setScript writes ARGV[1] at KEYS[1] with a TTL of ARGV[2] milliseconds
// unless the key holds an envelope with a newer timestamp. It returns 1 when
// it wrote; when it kept the stored value, it returns that value, so that
// the caller can check that what won is a valid envelope (see Store.Set).
//
// Timestamps are bytes 3..10 (1-based) of an envelope: a big-endian,
// non-negative int64, so comparing them byte by byte compares the numbers.
// The loop compares with string.byte rather than the < operator on strings,
// which uses strcoll and so depends on the server's locale.
//
// A stored value that is not a version 1 envelope with a non-negative
// timestamp (foreign data, another format version) is overwritten. A key
// holding another Redis type (a list, a hash) makes GET fail with
// WRONGTYPE, and the script fails with it, leaving the key alone.
var setScript = redis.NewScript(fmt.Sprintf(`
local cur = redis.call('GET', KEYS[1])
local new = ARGV[1]
if cur and #cur >= %[1]d and string.byte(cur, 1) == %[2]d and string.byte(cur, 2) == %[3]d and string.byte(cur, 3) < 128 then
  for i = 3, 10 do
    local a, b = string.byte(cur, i), string.byte(new, i)
    if a ~= b then
      if a > b then
        return cur
      end
      break
    end
  end
end
redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
if ARGV[3] and ARGV[3] ~= '' then
  local r = redis.pcall('PUBLISH', ARGV[3], ARGV[4])
  if type(r) == 'table' and r.err then
    return 2
  end
end
return 1
`, envelope.MinSize, envelope.Magic, envelope.Version))

// repairScript writes ARGV[1] at KEYS[1] with a TTL of ARGV[2] milliseconds
// if the key still holds the value whose SHA-1 is ARGV[3] (a corrupt value
// that setScript kept because its header looked newer). It returns 1 when
// it wrote, 0 when the key changed meanwhile.
var repairScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and redis.sha1hex(cur) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if ARGV[4] and ARGV[4] ~= '' then
    local r = redis.pcall('PUBLISH', ARGV[4], ARGV[5])
    if type(r) == 'table' and r.err then
      return 2
    end
  end
  return 1
end
return 0
`)

// Store reads and writes raw envelopes in Redis. It is safe for concurrent
// use. The zero value is not usable; call New.
type Store struct {
	client       redis.UniversalClient
	maxValueSize int
}

// Option changes a Store built by New.
type Option func(*Store)

// WithMaxValueSize sets the largest value Set accepts, in bytes. A value of
// n <= 0 keeps DefaultMaxValueSize; a value above HardMaxValueSize is lowered
// to it.
func WithMaxValueSize(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxValueSize = min(n, HardMaxValueSize)
		}
	}
}

// New returns a Store on client. The store does not own the client: it never
// closes it, and the caller must keep it open while the store is in use.
func New(client redis.UniversalClient, opts ...Option) *Store {
	s := &Store{client: client, maxValueSize: DefaultMaxValueSize}
	for _, o := range opts {
		o(s)
	}
	return s
}

// MaxValueSize returns the largest value, in bytes, that Set accepts.
func (s *Store) MaxValueSize() int { return s.maxValueSize }

// Get returns the raw value stored at key, or (nil, nil) when the key does
// not exist. It takes one round trip (GET). On failure it returns an error
// prefixed with "redisstore: get" that wraps the go-redis error; see
// Classify.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.client.Get(ctx, key).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return nil, fmt.Errorf("redisstore: get %q: %w", key, err)
	}
	return b, nil
}

// Set writes the envelope val at key with the physical lifetime ttl, unless
// Redis already holds a valid envelope at key with a newer timestamp: newest
// wins, atomically, in one round trip (a Lua script). An equal timestamp
// overwrites. A stored value that is not a valid envelope (foreign data, or
// a corrupt one whose header claims a newer timestamp) never wins: when the
// script keeps a value, Set decodes it, and if it does not decode, replaces
// it in a second, conditional round trip (only if the key still holds those
// exact bytes). Set returns written=false, with a nil error, only when a
// valid newer envelope was kept.
//
// The TTL is sent in milliseconds, rounded up, so an entry never lives
// shorter than asked; a TTL under 1 ms becomes 1 ms.
//
// Set returns an error, without sending anything, for a ttl <= 0
// (ErrInvalidTTL), a val that is not an envelope (ErrNotEnvelope) or one
// longer than MaxValueSize (ErrValueTooLarge). Other errors are prefixed
// with "redisstore: set" and wrap the go-redis error (see Classify); a key
// that holds another Redis type fails with WRONGTYPE and is left alone.
func (s *Store) Set(ctx context.Context, key string, val []byte, ttl time.Duration) (written bool, err error) {
	written, _, err = s.SetPublish(ctx, key, val, ttl, "", nil)
	return written, err
}

// SetPublish is Set that, when it writes, also publishes msg on channel
// (classic PUBLISH) inside the same script: the write and its
// announcement in one round trip, and a write that lost to a newer value
// announces nothing. published is false when it did not publish: nothing
// written, an empty channel, or the PUBLISH refused (a user without the
// channel permission: the write stands, and the caller may publish itself
// to see the error). Not for a Redis Cluster's sharded pub/sub, whose
// channel lives in another slot than the key.
func (s *Store) SetPublish(ctx context.Context, key string, val []byte, ttl time.Duration, channel string, msg []byte) (written, published bool, err error) {
	if ttl <= 0 {
		return false, false, fmt.Errorf("%w: %v for %q", ErrInvalidTTL, ttl, key)
	}
	if len(val) > s.maxValueSize {
		return false, false, fmt.Errorf("%w: %d bytes for %q, the maximum is %d", ErrValueTooLarge, len(val), key, s.maxValueSize)
	}
	if _, ok := envelope.Timestamp(val); !ok {
		return false, false, fmt.Errorf("%w: %d bytes for %q", ErrNotEnvelope, len(val), key)
	}
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	// A corrupt value may be replaced by another corrupt one meanwhile
	// (someone else writing garbage): a few rounds, then give up.
	for range 3 {
		res, err := setScript.Run(ctx, s.client, []string{key}, val, ms, channel, msg).Result()
		if err != nil {
			return false, false, fmt.Errorf("redisstore: set %q: %w", key, err)
		}
		kept, isValue := res.(string)
		if !isValue {
			n, _ := res.(int64)
			return n >= 1, n == 1 && channel != "", nil
		}
		if _, err := envelope.Decode([]byte(kept)); err == nil {
			return false, false, nil // a valid, newer envelope: it wins
		}
		sum := sha1.Sum([]byte(kept))
		n, err := repairScript.Run(ctx, s.client, []string{key}, val, ms, hex.EncodeToString(sum[:]), channel, msg).Int64()
		if err != nil {
			return false, false, fmt.Errorf("redisstore: set %q: %w", key, err)
		}
		if n >= 1 {
			return true, n == 1 && channel != "", nil
		}
	}
	return false, false, fmt.Errorf("redisstore: set %q: %w", key, errKeptChanging)
}

// errKeptChanging is returned by Set when the key kept changing under it to
// values that do not decode.
var errKeptChanging = errors.New("the stored value keeps changing to values that are not envelopes")

// Delete removes key. Deleting a key that does not exist is not an error. On
// failure it returns an error prefixed with "redisstore: delete" that wraps
// the go-redis error; see Classify.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redisstore: delete %q: %w", key, err)
	}
	return nil
}
