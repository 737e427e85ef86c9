package tcpproxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startEcho starts a TCP echo server; the test's cleanup stops it and waits for its
// goroutines.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(c, c)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// newProxy starts a proxy to target, closed by the test's cleanup.
func newProxy(t *testing.T, target string) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.New(target)
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// dial connects to the proxy, closed by the test's cleanup.
func dial(t *testing.T, p *tcpproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads the same number of bytes back, within 10 s.
func roundTrip(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	return got
}

// expectSilence checks that nothing arrives on c for a short while.
func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(150 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read = %d bytes, %v; want nothing (a timeout)", n, err)
	}
}

// expectClosed checks that c is ended by the peer (EOF or a reset) within 5 s.
func expectClosed(t *testing.T, c net.Conn) error {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 5 s")
	}
	if err == nil {
		err = io.EOF // io.Copy reports EOF as nil
	}
	return err
}

func TestForwardsBothWays(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startEcho(t))
	if p.Addr() == "" || p.Target() == "" {
		t.Fatalf("Addr() = %q, Target() = %q", p.Addr(), p.Target())
	}
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t, p)
		wg.Go(func() {
			msg := make([]byte, 1<<20) // many chunks
			_, _ = rand.Read(msg)
			if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Error(err)
				return
			}
			var got []byte
			var rwg sync.WaitGroup
			rwg.Go(func() { got, _ = io.ReadAll(io.LimitReader(c, int64(len(msg)))) })
			if _, err := c.Write(msg); err != nil {
				t.Errorf("write: %v", err)
			}
			rwg.Wait()
			if !bytes.Equal(got, msg) {
				t.Errorf("echo of 1 MiB: got %d bytes, equal=%v", len(got), bytes.Equal(got, msg))
			}
		})
	}
	wg.Wait()
	if n := p.NumConns(); n != 4 {
		t.Errorf("NumConns() = %d, want 4", n)
	}
}

func TestHalfCloseIsForwarded(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startEcho(t))
	c := dial(t, p)
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read after half-close = %q, %v; want \"bye\", nil", got, err)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startEcho(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("warm"))
	const d = 50 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if got := roundTrip(t, c, []byte("ping")); string(got) != "ping" {
		t.Fatalf("echo = %q, want \"ping\"", got)
	}
	// A lower bound only: each direction waits d at least.
	if took := time.Since(start); took < 2*d {
		t.Fatalf("round trip with latency %v took %v, want at least %v", d, took, 2*d)
	}
	p.SetLatency(0)
	if got := roundTrip(t, c, []byte("pong")); string(got) != "pong" {
		t.Fatalf("echo = %q, want \"pong\"", got)
	}
}

func TestPauseHoldsDataAndResumeDeliversIt(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startEcho(t))
	old := dial(t, p)
	roundTrip(t, old, []byte("x"))

	p.Pause()
	p.Pause() // idempotent
	if _, err := old.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, old)
	// A new connection is accepted while paused, but held too.
	fresh := dial(t, p)
	if _, err := fresh.Write([]byte("also held")); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, fresh)

	p.Resume()
	p.Resume() // idempotent
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{old, "held"}, {fresh, "also held"}} {
		if err := tc.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(tc.want))
		if _, err := io.ReadFull(tc.c, got); err != nil || string(got) != tc.want {
			t.Fatalf("after Resume read %q, %v; want %q", got, err, tc.want)
		}
	}
}

func TestResetAll(t *testing.T) {
	t.Parallel()
	p := newProxy(t, startEcho(t))
	a, b := dial(t, p), dial(t, p)
	roundTrip(t, a, []byte("a"))
	roundTrip(t, b, []byte("b"))

	p.ResetAll()
	if n := p.NumConns(); n != 0 {
		t.Errorf("NumConns() after ResetAll = %d, want 0", n)
	}
	for _, c := range []net.Conn{a, b} {
		if err := expectClosed(t, c); !isReset(err) {
			t.Errorf("read after ResetAll: %v, want connection reset by peer", err)
		}
	}
	// New connections still work.
	c := dial(t, p)
	if got := roundTrip(t, c, []byte("again")); string(got) != "again" {
		t.Fatalf("echo after ResetAll = %q, want \"again\"", got)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

func TestTargetDownClosesClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there any more
	p := newProxy(t, target)
	c := dial(t, p)
	expectClosed(t, c)
}

func TestCloseEndsEverything(t *testing.T) { // not parallel: it checks for leaks itself
	echo := startEcho(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := tcpproxy.New(echo)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	roundTrip(t, c, []byte("x"))
	held := dial(t, p)
	p.Pause()
	if _, err := held.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(time.Hour) // Close must not wait for it

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectClosed(t, c)
	expectClosed(t, held)
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial after Close succeeded, want refused")
	}
}

func TestRedisThroughProxy(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := newProxy(t, srv.Addr())
	opts := srv.Options()
	opts.Addr = p.Addr()
	opts.ReadTimeout = time.Second
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the proxy: %v", err)
	}

	p.Pause()
	err := rdb.Get(ctx, "k").Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("GET while paused = %v, want a timeout", err)
	}
	p.Resume()
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after Resume = %q, %v; want \"v\", nil", got, err)
	}

	conn := rdb.Conn() // one connection, kept across the reset
	defer conn.Close()
	if err := conn.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	p.ResetAll()
	if err := conn.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING on a connection reset by the proxy succeeded, want an error")
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET on a new connection after ResetAll = %q, %v; want \"v\", nil", got, err)
	}

	const d = 40 * time.Millisecond
	p.SetLatency(d)
	slow := srv.Options()
	slow.Addr = p.Addr()
	slowClient := redis.NewClient(slow)
	defer slowClient.Close()
	if err := slowClient.Ping(ctx).Err(); err != nil { // connect outside the measurement
		t.Fatalf("PING: %v", err)
	}
	start := time.Now()
	if err := slowClient.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with latency: %v", err)
	}
	if took := time.Since(start); took < 2*d {
		t.Fatalf("PING with latency %v took %v, want at least %v", d, took, 2*d)
	}
}
