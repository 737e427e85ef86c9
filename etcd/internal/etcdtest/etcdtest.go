// Package etcdtest is the etcd module's test harness: the etcd processes of
// internal/etcdtest (one member or a cluster on free loopback ports, Kill,
// Restart), with clients, compaction and authentication on top.
package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	base "github.com/strata-cache/strata/internal/etcdtest"
)

// Option changes how a member starts.
type Option = base.Option

// WithTLS makes the members serve clients over TLS only, with a CA and
// certificates generated for the test (client certificates required).
func WithTLS() Option { return base.WithTLS() }

// Require checks that etcd is on PATH (see internal/etcdtest.Require).
func Require(t testing.TB) { base.Require(t) }

// Member is one etcd process.
type Member struct{ *base.Member }

// Cluster is a set of etcd members started for a test.
type Cluster struct {
	*base.Cluster
	Members []*Member
}

// Start starts a single member.
func Start(t testing.TB, opts ...Option) *Member {
	t.Helper()
	return &Member{base.Start(t, opts...)}
}

// StartCluster starts n members forming one cluster and waits until it
// answers.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	bc := base.StartCluster(t, n, opts...)
	c := &Cluster{Cluster: bc}
	for _, m := range bc.Members {
		c.Members = append(c.Members, &Member{m})
	}
	return c
}

// Client returns a client on this member only, closed by the test's cleanup.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, []string{m.Endpoint()}, m)
}

// Client returns a client on every member, closed by the test's cleanup.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints(), c.Members[0])
}

func newClient(t testing.TB, endpoints []string, m *Member) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: m.TLSConfig(),
		DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Compact compacts the history of the cluster up to its current revision
// and returns that revision.
func Compact(t testing.TB, c *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "etcdtest-compact")
	if err != nil {
		t.Fatalf("etcdtest: compact: %v", err)
	}
	if _, err := c.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact: %v", err)
	}
	return resp.Header.Revision
}

// EnableAuth creates the root user and a user with read-write access to the
// keys starting with prefix, then enables authentication.
func EnableAuth(t testing.TB, c *clientv3.Client, user, password, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "cache"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "cache", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, user, password); return err },
		func() error { _, err := c.UserGrantRole(ctx, user, "cache"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("etcdtest: enable auth, step %d: %v", i, err)
		}
	}
}
