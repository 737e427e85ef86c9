package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
)

var (
	// ErrNotEnvelope is returned, wrapped, by Set for a value that does not
	// start with a valid envelope header: without a timestamp the store
	// cannot apply newest-wins.
	ErrNotEnvelope = errors.New("postgres: value is not an envelope")
	// ErrInvalidTTL is returned, wrapped, by Set for a TTL <= 0.
	ErrInvalidTTL = errors.New("postgres: invalid ttl")
)

// L2 is a hybrid.L2 (and hybrid.FeedL2) on one table of PostgreSQL: a row
// per key with the envelope, its timestamp and its physical expiry. It is
// safe for concurrent use.
type L2 struct {
	t    *Tier
	feed *Backplane // the backplane the writes notify; nil: none
}

var (
	_ hybrid.L2     = (*L2)(nil)
	_ hybrid.FeedL2 = (*L2)(nil)
)

// Announces reports whether the writes of s notify bp: true only for the
// backplane opened with it.
func (s *L2) Announces(bp backplane.Backplane) bool {
	b, ok := bp.(*Backplane)
	return ok && s.feed != nil && b == s.feed
}

// Get returns the value at key, or (nil, nil) when there is none or it has
// expired: one SELECT.
func (s *L2) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.t.ensureSchema(ctx); err != nil {
		return nil, wrap("get", key, err)
	}
	var v []byte
	sql := fmt.Sprintf(`SELECT value FROM %s WHERE key = $1 AND expires_at > $2`, s.t.n.entries)
	err := s.t.run(ctx, func() error {
		err := s.t.pool.QueryRow(ctx, sql, key, time.Now().UnixMilli()).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v = nil
			return nil
		}
		return err
	})
	if err != nil {
		return nil, wrap("get", key, err)
	}
	return v, nil
}

// Set writes the envelope val at key with the physical lifetime ttl, unless
// the table holds a newer one (an equal timestamp overwrites, an expired
// row is always replaced): one upsert, atomic. written is false, with a nil
// error, when a newer envelope was kept. With a hybrid.Change to announce
// in ctx (see hybrid.FeedL2), the same statement notifies the backplane's
// channel when it writes: the write and its announcement are one round
// trip, and a write that lost announces nothing.
//
// Set returns an error, without sending anything, for a ttl <= 0
// (ErrInvalidTTL) and a val that is not an envelope (ErrNotEnvelope).
func (s *L2) Set(ctx context.Context, key string, val []byte, ttl time.Duration) (written bool, err error) {
	if ttl <= 0 {
		return false, fmt.Errorf("%w: %v for %q", ErrInvalidTTL, ttl, key)
	}
	ts, ok := envelope.Timestamp(val)
	if !ok {
		return false, fmt.Errorf("%w: %d bytes for %q", ErrNotEnvelope, len(val), key)
	}
	if err := s.t.ensureSchema(ctx); err != nil {
		return false, wrap("set", key, err)
	}
	now := time.Now()
	expires := now.Add(ttl).UnixMilli() + 1 // rounded up: never shorter than asked
	upsert := fmt.Sprintf(`INSERT INTO %[1]s AS e (key, value, ts, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts, expires_at = EXCLUDED.expires_at
WHERE e.ts <= EXCLUDED.ts OR e.expires_at <= $5 RETURNING 1 AS one`, s.t.n.entries)
	args := []any{key, val, ts, expires, now.UnixMilli()}
	ch := s.change(ctx)
	var sql string
	if ch == nil {
		sql = `WITH w AS (` + upsert + `) SELECT count(*), 0 FROM w`
	} else {
		sql = `WITH w AS (` + upsert + `), ` + s.feed.insertSQL("w", 6) + ` SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM n)`
		args = append(args, s.feed.insertArgs(ch.Message)...)
	}
	var wrote, notified int64
	if err := s.t.run(ctx, func() error { return s.t.pool.QueryRow(ctx, sql, args...).Scan(&wrote, &notified) }); err != nil {
		return false, wrap("set", key, err)
	}
	if notified > 0 {
		ch.MarkAnnounced()
	}
	return wrote > 0, nil
}

// Delete removes key; a missing key is not an error. With a change to
// announce, the same statement notifies the backplane's channel.
func (s *L2) Delete(ctx context.Context, key string) error {
	if err := s.t.ensureSchema(ctx); err != nil {
		return wrap("delete", key, err)
	}
	del := fmt.Sprintf(`DELETE FROM %s WHERE key = $1`, s.t.n.entries)
	ch := s.change(ctx)
	if ch == nil {
		if err := s.t.run(ctx, func() error { _, err := s.t.pool.Exec(ctx, del, key); return err }); err != nil {
			return wrap("delete", key, err)
		}
		return nil
	}
	var n int64
	sql := `WITH d AS (` + del + `), one AS (SELECT 1), ` + s.feed.insertSQL("one", 2) + ` SELECT count(*) FROM n`
	args := append([]any{key}, s.feed.insertArgs(ch.Message)...)
	if err := s.t.run(ctx, func() error { return s.t.pool.QueryRow(ctx, sql, args...).Scan(&n) }); err != nil {
		return wrap("delete", key, err)
	}
	ch.MarkAnnounced()
	return nil
}

// change returns the announcement the write in ctx must carry, or nil.
func (s *L2) change(ctx context.Context) *hybrid.Change {
	if s.feed == nil {
		return nil
	}
	ch, ok := hybrid.ChangeFromContext(ctx)
	if !ok || !s.Announces(ch.Backplane()) {
		return nil
	}
	return ch
}
