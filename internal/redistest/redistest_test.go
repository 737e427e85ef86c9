package redistest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStartServesCommands(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	if srv.Port() == 6379 || srv.Port() <= 0 || srv.Port() >= 55535 {
		t.Fatalf("Port() = %d, want a free port other than 6379 and below 55535", srv.Port())
	}
	if want := fmt.Sprintf("127.0.0.1:%d", srv.Port()); srv.Addr() != want {
		t.Errorf("Addr() = %q, want %q", srv.Addr(), want)
	}
	if want := "redis://" + srv.Addr(); srv.URL() != want {
		t.Errorf("URL() = %q, want %q", srv.URL(), want)
	}
	if srv.TLSConfig() != nil {
		t.Errorf("TLSConfig() = non-nil for a plain-text server")
	}
	if o := srv.Options(); o.Addr != srv.Addr() || o.TLSConfig != nil {
		t.Errorf("Options() = {Addr: %q, TLSConfig: %v}, want {%q, nil}", o.Addr, o.TLSConfig, srv.Addr())
	}
	if first, second := srv.Options(), srv.Options(); first == second {
		t.Errorf("Options() returned the same pointer twice, want a fresh copy")
	}

	rdb := srv.Client(t)
	if err := rdb.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := rdb.Get(ctx(t), "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want \"v\", nil", got, err)
	}
	// The server is the process we started, with no persistence.
	cfg, err := rdb.ConfigGet(ctx(t), "save").Result()
	if err != nil || cfg["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want \"\"", cfg, err)
	}
	info, err := rdb.Info(ctx(t), "server").Result()
	if err != nil || !strings.Contains(info, fmt.Sprintf("process_id:%d\r", srv.PID())) {
		t.Errorf("INFO server does not report our PID %d: %v\n%s", srv.PID(), err, info)
	}
	if !strings.Contains(srv.Log(), "Ready to accept connections") {
		t.Errorf("Log() lacks the ready line:\n%s", srv.Log())
	}
}

func TestParallelServersGetDistinctPorts(t *testing.T) {
	t.Parallel()
	const n = 6
	var mu sync.Mutex
	ports := map[int]string{}
	for i := range n {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			mu.Lock()
			if other, dup := ports[srv.Port()]; dup {
				t.Errorf("port %d handed out twice (also to %s)", srv.Port(), other)
			}
			ports[srv.Port()] = t.Name()
			mu.Unlock()
			// Each server holds its own data: write our name, read it back.
			rdb := srv.Client(t)
			if err := rdb.Set(ctx(t), "owner", t.Name(), 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if got, err := rdb.Get(ctx(t), "owner").Result(); err != nil || got != t.Name() {
				t.Fatalf("GET owner = %q, %v; want %q", got, err, t.Name())
			}
		})
	}
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	port, pid := srv.Port(), srv.PID()
	opts := srv.Options()
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	srv.Kill(t)
	if srv.PID() != 0 {
		t.Errorf("PID() after Kill = %d, want 0", srv.PID())
	}
	if err := rdb.Ping(ctx(t)).Err(); err == nil {
		t.Fatalf("PING after Kill succeeded, want an error")
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s after Kill succeeded, want connection refused", srv.Addr())
	}
	srv.Kill(t) // a second Kill does nothing

	srv.Restart(t)
	if srv.Port() != port {
		t.Errorf("Port() after Restart = %d, want %d", srv.Port(), port)
	}
	if srv.PID() == pid || srv.PID() == 0 {
		t.Errorf("PID() after Restart = %d, want a new process (was %d)", srv.PID(), pid)
	}
	fresh := srv.Client(t)
	if err := fresh.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := fresh.Get(ctx(t), "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Restart = %v, want redis.Nil (data gone)", err)
	}
	// Restart of a running server kills it first.
	srv.Restart(t)
	if err := fresh.Ping(ctx(t)).Err(); err != nil {
		// The pooled connection died with the old process; go-redis retries on a new one.
		t.Fatalf("PING after second Restart: %v", err)
	}
}

func TestSuspendAndResume(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	opts := srv.Options()
	opts.ReadTimeout = 200 * time.Millisecond
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}

	srv.Suspend(t)
	err := rdb.Ping(ctx(t)).Err()
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("PING while suspended = %v, want a timeout", err)
	}
	srv.Resume(t)
	// The stalled connection was dropped by go-redis; a new one works at once.
	if err := rdb.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithTLS())
	if want := "rediss://" + srv.Addr(); srv.URL() != want {
		t.Errorf("URL() = %q, want %q", srv.URL(), want)
	}
	if srv.TLSConfig() == nil || srv.Options().TLSConfig == nil {
		t.Fatalf("TLSConfig() or Options().TLSConfig is nil for a TLS server")
	}
	if first, second := srv.TLSConfig(), srv.TLSConfig(); first == second {
		t.Errorf("TLSConfig() returned the same pointer twice, want a fresh copy")
	}
	rdb := srv.Client(t)
	if err := rdb.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}

	t.Run("without client certificate", func(t *testing.T) {
		conf := srv.TLSConfig()
		conf.Certificates = nil
		opts := srv.Options()
		opts.TLSConfig = conf
		c := redis.NewClient(opts)
		defer c.Close()
		if got, err := c.Get(ctx(t), "k").Result(); err != nil || got != "v" {
			t.Fatalf("GET = %q, %v; want \"v\", nil", got, err)
		}
	})
	t.Run("plain text is refused", func(t *testing.T) {
		opts := srv.Options()
		opts.TLSConfig = nil
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		opts.ReadTimeout = time.Second
		c := redis.NewClient(opts)
		defer c.Close()
		if err := c.Ping(ctx(t)).Err(); err == nil {
			t.Fatalf("plain-text PING to the TLS port succeeded, want an error")
		}
	})
	t.Run("untrusted CA is refused", func(t *testing.T) {
		opts := srv.Options()
		opts.TLSConfig = &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		c := redis.NewClient(opts)
		defer c.Close()
		err := c.Ping(ctx(t)).Err()
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("PING with the system roots = %v, want a certificate error", err)
		}
	})
	if _, err := os.Stat(srv.CAFile()); err != nil {
		t.Errorf("CAFile() = %q: %v", srv.CAFile(), err)
	}
}

func TestWithArgsACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs(
		"--user", "cacheapp", "on", ">secret", "~app:*", "&app:*", "+@all",
		"--user", "default", "off",
	))
	opts := srv.Options()
	opts.Username, opts.Password = "cacheapp", "secret"
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Set(ctx(t), "app:k", "v", 0).Err(); err != nil {
		t.Fatalf("SET app:k as cacheapp: %v", err)
	}
	if err := rdb.Set(ctx(t), "other:k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET other:k as cacheapp = %v, want NOPERM", err)
	}
	anon := srv.Client(t)
	if err := anon.Ping(ctx(t)).Err(); err == nil {
		t.Fatalf("PING as the disabled default user succeeded, want an auth error")
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	if got := len(cl.Addrs()); got != 3 {
		t.Fatalf("len(Addrs()) = %d, want 3", got)
	}
	rdb := cl.Client(t)
	masters := 0
	var mu sync.Mutex
	err := rdb.ForEachMaster(ctx(t), func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		masters++
		mu.Unlock()
		return m.Ping(ctx).Err()
	})
	if err != nil || masters != 3 {
		t.Fatalf("ForEachMaster: %d masters, %v; want 3, nil", masters, err)
	}
	// Keys spread over every node's slots.
	for i := range 100 {
		k := fmt.Sprintf("key-%d", i)
		if err := rdb.Set(ctx(t), k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	total := 0
	for _, n := range cl.Nodes() {
		size, err := n.Client(t).DBSize(ctx(t)).Result()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.Addr(), err)
		}
		if size == 0 {
			t.Errorf("node %s holds no keys, want the keys spread over every master", n.Addr())
		}
		total += int(size)
	}
	if total != 100 {
		t.Errorf("keys over all nodes = %d, want 100", total)
	}
}

// recorder is a testing.TB that records Skip and Fatal instead of acting on them. Its Fatal
// and Skip end the calling goroutine, as the real ones do.
type recorder struct {
	testing.TB
	mu              sync.Mutex
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f with r on its own goroutine and waits for it to end.
func (r *recorder) run(f func(testing.TB)) (skipped, failed string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped, r.failed
}

func TestRequire(t *testing.T) { // not parallel: it changes PATH and CI
	t.Setenv("PATH", t.TempDir())

	t.Setenv("CI", "")
	skipped, failed := (&recorder{TB: t}).run(redistest.Require)
	if failed != "" || !strings.Contains(skipped, "apt-get install redis-server redis-tools") ||
		!strings.Contains(skipped, "./scripts/test.sh") {
		t.Errorf("Require without redis-server and CI: skipped %q, failed %q; want a skip saying how to install", skipped, failed)
	}

	t.Setenv("CI", "true")
	skipped, failed = (&recorder{TB: t}).run(redistest.Require)
	if skipped != "" || !strings.Contains(failed, "redis-server") {
		t.Errorf("Require without redis-server under CI: skipped %q, failed %q; want a failure", skipped, failed)
	}
}

func TestStartFailureShowsServerOutput(t *testing.T) {
	t.Parallel()
	_, failed := (&recorder{TB: t}).run(func(tb testing.TB) {
		redistest.Start(tb, redistest.WithArgs("--no-such-option", "x"))
	})
	if !strings.Contains(failed, "no-such-option") || !strings.Contains(failed, "Bad directive") {
		t.Errorf("Start with a bad option failed with %q, want the server's own error in the message", failed)
	}
}

func TestSentinels(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	ss := redistest.StartSentinels(t, "m", master, 1, 1)
	if addr, err := ss.Master(); err != nil || addr != master.Addr() {
		t.Fatalf("Master() = %q, %v; want %s", addr, err, master.Addr())
	}
	c := redis.NewFailoverClient(ss.FailoverOptions())
	defer c.Close()
	if err := c.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := replica.Client(t)
	redistest.Eventually(t, "the replica to have the write", func() bool {
		v, err := rc.Get(ctx(t), "k").Result()
		return err == nil && v == "v"
	})
}
