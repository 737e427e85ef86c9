package redisstore_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

// replyError is a Redis error reply as go-redis exposes it (it implements
// redis.Error), for the codes a test server cannot easily be made to send.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyTable(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("redisstore: get %q: %w", "k", err) }
	cases := []struct {
		err  error
		want redisstore.Kind
	}{
		{nil, redisstore.KindNone},
		{context.Canceled, redisstore.KindOther},
		{wrap(context.Canceled), redisstore.KindOther},
		{context.DeadlineExceeded, redisstore.KindTransient},
		{wrap(context.DeadlineExceeded), redisstore.KindTransient},
		{redis.ErrPoolTimeout, redisstore.KindTransient},
		{redis.ErrPoolExhausted, redisstore.KindTransient},
		{redis.ErrClosed, redisstore.KindConfig},
		{io.EOF, redisstore.KindTransient},
		{wrap(io.ErrUnexpectedEOF), redisstore.KindTransient},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, redisstore.KindTransient},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, redisstore.KindTransient},
		{wrap(syscall.EPIPE), redisstore.KindTransient},
		{&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, redisstore.KindTransient},
		{&net.DNSError{Err: "no such host", Name: "redis.invalid"}, redisstore.KindTransient},
		{wrap(replyError("LOADING Redis is loading the dataset in memory")), redisstore.KindTransient},
		{replyError("READONLY You can't write against a read only replica."), redisstore.KindTransient},
		{replyError("CLUSTERDOWN The cluster is down"), redisstore.KindTransient},
		{replyError("TRYAGAIN Multiple keys request during rehashing of slot"), redisstore.KindTransient},
		{replyError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), redisstore.KindTransient},
		{replyError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), redisstore.KindTransient},
		{replyError("OOM command not allowed when used memory > 'maxmemory'."), redisstore.KindTransient},
		{replyError("ERR max number of clients reached"), redisstore.KindTransient},
		{replyError("MOVED 3999 127.0.0.1:6381"), redisstore.KindTransient},
		{replyError("NOPERM User u has no permissions to access one of the keys used as arguments"), redisstore.KindConfig},
		{replyError("NOAUTH Authentication required."), redisstore.KindConfig},
		{replyError("WRONGPASS invalid username-password pair or user is disabled."), redisstore.KindConfig},
		{wrap(replyError("WRONGTYPE Operation against a key holding the wrong kind of value")), redisstore.KindConfig},
		{redis.ErrNoScript, redisstore.KindConfig},
		{redis.ErrCrossSlot, redisstore.KindConfig},
		{replyError("ERR unknown command 'EVALSHA', with args beginning with: "), redisstore.KindConfig},
		{replyError("ERR This instance has cluster support disabled"), redisstore.KindConfig},
		{replyError("ERR WRONGTYPE Operation against a key holding the wrong kind of value"), redisstore.KindConfig}, // KVRocks style
		{replyError("ERR Error running script (call to f_x): @user_script:1: bad"), redisstore.KindOther},
		{redisstore.ErrValueTooLarge, redisstore.KindOther},
		{errors.New("something else"), redisstore.KindOther},
	}
	for _, tc := range cases {
		if got := redisstore.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[redisstore.Kind]string{
		redisstore.KindNone: "none", redisstore.KindTransient: "transient",
		redisstore.KindConfig: "config", redisstore.KindOther: "other", redisstore.Kind(42): "Kind(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// checkAll runs Get, Set and Delete on key and checks that each fails with an
// error of the wanted kind.
func checkAll(t *testing.T, s *redisstore.Store, key string, want redisstore.Kind) {
	t.Helper()
	ctx := t.Context()
	_, getErr := s.Get(ctx, key)
	_, setErr := s.Set(ctx, key, env(1, "v"), time.Minute)
	delErr := s.Delete(ctx, key)
	for op, err := range map[string]error{"Get": getErr, "Set": setErr, "Delete": delErr} {
		if err == nil {
			t.Errorf("%s: nil error, want one of kind %v", op, want)
			continue
		}
		t.Logf("%s: %v", op, err)
		if got := redisstore.Classify(err); got != want {
			t.Errorf("%s: Classify(%v) = %v, want %v", op, err, got, want)
		}
	}
}

func TestClassifyKilledServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, nil))
	mustSet(t, s, "k", env(1, "v"), time.Minute) // open a pooled connection first
	srv.Kill(t)
	checkAll(t, s, "k", redisstore.KindTransient)

	srv.Restart(t)
	if _, err := s.Get(t.Context(), "k"); err != nil {
		// The first call after a restart may still hit a dead pooled
		// connection; the one after it must succeed.
		if _, err := s.Get(t.Context(), "k"); err != nil {
			t.Fatalf("Get after restart: %v", err)
		}
	}
}

func TestClassifySuspendedServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, func(o *redis.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.WriteTimeout = 100 * time.Millisecond
	}))
	mustSet(t, s, "k", env(1, "v"), time.Minute)
	srv.Suspend(t)
	t.Cleanup(func() { srv.Resume(t) })
	checkAll(t, s, "k", redisstore.KindTransient)
}

func TestClassifyContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, nil))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Get(ctx, "k")
	if got := redisstore.Classify(err); got != redisstore.KindOther {
		t.Errorf("cancelled context: Classify(%v) = %v, want other", err, got)
	}

	ctx, cancel = context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = s.Set(ctx, "k", env(1, "v"), time.Minute)
	if got := redisstore.Classify(err); got != redisstore.KindTransient {
		t.Errorf("expired deadline: Classify(%v) = %v, want transient", err, got)
	}
}

func TestClassifyClosedClient(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := redis.NewClient(srv.Options())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, redisstore.New(c), "k", redisstore.KindConfig)
}

func TestClassifyWrongType(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	s := redisstore.New(rdb)
	if err := rdb.RPush(t.Context(), "list", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(t.Context(), "list")
	if got := redisstore.Classify(err); got != redisstore.KindConfig {
		t.Errorf("Get: Classify(%v) = %v, want config", err, got)
	}
	written, err := s.Set(t.Context(), "list", env(1, "v"), time.Minute)
	t.Logf("Set: %v", err)
	if got := redisstore.Classify(err); written || got != redisstore.KindConfig {
		t.Errorf("Set = %v, %v (kind %v); want false and a config error", written, err, got)
	}
	if n, err := rdb.LLen(t.Context(), "list").Result(); err != nil || n != 2 {
		t.Errorf("the list was changed by a failed Set: LLEN = %d, %v", n, err)
	}
}

func TestClassifyNoPerm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--user", "app", "on", ">secret", "~allowed:*", "+@all"))
	s := redisstore.New(newClient(t, srv, func(o *redis.Options) {
		o.Username, o.Password = "app", "secret"
	}))
	if !mustSet(t, s, "allowed:k", env(1, "v"), time.Minute) {
		t.Fatal("Set on an allowed key: written = false")
	}
	checkAll(t, s, "denied:k", redisstore.KindConfig)
}

func TestClassifyAuth(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--requirepass", "secret"))
	cases := []struct {
		name     string
		password string
	}{
		{"no password", ""},     // NOAUTH
		{"wrong password", "x"}, // WRONGPASS
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := redisstore.New(newClient(t, srv, func(o *redis.Options) { o.Password = tc.password }))
			checkAll(t, s, "k", redisstore.KindConfig)
		})
	}
}

func TestClassifyReadOnlyReplica(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t)
	replica := redistest.Start(t)
	rdb := replica.Client(t)
	host, port, err := net.SplitHostPort(primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ReplicaOf(t.Context(), host, port).Err(); err != nil {
		t.Fatal(err)
	}
	s := redisstore.New(rdb)
	_, err = s.Set(t.Context(), "k", env(1, "v"), time.Minute)
	if got := redisstore.Classify(err); got != redisstore.KindTransient {
		t.Errorf("Set on a replica: Classify(%v) = %v, want transient", err, got)
	}
}

// TLS that cannot work without a person: a server certificate the client
// does not trust, or one not issued for the host name. (A plain-text client
// on a TLS server only sees the connection closed, and a TLS client on a
// plain-text server waits for its handshake until the deadline: both are
// transient, as any closed connection or timeout.)
func TestClassifyTLS(t *testing.T) {
	t.Parallel()
	tlsSrv := redistest.Start(t, redistest.WithTLS())
	cases := []struct {
		name string
		srv  *redistest.Server
		conf *tls.Config
	}{
		{"unknown authority", tlsSrv, &tls.Config{ServerName: "localhost"}},
		{"wrong host name", tlsSrv, func() *tls.Config {
			c := tlsSrv.TLSConfig()
			c.ServerName = "redis.example"
			return c
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := redisstore.New(newClient(t, tc.srv, func(o *redis.Options) { o.TLSConfig = tc.conf }))
			checkAll(t, s, "k", redisstore.KindConfig)
		})
	}
}
