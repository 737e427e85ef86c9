package etcd

import (
	"errors"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Options configure [Open]: how one cache sits on etcd. Every field says
// what its zero value does.
type Options struct {
	// KeyPrefix prefixes the cache's keys in etcd; required. The feed key is
	// FeedKey(KeyPrefix).
	KeyPrefix string
	// DisableL2 returns no distributed tier.
	DisableL2 bool
	// DisableBackplane returns no backplane; the distributed tier then
	// writes no feed records.
	DisableBackplane bool
	// MaxRequestBytes is the servers' --max-request-bytes. Zero means
	// DefaultMaxRequestBytes (1.5 MiB).
	MaxRequestBytes int
	// SubscribeTimeout bounds how long the backplane's Subscribe waits for
	// etcd. Zero means 5 s.
	SubscribeTimeout time.Duration
	// Logger receives what the tier swallows. Nil means slog.Default().
	Logger *slog.Logger
}

// Open returns the distributed tier and the backplane of one cache on
// client, wired together: the tier's writes put their change records on
// the backplane's feed in the same transaction, and the cache (which sees
// that through hybrid.FeedL2) publishes only what no write announced.
// Either result is nil when disabled. Neither closes the client; the cache
// closes the backplane.
func Open(client *clientv3.Client, o Options) (*L2, *Backplane, error) {
	if client == nil {
		return nil, nil, errors.New("etcd: invalid options: nil client")
	}
	return open(fixedSource(client, false), o)
}

func open(src *source, o Options) (l2 *L2, bp *Backplane, err error) {
	if o.KeyPrefix == "" {
		return nil, nil, errors.New("etcd: invalid options: KeyPrefix is empty")
	}
	if !o.DisableBackplane {
		bp, err = newBackplane(src, BackplaneOptions{FeedKey: FeedKey(o.KeyPrefix), SubscribeTimeout: o.SubscribeTimeout, Logger: o.Logger})
		if err != nil {
			return nil, nil, err
		}
	}
	if !o.DisableL2 {
		l2, err = newL2(src, L2Options{MaxRequestBytes: o.MaxRequestBytes, Feed: bp, Logger: o.Logger})
		if err != nil {
			return nil, nil, err
		}
	}
	return l2, bp, nil
}
