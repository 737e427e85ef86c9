// Package postgres puts Strata caches on PostgreSQL: a distributed tier
// (hybrid.L2) in one table, newest wins in one upsert, and a backplane on
// LISTEN/NOTIFY whose notifications are sent in the same statement as the
// write they announce.
//
// It is a module of its own (github.com/strata-cache/strata/postgres, on
// github.com/jackc/pgx/v5), so that an application that does not use
// PostgreSQL never gets pgx in its go.sum.
//
// Put every cache of a provider on PostgreSQL with Settings, one cache with
// CacheSettings.Tier, or use Open for a standalone hybrid.Cache:
//
//	p, err := strata.NewProvider(strata.Settings{
//		Tier: postgres.Settings(postgres.Config{ConnString: "postgres://app@db:5432/app"}),
//	})
//
// Delivery of the backplane is at-most-once, as with Redis pub/sub: a
// notification sent while a node's listening connection is down is lost, and
// the node reports a gap when it listens again, after which the engine
// verifies every entry from before the gap against the table before serving
// it ("verify before use"). See docs/postgres.md.
package postgres
