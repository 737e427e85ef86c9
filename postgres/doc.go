// Package postgres puts Strata caches on PostgreSQL: a distributed tier
// (hybrid.L2) in one table, newest wins in one upsert, and a backplane on a
// change feed behind LISTEN/NOTIFY, written and notified in the same
// statement as the write it announces.
//
// It is a module of its own (github.com/strata-cache/strata/postgres, on
// github.com/jackc/pgx/v5), so that an application that does not use
// PostgreSQL never gets pgx in its go.sum.
//
// Put every cache of a provider on PostgreSQL with Settings, one cache with
// CacheSettings.Tier, or use Tier.OpenCache for the distributed tier and
// backplane of a standalone hybrid.Cache:
//
//	p, err := strata.NewProvider(strata.Settings{
//		Tier: postgres.Settings(postgres.Config{ConnString: "postgres://app@db:5432/app"}),
//	})
//
// The backplane is a change feed: every change is a row of a feed table,
// written in the write's own statement and announced with NOTIFY; a node
// that was disconnected reads the feed from where it stopped, so nothing is
// lost. Only changes pruned before a node read them (Config.ChangeRetention)
// are a gap, after which the engine verifies every entry from before it
// against the table before serving it. See docs/postgres.md.
package postgres
