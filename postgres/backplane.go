package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-cache/strata/backplane"
)

const (
	// maxPayload is the largest NOTIFY payload PostgreSQL accepts (8000
	// bytes, less one): a notification whose message would not fit carries
	// only the change's id, and the receivers read the message from the feed.
	maxPayload = 7999
	// subscribeTimeout bounds Subscribe's wait for the first LISTEN.
	subscribeTimeout = 5 * time.Second
	// catchUpInterval is how often a listening node reads the feed for
	// what no notification brought (and checks its connection with it).
	catchUpInterval = time.Second
	// catchUpBatch bounds the rows of one read of the feed.
	catchUpBatch = 1000
	// deliveredIDs bounds the ids a node remembers having delivered, so
	// that a change both notified and read from the feed is handled once.
	deliveredIDs = 8192
	// The pause between attempts to listen again after a failure, doubling.
	firstRetry = 100 * time.Millisecond
	maxRetry   = 2 * time.Second
)

// Backplane is a backplane.Backplane on a change feed in PostgreSQL: every
// change is a row of the tier's feed table, written in the same statement
// as the change itself (or by Publish), and announced with NOTIFY on the
// cache's channel (ChannelName). A node listens on a connection of its own
// and takes each change from its notification (or, for a large one, from
// the row); once a second, and after every reconnection, it reads the feed
// for what it has not seen, in the order the writing transactions became
// visible. So a node that was disconnected loses nothing: only the rows
// pruned before it read them (Config.ChangeRetention) are lost, and that,
// and only that, is reported to the handler as a gap.
type Backplane struct {
	t       *Tier
	channel string
	log     *slog.Logger

	mu         sync.Mutex // guards subscribed and the closed transition
	subscribed bool
	closed     atomic.Bool
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	// state of the first LISTEN: 0 pending, 1 confirmed in time, 2
	// Subscribe gave up (the late confirmation is then a gap).
	firstState atomic.Int32

	published, received, corrupt, gaps, resubscribes atomic.Uint64

	// conns are the listening connections (and pgx's cancel requests on
	// them): Close ends what a hung server holds open.
	conns connSet

	// Of the goroutine that runs the handler only: which feed table was
	// read (its OID: a table created again restarts the ids; and its
	// relfilenode: TRUNCATE gives the table a new one, and may restart the
	// ids too), how far, and the ids recently delivered.
	feed      int64
	filenode  int64
	cursor    feedPos
	seen      map[int64]struct{}
	seenOrder []int64
	seenNext  int
}

// feedPos is a position in the feed: rows are read in the order of the
// writing transaction's id, then the row's.
type feedPos struct{ xid, id int64 }

func (p feedPos) less(q feedPos) bool { return p.xid < q.xid || p.xid == q.xid && p.id < q.id }

var _ backplane.Backplane = (*Backplane)(nil)

func newBackplane(t *Tier, channel string, log *slog.Logger) *Backplane {
	b := &Backplane{t: t, channel: channel, log: log}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// Channel returns the notification channel of b.
func (b *Backplane) Channel() string { return b.channel }

// Publish records m in the feed and notifies the channel, in one statement.
// It returns the driver's error wrapped, an error wrapping
// backplane.ErrInvalidMessage for an unknown kind, and backplane.ErrClosed
// after Close.
func (b *Backplane) Publish(ctx context.Context, m backplane.Message) error {
	if b.closed.Load() {
		return backplane.ErrClosed
	}
	if !m.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", backplane.ErrInvalidMessage, m.Kind)
	}
	if err := b.t.ensureSchema(ctx); err != nil {
		return wrap("publish", m.Key, err)
	}
	sql := `WITH one AS (SELECT 1), ` + b.insertSQL("one", 1) + ` SELECT count(*) FROM n`
	var n int64
	args := b.insertArgs(m)
	if err := b.t.run(ctx, func() error { return b.t.pool.QueryRow(ctx, sql, args...).Scan(&n) }); err != nil {
		return wrap("publish", m.Key, err)
	}
	b.published.Add(1)
	return nil
}

// insertSQL is the CTE that records a change (its arguments $c, $c+1,
// $c+2, $c+3: channel, message, time, payload tail) once per row of the
// CTE named rows, and notifies the channel: n has a row per notification.
func (b *Backplane) insertSQL(rows string, c int) string {
	return fmt.Sprintf(`c AS (INSERT INTO %s (channel, message, at) SELECT $%d, $%d, $%d FROM %s RETURNING id),
n AS (SELECT pg_notify($%d, id::text || $%d) FROM c)`, b.t.n.changes, c, c+1, c+2, rows, c, c+3)
}

// insertArgs are the arguments of insertSQL for m: the row's message, and
// the notification's tail after the row's id, ":" and the message in
// base64, or "" when that would not fit (the receivers read the row).
func (b *Backplane) insertArgs(m backplane.Message) []any {
	msg, _ := m.MarshalBinary()
	tail := ""
	if 20+1+base64.StdEncoding.EncodedLen(len(msg)) <= maxPayload {
		tail = ":" + base64.StdEncoding.EncodeToString(msg)
	}
	return []any{b.channel, msg, time.Now().UnixMilli(), tail}
}

// Subscribe starts delivering to h and waits until the first LISTEN is in
// place. If that takes longer than 5 s (PostgreSQL down, for example), it
// returns an error wrapping backplane.ErrSubscribeTimeout but delivery stays
// started: the handler gets HandleGap when the LISTEN finally succeeds
// (changes made meanwhile are not delivered).
func (b *Backplane) Subscribe(h backplane.Handler) error {
	ready, err := b.StartSubscribe(h)
	if err != nil {
		return err
	}
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-b.ctx.Done():
		return backplane.ErrClosed
	case <-t.C:
		if b.firstState.CompareAndSwap(0, 2) {
			return fmt.Errorf("postgres: subscribe %s: %w after %s", b.channel, backplane.ErrSubscribeTimeout, subscribeTimeout)
		}
		return nil
	}
}

// StartSubscribe is Subscribe without the wait: ready is closed once the
// first LISTEN is in place; that first one is not a gap.
func (b *Backplane) StartSubscribe(h backplane.Handler) (ready <-chan struct{}, err error) {
	if h == nil {
		return nil, errors.New("postgres: nil handler")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, backplane.ErrClosed
	}
	if b.subscribed {
		return nil, backplane.ErrSubscribed
	}
	b.subscribed = true
	rc := make(chan struct{})
	b.wg.Go(func() { b.run(h, rc) })
	return rc, nil
}

// run listens until Close: connect, LISTEN, read what the feed holds since
// the last position, deliver, and after any failure start again from that
// position.
func (b *Backplane) run(h backplane.Handler, ready chan struct{}) {
	b.seen = make(map[int64]struct{}, deliveredIDs)
	b.seenOrder = make([]int64, deliveredIDs)
	first := true
	delay := firstRetry
	failing := false
	for b.ctx.Err() == nil {
		conn, err := b.listen()
		if err == nil && first {
			err = b.start(conn)
		}
		if err == nil {
			err = b.catchUp(conn, h)
		}
		if err == nil && !first {
			err = b.catchUpBeyond(conn, h)
		}
		if err != nil {
			if conn != nil {
				_ = conn.Close(context.Background())
			}
			if b.ctx.Err() != nil {
				return
			}
			if !failing {
				b.log.Warn("backplane cannot listen, retrying", "channel", b.channel, "err", err)
				failing = true
			}
			if !sleep(b.ctx, delay) {
				return
			}
			delay = min(2*delay, maxRetry)
			continue
		}
		failing, delay = false, firstRetry
		switch {
		case first && b.firstState.CompareAndSwap(0, 1):
			close(ready)
		case first:
			b.gap(h, "listening late") // Subscribe gave up waiting: what came meanwhile is not delivered
		default:
			b.resubscribes.Add(1)
			b.log.Info("backplane listening again; the feed was read from where it stopped", "channel", b.channel)
		}
		first = false
		err = b.deliver(conn, h)
		_ = conn.Close(context.Background())
		if b.ctx.Err() != nil {
			return
		}
		b.log.Warn("backplane connection lost, listening again", "channel", b.channel, "err", err)
	}
}

// start sets the position of a new subscription: after every change whose
// transaction is known to be over (what was written before it), so that
// only later changes are delivered.
func (b *Backplane) start(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
	defer cancel()
	var xmin int64
	if err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		return wrap("listen", "", err)
	}
	b.cursor = horizon(xmin)
	return nil
}

// horizon is the position after every change of the transactions older
// than xmin, which are all over: no row can appear behind it.
func horizon(xmin int64) feedPos { return feedPos{xid: xmin - 1, id: math.MaxInt64} }

// listen opens the listening connection and issues LISTEN.
func (b *Backplane) listen() (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
	defer cancel()
	if err := b.t.ensureSchema(ctx); err != nil {
		return nil, wrap("listen", "", err)
	}
	cc := b.t.connCf.Copy()
	cc.RuntimeParams["application_name"] = "strata-backplane"
	cc.DialFunc = b.conns.dial(cc.DialFunc)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, wrap("listen", "", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, wrap("listen", "", err)
	}
	return conn, nil
}

// deliver hands the changes to h until the connection fails or b is
// closed: each notification at once, and every catchUpInterval what the
// feed holds that no notification brought.
func (b *Backplane) deliver(conn *pgx.Conn, h backplane.Handler) error {
	// The feed is read every catchUpInterval also while notifications keep
	// coming, so that the position follows them (a position left behind
	// would be read again after a reconnection, or taken for a gap once
	// pruned).
	next := time.Now().Add(catchUpInterval)
	for {
		ctx, cancel := context.WithDeadline(b.ctx, next)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		switch {
		case err == nil:
			if err := b.notified(conn, h, n.Payload); err != nil {
				return err
			}
		case conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		if !time.Now().Before(next) {
			if err := b.catchUp(conn, h); err != nil {
				return err
			}
			next = time.Now().Add(catchUpInterval)
		}
	}
}

// notified delivers the change of one notification ("id:message" or "id").
func (b *Backplane) notified(conn *pgx.Conn, h backplane.Handler, payload string) error {
	idText, msg, hasMsg := strings.Cut(payload, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		b.received.Add(1)
		b.corrupt.Add(1)
		b.log.Warn("backplane dropped an undecodable notification", "channel", b.channel)
		return nil
	}
	if b.delivered(id) {
		return nil
	}
	var bin []byte
	if hasMsg {
		bin, _ = base64.StdEncoding.DecodeString(msg) // not base64: counted as corrupt by handle
	} else {
		ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
		err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT message FROM %s WHERE id = $1 AND channel = $2`, b.t.n.changes), id, b.channel).Scan(&bin)
		cancel()
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // pruned already: the feed's pruning mark tells the catch-up
		}
		if err != nil {
			return err
		}
	}
	b.handle(h, id, bin)
	return nil
}

// catchUp reads the feed from the position on, in batches, and delivers
// what no notification did. Only rows of transactions older than every
// running one are read, so none can appear behind the position later.
//
// Three things mean that this node may have missed changes, a gap: the
// feed table is not the one it read before (dropped and created again, or
// restored: its ids start again, and the rows it had not read are gone);
// the table's storage was replaced (TRUNCATE, which deletes the rows it
// had not read and, with RESTART IDENTITY, starts the ids again; VACUUM
// FULL and CLUSTER replace it too and lose nothing, but cannot be told
// apart: a gap for them costs the node's next reads a check against the
// distributed tier); and a position below its channel's pruning mark (rows
// of the channel that it had not read were deleted; another cache's pruned
// rows are none of its business).
func (b *Backplane) catchUp(conn *pgx.Conn, h backplane.Handler) error {
	n := b.t.n
	rowsSQL := fmt.Sprintf(`SELECT xid::text::bigint, id, message FROM %s
WHERE channel = $1 AND (xid, id) > ($2::text::xid8, $3) AND xid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY xid, id LIMIT %d`, n.changes, catchUpBatch)
	// The feed table's OID, the horizon, the channel's mark, the whole
	// feed's mark and the highest channel mark: a whole-feed mark beyond
	// every channel's was recorded by a tier of an earlier version, which
	// keeps no marks per channel, and is then taken for this channel's.
	markSQL := fmt.Sprintf(`SELECT $2::text::regclass::oid::bigint, pg_relation_filenode($2::text::regclass)::bigint,
  pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
  coalesce(c.xid, 0), coalesce(c.id, 0), coalesce(g.xid, 0), coalesce(g.id, 0), coalesce(h.xid, 0), coalesce(h.id, 0)
FROM (VALUES (1)) one (x)
LEFT JOIN %s g ON true
LEFT JOIN %s c ON c.channel = $1
LEFT JOIN LATERAL (SELECT xid, id FROM %s ORDER BY xid DESC, id DESC LIMIT 1) h ON true`, n.pruned, n.marks, n.marks)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
		var feed, filenode, xmin int64
		var mark, all, highest feedPos
		if err := conn.QueryRow(ctx, markSQL, b.channel, n.changes).Scan(&feed, &filenode, &xmin,
			&mark.xid, &mark.id, &all.xid, &all.id, &highest.xid, &highest.id); err != nil {
			cancel()
			b.t.lost(err)
			return wrap("feed", "", err)
		}
		if highest.less(all) {
			mark = all
		}
		switch {
		case b.feed == 0:
			b.feed, b.filenode = feed, filenode
		case feed != b.feed:
			// Its ids start again: the ones remembered mean nothing, and a
			// position from the old table is no position in the new one.
			b.feed, b.filenode = feed, filenode
			b.cursor = horizon(xmin)
			b.forget()
			b.gap(h, "the feed's table was created again")
		case filenode != b.filenode:
			// The rows not read yet may be gone, and the ids may start
			// again (the ones remembered would drop new changes as
			// delivered). The position stays: transaction ids do not
			// start again.
			b.filenode = filenode
			b.forget()
			b.gap(h, "the feed's table was truncated or rewritten")
		}
		if b.cursor.less(mark) {
			b.cursor = mark
			b.gap(h, "changes were pruned from the feed before this node read them")
		}
		var count int
		var err error
		b.cursor, count, err = b.deliverRows(ctx, conn, h, rowsSQL, b.cursor)
		cancel()
		if err != nil {
			return err
		}
		if count < catchUpBatch {
			return nil
		}
	}
}

// deliverRows runs rowsSQL (the channel, then the position from: its xid
// and id) and delivers the feed rows it returns (xid, id, message) that
// this node has not delivered yet. It returns the position of the last row
// read (from if none), also when it fails part way, and how many rows it
// read. An error is wrapped, and the tier told of it.
func (b *Backplane) deliverRows(ctx context.Context, conn *pgx.Conn, h backplane.Handler, rowsSQL string, from feedPos) (last feedPos, count int, err error) {
	last = from
	rows, err := conn.Query(ctx, rowsSQL, b.channel, strconv.FormatInt(from.xid, 10), from.id)
	if err != nil {
		b.t.lost(err)
		return last, 0, wrap("feed", "", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pos feedPos
		var bin []byte
		if err := rows.Scan(&pos.xid, &pos.id, &bin); err != nil {
			b.t.lost(err)
			return last, count, wrap("feed", "", err)
		}
		count++
		last = pos
		if !b.delivered(pos.id) {
			b.handle(h, pos.id, bin)
		}
	}
	if err := rows.Err(); err != nil {
		b.t.lost(err)
		return last, count, wrap("feed", "", err)
	}
	return last, count, nil
}

// catchUpBeyond delivers, once after a reconnection, the changes past the
// position that are already visible: the rows of transactions that ended
// while a transaction older than them still runs. catchUp leaves them for
// later, since a row of that older transaction could still appear behind
// them; their notifications were lost with the connection, and a writing
// transaction left open (a migration, a batch job, a session idle in
// transaction) would keep them from this node, and its memory stale, for
// as long as it stays open. The position does not move: catchUp reads them
// again once the horizon passes them, and skips those it remembers having
// delivered (a change applied twice is harmless: newest wins). Every change
// that commits after the LISTEN comes as a notification, so one read
// after it is enough.
func (b *Backplane) catchUpBeyond(conn *pgx.Conn, h backplane.Handler) error {
	rowsSQL := fmt.Sprintf(`SELECT xid::text::bigint, id, message FROM %s
WHERE channel = $1 AND (xid, id) > ($2::text::xid8, $3)
ORDER BY xid, id LIMIT %d`, b.t.n.changes, catchUpBatch)
	pos := b.cursor
	for {
		ctx, cancel := context.WithTimeout(b.ctx, defaultConnectTimeout)
		var count int
		var err error
		pos, count, err = b.deliverRows(ctx, conn, h, rowsSQL, pos)
		cancel()
		if err != nil {
			return err
		}
		if count < catchUpBatch {
			return nil
		}
	}
}

// forget drops the ids remembered as delivered.
func (b *Backplane) forget() {
	clear(b.seen)
	clear(b.seenOrder)
	b.seenNext = 0
}

// delivered reports whether id was delivered recently.
func (b *Backplane) delivered(id int64) bool {
	_, ok := b.seen[id]
	return ok
}

// handle decodes and delivers the change id, and remembers it.
func (b *Backplane) handle(h backplane.Handler, id int64, bin []byte) {
	if old := b.seenOrder[b.seenNext]; old != 0 {
		delete(b.seen, old)
	}
	b.seenOrder[b.seenNext] = id
	b.seenNext = (b.seenNext + 1) % deliveredIDs
	b.seen[id] = struct{}{}
	b.received.Add(1)
	m, err := backplane.DecodeMessage(bin)
	if err != nil {
		b.corrupt.Add(1)
		b.log.Warn("backplane dropped an undecodable message", "channel", b.channel, "err", err)
		return
	}
	h.HandleMessage(m)
}

func (b *Backplane) gap(h backplane.Handler, why string) {
	b.gaps.Add(1)
	b.log.Info("backplane gap: "+why, "channel", b.channel)
	h.HandleGap()
}

// Close stops listening and waits for the goroutine that calls the
// handler. It does not wait for a server that does not answer: the
// listening connection's sockets are closed. It is idempotent and returns
// nil.
func (b *Backplane) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
	b.conns.closeAll()
	return nil
}

// Stats returns the backplane's counters.
func (b *Backplane) Stats() backplane.Stats {
	return backplane.Stats{Published: b.published.Load(), Received: b.received.Load(), Corrupt: b.corrupt.Load(),
		Gaps: b.gaps.Load(), Resubscribes: b.resubscribes.Load()}
}

// sleep waits d or until ctx ends; it reports false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
