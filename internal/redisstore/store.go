package redisstore

import (
	"context"
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
	// WithMaxValueSize says otherwise: 64 MiB. Values this large already
	// block a Redis server for milliseconds; a cache rarely needs more.
	DefaultMaxValueSize = 64 << 20
)

var (
	// ErrValueTooLarge is returned, wrapped with the sizes, by Set for a
	// value longer than the store's maximum value size.
	ErrValueTooLarge = errors.New("redisstore: value too large")
	// ErrNotEnvelope is returned, wrapped, by Set for a value that does not
	// start with a valid envelope header (see envelope.Timestamp): without
	// a timestamp the store cannot apply newest-wins.
	ErrNotEnvelope = errors.New("redisstore: value is not an envelope")
	// ErrInvalidTTL is returned, wrapped, by Set for a TTL <= 0.
	ErrInvalidTTL = errors.New("redisstore: invalid ttl")
)

// setScript writes ARGV[1] at KEYS[1] with a TTL of ARGV[2] milliseconds
// unless the key holds an envelope with a newer timestamp. It returns 1 when
// it wrote, 0 when it kept the newer value.
//
// Timestamps are bytes 3..10 (1-based) of an envelope: a big-endian,
// non-negative int64, so comparing them byte by byte compares the numbers.
// The loop compares with string.byte rather than the < operator on strings,
// which uses strcoll and so depends on the server's locale.
//
// A stored value that is not a version 1 envelope with a non-negative
// timestamp (foreign data, a corrupt value) is overwritten. A key holding
// another Redis type (a list, a hash) makes GET fail with WRONGTYPE, and the
// script fails with it, leaving the key alone.
var setScript = redis.NewScript(fmt.Sprintf(`
local cur = redis.call('GET', KEYS[1])
local new = ARGV[1]
if cur and #cur >= %[1]d and string.byte(cur, 1) == %[2]d and string.byte(cur, 2) == %[3]d and string.byte(cur, 3) < 128 then
  for i = 3, 10 do
    local a, b = string.byte(cur, i), string.byte(new, i)
    if a ~= b then
      if a > b then
        return 0
      end
      break
    end
  end
end
redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
return 1
`, envelope.MinSize, envelope.Magic, envelope.Version))

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
// Redis already holds an envelope at key with a newer timestamp: newest wins,
// atomically, in one round trip (a Lua script). An equal timestamp
// overwrites. A stored value that is not a valid envelope (foreign data) is
// overwritten. Set returns written=false, with a nil error, when a newer
// value was kept.
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
	if ttl <= 0 {
		return false, fmt.Errorf("%w: %v for %q", ErrInvalidTTL, ttl, key)
	}
	if len(val) > s.maxValueSize {
		return false, fmt.Errorf("%w: %d bytes for %q, the maximum is %d", ErrValueTooLarge, len(val), key, s.maxValueSize)
	}
	if _, ok := envelope.Timestamp(val); !ok {
		return false, fmt.Errorf("%w: %d bytes for %q", ErrNotEnvelope, len(val), key)
	}
	ms := (ttl + time.Millisecond - 1) / time.Millisecond
	n, err := setScript.Run(ctx, s.client, []string{key}, val, int64(ms)).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstore: set %q: %w", key, err)
	}
	return n == 1, nil
}

// Delete removes key. Deleting a key that does not exist is not an error. On
// failure it returns an error prefixed with "redisstore: delete" that wraps
// the go-redis error; see Classify.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redisstore: delete %q: %w", key, err)
	}
	return nil
}
