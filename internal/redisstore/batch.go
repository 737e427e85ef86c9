package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/envelope"
)

// Item is one write of SetMany: the envelope Value at Key with the physical
// lifetime TTL.
type Item struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// GetMany returns the raw values stored at keys, aligned with keys (nil for
// a key that does not exist). errs is nil when every key was read; otherwise
// it is aligned with keys and holds the error of each key that could not be
// read (wrapped like Get's, see Classify), the others being served.
//
// On a single Redis (standalone or failover client) it is one MGET: one
// round trip. The returned slices may share memory with the reply: do not
// modify them. On a *redis.ClusterClient the keys are grouped by hash slot,
// one MGET per slot, and the groups are sent as one pipeline, which go-redis
// splits by node and sends to the nodes in parallel: one round trip per
// node, at the same time; a node that fails costs only its own keys. On a
// *redis.Ring the keys are read with pipelined GETs, which the ring routes
// by shard. Duplicate keys are read once per occurrence.
func (s *Store) GetMany(ctx context.Context, keys []string) (vals [][]byte, errs []error) {
	vals = make([][]byte, len(keys))
	if len(keys) == 0 {
		return vals, nil
	}
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		return vals, s.getManyCluster(ctx, c, keys, vals)
	case *redis.Ring:
		return vals, s.getManyPipelined(ctx, c, keys, vals)
	}
	res, err := mget(ctx, s.client, keys).Result()
	if err == nil && len(res) != len(keys) {
		err = fmt.Errorf("MGET returned %d values for %d keys", len(res), len(keys))
	}
	if err != nil {
		return vals, fillErr(keys, fmt.Errorf("redisstore: mget of %d keys: %w", len(keys), err))
	}
	for i, r := range res {
		vals[i] = asBytes(r)
	}
	return vals, nil
}

// mget is client.MGet(ctx, keys...) with each key passed as a *string,
// which go-redis writes (and routes) as the string: boxing a pointer
// allocates nothing, boxing a string one object per key. keys must not
// change until the command has run.
func mget(ctx context.Context, client processor, keys []string) *redis.SliceCmd {
	args := make([]any, 1+len(keys))
	args[0] = "mget"
	for i := range keys {
		args[1+i] = &keys[i]
	}
	cmd := redis.NewSliceCmd(ctx, args...)
	_ = client.Process(ctx, cmd)
	return cmd
}

// processor is what runs a command: a client or a pipeline.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// getManyCluster sends one MGET per hash slot, pipelined.
func (s *Store) getManyCluster(ctx context.Context, c *redis.ClusterClient, keys []string, vals [][]byte) []error {
	groups := make(map[uint16][]int)
	order := make([]uint16, 0)
	for i, k := range keys {
		slot := Slot(k)
		if _, ok := groups[slot]; !ok {
			order = append(order, slot)
		}
		groups[slot] = append(groups[slot], i)
	}
	pipe := c.Pipeline()
	cmds := make([]*redis.SliceCmd, len(order))
	for g, slot := range order {
		idx := groups[slot]
		ks := make([]string, len(idx))
		for j, i := range idx {
			ks[j] = keys[i]
		}
		cmds[g] = mget(ctx, pipe, ks)
	}
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	var errs []error
	for g, slot := range order {
		idx := groups[slot]
		res, err := cmds[g].Result()
		if err == nil && len(res) != len(idx) {
			err = fmt.Errorf("MGET returned %d values for %d keys", len(res), len(idx))
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(keys))
			}
			for _, i := range idx {
				errs[i] = fmt.Errorf("redisstore: mget %q: %w", keys[i], err)
			}
			continue
		}
		for j, i := range idx {
			vals[i] = asBytes(res[j])
		}
	}
	return errs
}

// GetEach reads keys with one GET per key, all in one pipeline (on a
// cluster, go-redis splits it by node): one round trip, and each key read
// exactly as Get reads it, a key of another Redis type included (its
// WRONGTYPE is that key's error, where MGET would answer nil). vals and errs
// are as GetMany's.
func (s *Store) GetEach(ctx context.Context, keys []string) (vals [][]byte, errs []error) {
	vals = make([][]byte, len(keys))
	if len(keys) == 0 {
		return vals, nil
	}
	return vals, s.getManyPipelined(ctx, s.client, keys, vals)
}

// getManyPipelined sends one GET per key, pipelined.
func (s *Store) getManyPipelined(ctx context.Context, c redis.UniversalClient, keys []string, vals [][]byte) []error {
	pipe := c.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	_, _ = pipe.Exec(ctx)
	var errs []error
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		switch {
		case err == nil:
			vals[i] = b
		case errors.Is(err, redis.Nil):
		default:
			if errs == nil {
				errs = make([]error, len(keys))
			}
			errs[i] = fmt.Errorf("redisstore: get %q: %w", keys[i], err)
		}
	}
	return errs
}

// SetMany writes items, each newest-wins exactly as Set does (the same Lua
// script, atomic per key; a corrupt stored value that only looks newer is
// replaced, as Set does, with one more round trip for that key), in one
// pipeline: one round trip on a single
// Redis, one per node in parallel on a cluster. The script is sent by its
// SHA; if the server does not have it cached, the writes that failed with
// NOSCRIPT are sent again with EVAL, which caches it (a second round trip,
// once per server).
//
// written and errs are aligned with items. errs is nil when no write
// failed. An item that Set would refuse (ErrInvalidTTL, ErrNotEnvelope,
// ErrValueTooLarge) gets that error and is not sent; the others are.
func (s *Store) SetMany(ctx context.Context, items []Item) (written []bool, errs []error) {
	written, _, errs = s.SetPublishMany(ctx, items, "", nil)
	return written, errs
}

// SetPublishMany is SetMany in which each write also publishes its message
// on channel (classic PUBLISH) inside the same script, as SetPublish does:
// msgs is aligned with items (nil, or a nil element: no message), and
// published reports, aligned with items, which writes published theirs.
// Still one pipeline: the writes and their announcements in one round trip.
func (s *Store) SetPublishMany(ctx context.Context, items []Item, channel string, msgs [][]byte) (written, published []bool, errs []error) {
	written = make([]bool, len(items))
	published = make([]bool, len(items))
	if len(items) == 0 {
		return written, published, nil
	}
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(items))
		}
		errs[i] = err
	}
	send := make([]int, 0, len(items))
	ms := make([]int64, len(items))
	for i, it := range items {
		switch {
		case it.TTL <= 0:
			fail(i, fmt.Errorf("%w: %v for %q", ErrInvalidTTL, it.TTL, it.Key))
		case len(it.Value) > s.maxValueSize:
			fail(i, fmt.Errorf("%w: %d bytes for %q, the maximum is %d", ErrValueTooLarge, len(it.Value), it.Key, s.maxValueSize))
		default:
			if _, ok := envelope.Timestamp(it.Value); !ok {
				fail(i, fmt.Errorf("%w: %d bytes for %q", ErrNotEnvelope, len(it.Value), it.Key))
				continue
			}
			ms[i] = int64((it.TTL + time.Millisecond - 1) / time.Millisecond)
			send = append(send, i)
		}
	}
	b := setBatch{items: items, channel: channel, msgs: msgs, ms: ms, written: written, published: published, fail: fail}
	retry := s.runSet(ctx, &b, send, false)
	if len(retry) > 0 {
		s.runSet(ctx, &b, retry, true)
	}
	return written, published, errs
}

// setBatch is one SetPublishMany call: its items, their messages, and
// where the results go.
type setBatch struct {
	items     []Item
	channel   string
	msgs      [][]byte
	ms        []int64 // TTL in milliseconds, per item
	written   []bool
	published []bool
	fail      func(int, error)
}

// msg returns the message of item i, or nil.
func (b *setBatch) msg(i int) []byte {
	if b.channel == "" || b.msgs == nil {
		return nil
	}
	return b.msgs[i]
}

// runSet pipelines the script for the items of b at idx. Without eval it
// sends EVALSHA and returns the indexes that failed with NOSCRIPT, for a
// retry with EVAL.
func (s *Store) runSet(ctx context.Context, b *setBatch, idx []int, eval bool) (noscript []int) {
	if len(idx) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(idx))
	for j, i := range idx {
		keys := []string{b.items[i].Key}
		var args []any
		if m := b.msg(i); m != nil {
			args = []any{b.items[i].Value, b.ms[i], b.channel, m}
		} else {
			args = []any{b.items[i].Value, b.ms[i]}
		}
		if eval {
			cmds[j] = setScript.Eval(ctx, pipe, keys, args...)
		} else {
			cmds[j] = setScript.EvalSha(ctx, pipe, keys, args...)
		}
	}
	_, _ = pipe.Exec(ctx)
	for j, i := range idx {
		res, err := cmds[j].Result()
		if err != nil {
			if !eval && strings.HasPrefix(err.Error(), "NOSCRIPT") {
				noscript = append(noscript, i)
				continue
			}
			b.fail(i, fmt.Errorf("redisstore: set %q: %w", b.items[i].Key, err))
			continue
		}
		kept, isValue := res.(string)
		if !isValue {
			b.written[i] = res == int64(1) || res == int64(2)
			b.published[i] = res == int64(1) && b.msg(i) != nil
			continue
		}
		if _, err := envelope.Decode([]byte(kept)); err == nil {
			continue // a valid, newer envelope: it wins
		}
		// A corrupt value that only looks newer: SetPublish replaces it
		// (rare, so one key at a time).
		it := b.items[i]
		channel := b.channel
		if b.msg(i) == nil {
			channel = "" // no message for this one
		}
		w, p, err := s.SetPublish(ctx, it.Key, it.Value, it.TTL, channel, b.msg(i))
		if err != nil {
			b.fail(i, err)
			continue
		}
		b.written[i], b.published[i] = w, p
	}
	return noscript
}

// DeleteMany removes keys in one pipeline (DEL per key, so that it works
// across the slots of a cluster). errs is nil when every delete succeeded,
// else aligned with keys.
func (s *Store) DeleteMany(ctx context.Context, keys []string) (errs []error) {
	if len(keys) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Del(ctx, k)
	}
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			if errs == nil {
				errs = make([]error, len(keys))
			}
			errs[i] = fmt.Errorf("redisstore: delete %q: %w", keys[i], err)
		}
	}
	return errs
}

// asBytes returns an MGET element as bytes. A string is not copied: the
// bytes alias it and must not be written to (the engine only decodes them,
// and envelope.Decode copies what it keeps).
func asBytes(r any) []byte {
	switch v := r.(type) {
	case string:
		return unsafe.Slice(unsafe.StringData(v), len(v))
	case []byte:
		return v
	}
	return nil // redis.Nil in an MGET reply: no such key
}

func fillErr(keys []string, err error) []error {
	errs := make([]error, len(keys))
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key, or of its hash tag (the part between the first '{' and the next '}',
// when not empty), modulo 16384.
func Slot(key string) uint16 {
	key = hashPart(key)
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
