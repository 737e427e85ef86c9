package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-cache/strata"
)

// Defaults of Config.
const (
	// DefaultTable is the table of the entries when Config.Table is empty.
	DefaultTable = "strata_cache"
	// DefaultPruneInterval is how often expired rows are deleted when
	// Config.PruneInterval is zero.
	DefaultPruneInterval = time.Minute
	// DefaultChangeRetention is how long the change feed keeps a change
	// when Config.ChangeRetention is zero.
	DefaultChangeRetention = 10 * time.Minute
	// pruneBatch bounds one DELETE of expired rows.
	pruneBatch = 5000
	// defaultConnectTimeout bounds a connection attempt when the connection
	// string does not say (connect_timeout).
	defaultConnectTimeout = 5 * time.Second
	// closeGrace is how long Close lets the pool's connections close
	// cleanly before it closes their sockets.
	closeGrace = time.Second
)

// Config is a tier on a PostgreSQL server. Every field says what its zero
// value does.
type Config struct {
	// ConnString is a pgx connection string: a URL
	// ("postgres://user@host:5432/db?sslmode=disable") or key=value pairs;
	// required. Pool settings (pool_max_conns, ...) are honoured.
	ConnString string
	// Password, when set, is the password of the connection, given apart
	// from ConnString so that it is never part of a string that could be
	// logged. It never appears in errors or logs.
	Password string
	// Table is the table of the entries, created if it does not exist
	// (every cache of the tier shares it, each under its key prefix).
	// Letters, digits and underscores, starting with a letter or an
	// underscore. Empty means DefaultTable.
	Table string
	// PruneInterval is how often the tier deletes expired rows (reads
	// never return them either way) and the change feed's rows older than
	// ChangeRetention. Zero means DefaultPruneInterval; negative turns
	// pruning off.
	PruneInterval time.Duration
	// ChangeRetention is how long the change feed keeps a change: a node
	// whose listening connection is down for longer than this may have
	// missed changes, and reports a gap when it is back. Zero means
	// DefaultChangeRetention.
	ChangeRetention time.Duration
}

// tableName leaves room for the suffixes of the feed's tables in a
// 63-byte identifier.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)

// validTable checks a table name (empty: DefaultTable).
func validTable(table string) error {
	if table != "" && !tableName.MatchString(table) {
		return fmt.Errorf("%w: postgres: Table %q: up to 48 letters, digits and underscores expected", strata.ErrInvalidSettings, table)
	}
	return nil
}

func (c *Config) validate() error {
	if c.ConnString == "" {
		return fmt.Errorf("%w: postgres: ConnString is empty", strata.ErrInvalidSettings)
	}
	return c.validateTiming()
}

// validateTiming checks what a tier on a pool of the caller's uses: the
// table and the retention.
func (c *Config) validateTiming() error {
	if err := validTable(c.Table); err != nil {
		return err
	}
	if c.ChangeRetention < 0 {
		return fmt.Errorf("%w: postgres: ChangeRetention is negative", strata.ErrInvalidSettings)
	}
	return nil
}

// Tier puts caches on PostgreSQL: it implements strata.Tier. Each cache
// gets an L2 on its key prefix in the tier's table and a Backplane on a
// notification channel of its own, sharing the tier's pool.
type Tier struct {
	pool      *pgxpool.Pool
	connCf    *pgx.ConnConfig // for the backplanes' listening connections
	table     string
	n         names // quoted, for SQL
	owned     bool
	retention time.Duration // of the change feed's rows

	schemaMu sync.Mutex
	schemaOK atomic.Bool

	resets atomic.Uint64 // times the pool was reset after a lost connection (see run)

	// conns are the connections of the pool the tier created (nil for a
	// pool of the caller's): Close ends those a hung server holds.
	conns *connSet

	stop   context.CancelFunc
	pruned sync.WaitGroup
}

var _ strata.Tier = (*Tier)(nil)

// NewTier creates the connection pool of cfg and a tier on it; Close closes
// the pool. It does not contact PostgreSQL: the table is created on first
// use.
func NewTier(cfg Config) (*Tier, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.ConnString)
	if err != nil {
		// pgx's parse errors may quote the connection string, password
		// included: say only what is wrong.
		return nil, fmt.Errorf("%w: postgres: ConnString does not parse", strata.ErrInvalidSettings)
	}
	if cfg.Password != "" {
		pc.ConnConfig.Password = cfg.Password
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	conns := &connSet{}
	pc.ConnConfig.DialFunc = conns.dial(pc.ConnConfig.DialFunc)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", strata.ErrInvalidSettings, err)
	}
	t := newTier(pool, pc.ConnConfig, cfg.Table, true)
	t.conns = conns
	if cfg.ChangeRetention > 0 {
		t.retention = cfg.ChangeRetention
	}
	t.startPruning(cfg.PruneInterval)
	return t, nil
}

// NewTierFromPool returns a tier on the caller's pool, which it never
// closes. table is the table of the entries (empty: DefaultTable). The tier
// prunes expired rows and old changes every DefaultPruneInterval (keeping
// changes for DefaultChangeRetention) until Close; NewTierFromPoolConfig
// sets those.
func NewTierFromPool(pool *pgxpool.Pool, table string) (*Tier, error) {
	return NewTierFromPoolConfig(pool, Config{Table: table})
}

// NewTierFromPoolConfig is NewTierFromPool with the Table, PruneInterval
// and ChangeRetention of cfg; its ConnString and Password must be empty
// (the pool has its own).
func NewTierFromPoolConfig(pool *pgxpool.Pool, cfg Config) (*Tier, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: postgres: nil pool", strata.ErrInvalidSettings)
	}
	if cfg.ConnString != "" || cfg.Password != "" {
		return nil, fmt.Errorf("%w: postgres: ConnString and Password are the pool's: leave them empty", strata.ErrInvalidSettings)
	}
	if err := cfg.validateTiming(); err != nil {
		return nil, err
	}
	t := newTier(pool, pool.Config().ConnConfig, cfg.Table, false)
	if cfg.ChangeRetention > 0 {
		t.retention = cfg.ChangeRetention
	}
	t.startPruning(cfg.PruneInterval)
	return t, nil
}

func newTier(pool *pgxpool.Pool, cc *pgx.ConnConfig, table string, owned bool) *Tier {
	if table == "" {
		table = DefaultTable
	}
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	n := names{entries: q(table), expiresIdx: q(table + "_expires_at"),
		changes: q(table + "_changes"), changesIdx: q(table + "_changes_feed"), pruned: q(table + "_changes_pruned"),
		marks: q(table + "_changes_marks")}
	return &Tier{pool: pool, connCf: cc, table: table, n: n, owned: owned, retention: DefaultChangeRetention, stop: func() {}}
}

// Settings returns the strata.TierSettings of a tier on a pool built from
// cfg: the provider builds it (once for Settings.Tier, once per cache for
// CacheSettings.Tier) and closes it on Close.
func Settings(cfg Config) *strata.TierSettings {
	return &strata.TierSettings{New: func() (strata.Tier, error) { return NewTier(cfg) }}
}

// PoolSettings returns the strata.TierSettings of a tier on the caller's
// pool. The provider closes the tier, never the pool.
func PoolSettings(pool *pgxpool.Pool, table string) *strata.TierSettings {
	return &strata.TierSettings{New: func() (strata.Tier, error) { return NewTierFromPool(pool, table) }}
}

// Open returns the L2 and the Backplane of one cache (see OpenCache). It
// does not contact PostgreSQL.
func (t *Tier) Open(o strata.TierCacheOptions) (strata.TierCache, error) {
	l2, bp, err := t.OpenCache(Options{KeyPrefix: o.KeyPrefix, DisableL2: o.DisableL2, DisableBackplane: o.DisableBackplane, Logger: o.Logger})
	if err != nil {
		return strata.TierCache{}, err
	}
	var tc strata.TierCache
	if l2 != nil {
		tc.L2 = l2
		// The table's primary key is a btree over the prefixed key, whose
		// entries PostgreSQL limits to 2,704 bytes (SQLSTATE 54000): a
		// longer key would be refused at every write, unannounced.
		tc.MaxKeyLength = max(maxIndexedKey-len(o.KeyPrefix), 1)
	}
	if bp != nil {
		tc.Backplane = bp
	}
	return tc, nil
}

// maxIndexedKey is the longest prefixed key the tier stores: PostgreSQL's
// btree entry limit (2,704 bytes) less room for the entry's own header.
const maxIndexedKey = 2600

// Ping checks that PostgreSQL answers, accepts the tier's credentials and
// has (or lets the tier create) its table: a round trip bounded by ctx.
// Errors wrap hybrid.ErrL2Config for an authentication or permission
// failure and hybrid.ErrL2Unavailable when PostgreSQL cannot be reached.
func (t *Tier) Ping(ctx context.Context) error {
	if err := t.ensureSchema(ctx); err != nil {
		return wrap("ping", "", err)
	}
	if err := t.run(ctx, func() error { return t.pool.Ping(ctx) }); err != nil {
		return wrap("ping", "", err)
	}
	return nil
}

// Close stops pruning and closes the pool if the tier created it. Close the
// caches first (the provider does).
//
// Close does not wait for a server that does not answer: the pool's
// connections get closeGrace to close cleanly, then every connection the
// tier opened is closed at once (pgx would wait up to 15 s for the server
// to answer the cancel request of a statement that timed out).
func (t *Tier) Close() error {
	t.stop()
	t.pruned.Wait()
	if t.owned {
		done := make(chan struct{})
		go func() {
			defer close(done)
			t.pool.Close()
		}()
		grace := time.NewTimer(closeGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
		}
		t.conns.closeAll()
		<-done
	}
	return nil
}

// ensureSchema creates the table and its expiry index once; until it has
// succeeded, every operation tries again.
func (t *Tier) ensureSchema(ctx context.Context) error {
	if t.schemaOK.Load() {
		return nil
	}
	t.schemaMu.Lock()
	defer t.schemaMu.Unlock()
	if t.schemaOK.Load() {
		return nil
	}
	n := t.n
	// Two sessions creating the tables at once may both pass IF NOT EXISTS
	// and one fail on the catalog's unique index: an advisory lock
	// serializes them.
	sql := fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d);
CREATE TABLE IF NOT EXISTS %s (key text PRIMARY KEY, value bytea NOT NULL, ts bigint NOT NULL, expires_at bigint NOT NULL);
CREATE INDEX IF NOT EXISTS %s ON %s (expires_at);
CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  channel text NOT NULL, message bytea NOT NULL, at bigint NOT NULL);
CREATE INDEX IF NOT EXISTS %s ON %s (channel, xid, id);
CREATE TABLE IF NOT EXISTS %s (one boolean PRIMARY KEY DEFAULT true CHECK (one), xid bigint NOT NULL, id bigint NOT NULL);
INSERT INTO %s (one, xid, id) VALUES (true, 0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS %s (channel text PRIMARY KEY, xid bigint NOT NULL, id bigint NOT NULL);`,
		lockID(t.table), n.entries, n.expiresIdx, n.entries, n.changes, n.changesIdx, n.changes, n.pruned, n.pruned, n.marks)
	err := t.run(ctx, func() error {
		tx, err := t.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit: a no-op
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return err
	}
	t.schemaOK.Store(true)
	return nil
}

// names are the quoted names of the tier's tables and indexes: the
// entries, and the change feed (its rows, how far it was pruned, and how
// far each channel's rows were pruned).
type names struct {
	entries, expiresIdx, changes, changesIdx, pruned, marks string
}

// run runs f, a statement on the pool, and once more if it failed because
// its connection was lost (PostgreSQL restarted or shut the session down,
// the connection was cut): a restart kills every pooled connection, and
// without this each of them would fail one call, and open the cache's
// circuit breaker, before the pool noticed. Before the second try the pool
// is reset (see pgxpool.Pool.Reset: idle connections are closed at once,
// those in use when they are released), unless another call reset it
// meanwhile, so the second try runs on a new connection. Every statement of
// the tier may run twice: writes are newest-wins or deletions, and a change
// recorded twice is applied once by its receivers.
//
// A failure that is not a lost connection, or a second one, is returned
// (after lost has seen it); so is every failure once ctx is done.
func (t *Tier) run(ctx context.Context, f func() error) error {
	gen := t.resets.Load()
	err := f()
	if err != nil && ctx.Err() == nil && connLost(err) {
		if t.resets.CompareAndSwap(gen, gen+1) {
			t.pool.Reset()
		}
		err = f()
	}
	if err != nil {
		t.lost(err)
	}
	return err
}

// connLost reports whether err says that the connection of a call broke:
// the server closed it (a restart, a terminated session) or it was cut. A
// connection that could not be opened is not one: the server is down, and
// trying again at once would fail as well.
func connLost(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// admin_shutdown, crash_shutdown; connection_exception and its
		// subclasses.
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || strings.HasPrefix(pgErr.Code, "08")
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed)
}

// lost notes err: when it says that the table does not exist (dropped, or
// a restore from before it), the next operation creates it again.
func (t *Tier) lost(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		t.schemaOK.Store(false)
	}
}

// lockID is the advisory lock of the table's creation.
func lockID(table string) int64 {
	sum := sha256.Sum256([]byte("strata-schema:" + table))
	var id int64
	for _, b := range sum[:8] {
		id = id<<8 | int64(b)
	}
	return id
}

// startPruning deletes expired rows every interval until Close.
func (t *Tier) startPruning(interval time.Duration) {
	if interval < 0 {
		return
	}
	if interval == 0 {
		interval = DefaultPruneInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	t.pruned.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = t.Prune(ctx) // failures: tried again next time
			}
		}
	})
}

// Prune deletes the entries that expired and the change feed's rows older
// than the retention, in batches, and returns how many entries it deleted.
// It records how far each channel's rows were pruned, so that a node that
// had not read its channel that far reports a gap (and, for the nodes of
// earlier versions, how far the whole feed was).
func (t *Tier) Prune(ctx context.Context) (int64, error) {
	if err := t.ensureSchema(ctx); err != nil {
		return 0, wrap("prune", "", err)
	}
	n := t.n
	entries := fmt.Sprintf(`DELETE FROM %[1]s WHERE ctid IN (SELECT ctid FROM %[1]s WHERE expires_at <= $1 LIMIT %[2]d)`, n.entries, pruneBatch)
	changes := fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s WHERE ctid IN (SELECT ctid FROM %[1]s WHERE at <= $1 LIMIT %[2]d)
  RETURNING channel, xid::text::bigint AS x, id),
c AS (SELECT DISTINCT ON (channel) channel, x, id FROM d ORDER BY channel, x DESC, id DESC),
k AS (INSERT INTO %[4]s AS k (channel, xid, id) SELECT channel, x, id FROM c ORDER BY channel
  ON CONFLICT (channel) DO UPDATE SET xid = excluded.xid, id = excluded.id WHERE (excluded.xid, excluded.id) > (k.xid, k.id)),
m AS (SELECT x, id FROM d ORDER BY x DESC, id DESC LIMIT 1),
u AS (UPDATE %[3]s p SET xid = m.x, id = m.id FROM m WHERE (m.x, m.id) > (p.xid, p.id))
SELECT count(*) FROM d`, n.changes, pruneBatch, n.pruned, n.marks)
	var total int64
	for {
		var tag pgconn.CommandTag
		err := t.run(ctx, func() (err error) {
			tag, err = t.pool.Exec(ctx, entries, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return total, wrap("prune", "", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	before := time.Now().Add(-t.retention).UnixMilli()
	for {
		var deleted int64
		if err := t.run(ctx, func() error { return t.pool.QueryRow(ctx, changes, before).Scan(&deleted) }); err != nil {
			return total, wrap("prune", "", err)
		}
		if deleted < pruneBatch {
			return total, nil
		}
	}
}

// Options configure [Tier.OpenCache]: how one cache sits on PostgreSQL.
type Options struct {
	// KeyPrefix prefixes the cache's keys in the table and names its
	// notification channel (see ChannelName); required.
	KeyPrefix string
	// DisableL2 returns no distributed tier.
	DisableL2 bool
	// DisableBackplane returns no backplane; the writes then notify nobody.
	DisableBackplane bool
	// Logger receives what the tier swallows. Nil means slog.Default().
	Logger *slog.Logger
}

// OpenCache returns the distributed tier and the backplane of one cache on
// the tier, for a hybrid.Cache built without a provider, wired together: each write that changes the table notifies the
// backplane's channel in the same statement, and the cache (which sees that
// through hybrid.FeedL2) publishes only what no write announced. Either
// result is nil when disabled; the cache closes the backplane.
func (t *Tier) OpenCache(o Options) (l2 *L2, bp *Backplane, err error) {
	if o.KeyPrefix == "" {
		return nil, nil, errors.New("postgres: invalid options: KeyPrefix is empty")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if !o.DisableBackplane {
		bp = newBackplane(t, ChannelName(o.KeyPrefix), o.Logger)
	}
	if !o.DisableL2 {
		l2 = &L2{t: t, feed: bp}
	}
	return l2, bp, nil
}

// ChannelName returns the notification channel of the caches under
// keyPrefix: "strata_" and a hash of the prefix, since a channel name is
// an identifier of at most 63 bytes.
func ChannelName(keyPrefix string) string {
	sum := sha256.Sum256([]byte(keyPrefix))
	return "strata_" + hex.EncodeToString(sum[:12])
}
