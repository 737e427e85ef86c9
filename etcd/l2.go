package etcd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
)

const (
	// DefaultMaxRequestBytes is etcd's default request limit (the server's
	// --max-request-bytes): 1.5 MiB.
	DefaultMaxRequestBytes = 1536 * 1024
	// requestOverhead is what a write transaction adds to the value, key and
	// feed record: protobuf framing, compares, lease id, raft header.
	requestOverhead = 512
	// maxSetAttempts bounds the compare-and-swap loop of Set when a corrupt
	// value keeps changing under it.
	maxSetAttempts     = 8
	defaultDialTimeout = 5 * time.Second
)

var (
	// ErrNotEnvelope is returned, wrapped, by Set for a value that does not
	// start with a valid envelope header: without a timestamp the store
	// cannot apply newest-wins.
	ErrNotEnvelope = errors.New("etcd: value is not an envelope")
	// ErrInvalidTTL is returned, wrapped, by Set for a TTL <= 0.
	ErrInvalidTTL = errors.New("etcd: invalid ttl")
)

// L2Options configure [NewL2]. Every field says what its zero value does.
type L2Options struct {
	// MaxRequestBytes is the request limit of the etcd servers
	// (--max-request-bytes). Set refuses, before sending, a write whose
	// transaction would exceed it, with an error wrapping
	// hybrid.ErrValueTooLarge. Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int
	// Feed, when set, makes every write that carries a hybrid.Change in its
	// context (see hybrid.FeedL2) put the change's record on Feed's feed key
	// in the same transaction. Feed must use the same etcd cluster.
	Feed *Backplane
	// Logger receives what the store swallows. Nil means slog.Default().
	Logger *slog.Logger
}

// L2 is a hybrid.L2 (and hybrid.FeedL2) on etcd. It is safe for concurrent
// use. It does not own its client.
type L2 struct {
	src        *source
	leases     leases
	maxRequest int
	feed       *Backplane
	log        *slog.Logger
}

var _ hybrid.FeedL2 = (*L2)(nil)

// NewL2 returns the distributed tier on client. It never closes the client.
func NewL2(client *clientv3.Client, o L2Options) (*L2, error) {
	if client == nil {
		return nil, errors.New("etcd: invalid options: nil client")
	}
	return newL2(fixedSource(client, false), o)
}

func newL2(src *source, o L2Options) (*L2, error) {
	if o.MaxRequestBytes < 0 {
		return nil, errors.New("etcd: invalid options: MaxRequestBytes is negative")
	}
	s := &L2{src: src, maxRequest: o.MaxRequestBytes, feed: o.Feed, log: o.Logger}
	if s.maxRequest == 0 {
		s.maxRequest = DefaultMaxRequestBytes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// MaxValueSize returns the largest envelope Set accepts with a key of
// keyLen bytes and no feed record.
func (s *L2) MaxValueSize(keyLen int) int { return s.maxRequest - requestOverhead - 4*keyLen }

// Announces reports whether the writes of s announce changes on bp: true
// only for the backplane given as L2Options.Feed.
func (s *L2) Announces(bp backplane.Backplane) bool {
	b, ok := bp.(*Backplane)
	return ok && s.feed != nil && b == s.feed
}

// Leases returns the number of leases the store currently holds for its
// keys (one per time bucket in use).
func (s *L2) Leases() int { return s.leases.count() }

// Get returns the value at key, or (nil, nil) when there is none: one
// linearizable Get.
func (s *L2) Get(ctx context.Context, key string) ([]byte, error) {
	c, err := s.src.get(ctx)
	if err == nil {
		err = s.src.unreachable(ctx, c)
	}
	if err != nil {
		return nil, wrap("get", key, err)
	}
	resp, err := c.Get(ctx, key)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// newerThan returns the compares that hold when key stores an envelope
// whose timestamp is greater than ts: its bytes sort at or above magic,
// version, ts+1 and below magic, version, 0x80 (a non-negative timestamp).
// A missing key fails a value compare, so the Else branch writes.
func newerThan(key string, ts int64) []clientv3.Cmp {
	upper := string([]byte{envelope.Magic, envelope.Version, 0x80})
	if ts == math.MaxInt64 {
		// Nothing is newer: a compare that never holds.
		return []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), ">", upper), clientv3.Compare(clientv3.Value(key), "<", upper)}
	}
	lower := binary.BigEndian.AppendUint64([]byte{envelope.Magic, envelope.Version}, uint64(ts+1))
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(key), ">", string(lower)),
		clientv3.Compare(clientv3.Value(key), "<", upper),
	}
}

// Set writes the envelope val at key with the physical lifetime ttl unless
// etcd holds a newer envelope there (an equal timestamp overwrites). It
// takes one transaction; a stored value that only looks newer (a corrupt
// envelope with a valid header) takes a second one, conditioned on the
// value's mod revision, which replaces it (retried if it changed meanwhile).
// written is false when a newer value was kept.
//
// The key gets the lease of its time bucket (see the package
// documentation), granted at most once per bucket.
//
// Set returns an error, without sending anything, for a ttl <= 0
// (ErrInvalidTTL), a val that is not an envelope (ErrNotEnvelope), or a
// write larger than MaxRequestBytes (hybrid.ErrValueTooLarge). etcd errors
// wrap hybrid.ErrL2Unavailable or hybrid.ErrL2Config (see Classify).
func (s *L2) Set(ctx context.Context, key string, val []byte, ttl time.Duration) (written bool, err error) {
	if ttl <= 0 {
		return false, fmt.Errorf("%w: %v for %q", ErrInvalidTTL, ttl, key)
	}
	ts, ok := envelope.Timestamp(val)
	if !ok {
		return false, fmt.Errorf("%w: %d bytes for %q", ErrNotEnvelope, len(val), key)
	}
	feedOp, ch := s.feedOp(ctx)
	// The key is in the transaction four times (two compares, the put, the
	// get) and the feed record, with the value the message carries.
	size := len(val) + 4*len(key) + requestOverhead
	if feedOp != nil {
		if size+len(feedOp.KeyBytes())+len(feedOp.ValueBytes()) > s.maxRequest && ch.Message.Value != "" {
			// Too large with the value in the record: announced without
			// it, receivers read the entry from etcd.
			m := ch.Message
			m.Value = ""
			op := s.feed.recordOp(m)
			feedOp = &op
		}
		size += len(feedOp.KeyBytes()) + len(feedOp.ValueBytes())
	}
	if size > s.maxRequest {
		return false, fmt.Errorf("%w: %q: the etcd request would be %d bytes, the limit is %d", hybrid.ErrValueTooLarge, key, size, s.maxRequest)
	}
	c, err := s.src.get(ctx)
	if err == nil {
		err = s.src.unreachable(ctx, c)
	}
	if err != nil {
		return false, wrap("set", key, err)
	}
	for range 2 { // a second time if the bucket's lease was revoked
		var lease clientv3.LeaseID
		lease, err = s.leases.get(ctx, c, ttl)
		if err != nil {
			return false, wrap("set", key, err)
		}
		written, err = s.set(ctx, c, key, val, ts, lease, feedOp)
		if err == nil {
			if feedOp != nil && written {
				ch.MarkAnnounced()
			}
			return written, nil
		}
		if !errors.Is(rpctypes.Error(unwrapStatus(err)), rpctypes.ErrLeaseNotFound) {
			break
		}
		s.leases.forget(lease)
	}
	return false, wrap("set", key, err)
}

// set runs the newest-wins transaction(s) of Set with lease.
func (s *L2) set(ctx context.Context, c *clientv3.Client, key string, val []byte, ts int64, lease clientv3.LeaseID, feedOp *clientv3.Op) (bool, error) {
	puts := []clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithLease(lease))}
	kept := []clientv3.Op{clientv3.OpGet(key)}
	if feedOp != nil {
		// Only a write is announced: a change that loses to a newer one
		// is not (the engine does not publish it either).
		puts = append(puts, *feedOp)
	}
	// newestWins writes unless the stored header is newer; it returns the
	// stored value when it did not write.
	newestWins := func() (wrote bool, cur *mvccpb.KeyValue, err error) {
		resp, err := c.Txn(ctx).If(newerThan(key, ts)...).Then(kept...).Else(puts...).Commit()
		if err != nil || !resp.Succeeded {
			return err == nil, nil, err
		}
		return false, firstKV(resp), nil
	}
	wrote, cur, err := newestWins()
	for range maxSetAttempts {
		if err != nil || wrote {
			return wrote, err
		}
		if t, ok := envelope.Timestamp(valueOf(cur)); !ok || t <= ts {
			// Gone or older since: newest wins again.
			wrote, cur, err = newestWins()
			continue
		}
		if _, derr := envelope.Decode(cur.Value); derr == nil {
			return false, nil // a newer, readable value: it wins
		} else {
			s.log.Warn("etcd: replacing an unreadable value", slog.Any("err", derr))
		}
		// A corrupt value that looks newer: replace exactly that revision.
		resp, terr := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)).Then(puts...).Else(kept...).Commit()
		if terr != nil {
			return false, terr
		}
		if resp.Succeeded {
			return true, nil
		}
		cur = firstKV(resp) // lost the compare: judge what is there now
	}
	if err != nil || wrote {
		return wrote, err
	}
	return false, fmt.Errorf("%w: gave up after %d attempts against concurrent writers", hybrid.ErrL2Unavailable, maxSetAttempts)
}

func firstKV(resp *clientv3.TxnResponse) *mvccpb.KeyValue {
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		return kvs[0]
	}
	return nil
}

func valueOf(kv *mvccpb.KeyValue) []byte {
	if kv == nil {
		return nil
	}
	return kv.Value
}

// feedOp returns the put of the change's feed record when the write must be
// announced, else nil.
func (s *L2) feedOp(ctx context.Context) (*clientv3.Op, *hybrid.Change) {
	if s.feed == nil {
		return nil, nil
	}
	ch, ok := hybrid.ChangeFromContext(ctx)
	if !ok {
		return nil, nil
	}
	op := s.feed.recordOp(ch.Message)
	return &op, ch
}

// Delete removes key; a missing key is not an error. With a change to
// announce, the delete and the feed record are one transaction.
func (s *L2) Delete(ctx context.Context, key string) error {
	c, err := s.src.get(ctx)
	if err == nil {
		err = s.src.unreachable(ctx, c)
	}
	if err != nil {
		return wrap("delete", key, err)
	}
	feedOp, ch := s.feedOp(ctx)
	if feedOp == nil {
		if _, err := c.Delete(ctx, key); err != nil {
			return wrap("delete", key, err)
		}
		return nil
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpDelete(key), *feedOp).Commit(); err != nil {
		return wrap("delete", key, err)
	}
	ch.MarkAnnounced()
	return nil
}
