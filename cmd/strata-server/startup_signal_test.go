package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/tcpproxy"
)

// TestSignalDuringStart: a SIGTERM that comes while the server checks its
// tiers at start (a Redis that does not answer: up to readyTimeout) ends
// the process cleanly, exit 0, instead of killing it by the signal's
// default action (the server caught signals only once it served).
func TestSignalDuringStart(t *testing.T) {
	rs := redistest.Start(t)
	proxy, err := tcpproxy.New(rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Pause() // connections are accepted, nothing answers
	cmd := exec.Command(binary(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"STRATA_LISTEN=127.0.0.1:0", "LOG_REQUESTS=false",
		"DURABILITY_ENGINE=redis", "REDIS_URL=redis://" + proxy.Addr()}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logged := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	// The start-up check has reached Redis (through the paused proxy), and
	// the server has not started serving.
	waitFor(t, 20*time.Second, "the server to connect to Redis", func() bool { return proxy.NumConns() > 0 })
	if strings.Contains(logged(), `"msg":"listening"`) {
		t.Fatalf("the server was listening before the start-up check ended:\n%s", logged())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit %v after a SIGTERM during the start, want 0\n%s", err, logged())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM\n%s", logged())
	}
	if l := logged(); !strings.Contains(l, "stopped before serving") || strings.Contains(l, `"msg":"listening"`) {
		t.Fatalf("log:\n%s", l)
	}
}
