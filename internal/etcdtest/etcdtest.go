// Package etcdtest starts real etcd processes for tests: one member or a
// cluster, on free loopback ports, in temporary directories, stopped by the
// test's cleanup. Faults are real: Kill and Restart. It needs no etcd client
// (readiness is etcd's /health over HTTP), so that any module of the
// repository can start etcd; the etcd module's own harness
// (etcd/internal/etcdtest) adds clients, compaction and authentication.
package etcdtest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/testcerts"
)

const (
	readyTimeout  = 20 * time.Second
	installHint   = "install it with `sudo apt-get install etcd-server` or run ./scripts/test.sh, which installs it"
	startAttempts = 5
)

// Require checks that etcd is on PATH. When it is not, it skips the test,
// unless the environment variable CI is non-empty: then it fails it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("etcdtest: etcd not found on PATH (CI is set, so this is a failure): %s", installHint)
	}
	t.Skipf("etcdtest: etcd not found on PATH, skipping: %s", installHint)
}

// Option changes how a member starts.
type Option func(*config)

type config struct {
	tls bool
}

// WithTLS makes the members serve clients over TLS only, with a CA and
// certificates generated for the test (client certificates required).
func WithTLS() Option { return func(c *config) { c.tls = true } }

// Cluster is a set of etcd members started for a test.
type Cluster struct {
	Members []*Member
	tls     *testcerts.Files
}

// Member is one etcd process. Its methods are safe for concurrent use.
type Member struct {
	name       string
	clientPort int
	peerPort   int
	dir        string
	args       []string
	tls        *testcerts.Files

	mu   sync.Mutex
	cmd  *exec.Cmd
	wait chan struct{}
	log  *bytes.Buffer
}

// Start starts a single member.
func Start(t testing.TB, opts ...Option) *Member {
	t.Helper()
	return StartCluster(t, 1, opts...).Members[0]
}

// StartCluster starts n members forming one cluster and waits until it
// answers.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	Require(t)
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	var lastErr error
	for range startAttempts {
		c, err := tryStart(t, n, cfg)
		if err == nil {
			return c
		}
		lastErr = err
	}
	t.Fatalf("etcdtest: start %d member(s): %v", n, lastErr)
	return nil
}

func tryStart(t testing.TB, n int, cfg config) (*Cluster, error) {
	root := t.TempDir()
	c := &Cluster{}
	if cfg.tls {
		f, err := testcerts.Write(root, "etcdtest")
		if err != nil {
			return nil, err
		}
		c.tls = f
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		m := &Member{name: fmt.Sprintf("m%d", i), clientPort: ports[2*i], peerPort: ports[2*i+1],
			dir: filepath.Join(root, fmt.Sprintf("m%d", i)), tls: c.tls}
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
		c.Members = append(c.Members, m)
	}
	scheme := "http"
	if cfg.tls {
		scheme = "https"
	}
	for _, m := range c.Members {
		url := fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.clientPort)
		m.args = []string{
			"--name", m.name, "--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", url, "--advertise-client-urls", url,
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peerPort),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peerPort),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(root),
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-level", "warn", "--log-outputs", "stderr",
			"--snapshot-count", "100000",
		}
		if cfg.tls {
			m.args = append(m.args, "--cert-file", c.tls.CertFile, "--key-file", c.tls.KeyFile,
				"--trusted-ca-file", c.tls.CAFile, "--client-cert-auth")
		}
		if err := m.start(); err != nil {
			c.kill()
			return nil, err
		}
	}
	t.Cleanup(c.kill)
	for _, m := range c.Members {
		if err := m.waitReady(); err != nil {
			c.kill()
			return nil, err
		}
	}
	return c, nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		p := l.Addr().(*net.TCPAddr).Port
		if p == 2379 || p == 2380 {
			continue
		}
		ports = append(ports, p)
	}
	return ports, nil
}

func (c *Cluster) kill() {
	for _, m := range c.Members {
		m.Kill()
	}
}

// Endpoints returns the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint())
	}
	return eps
}

// Endpoint returns the member's client URL.
func (m *Member) Endpoint() string {
	scheme := "http"
	if m.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.clientPort)
}

// Addr returns the member's client address, host:port.
func (m *Member) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.clientPort) }

// TLSConfig returns a client TLS config trusting the test CA and presenting
// a client certificate, or nil without TLS.
func (m *Member) TLSConfig() *tls.Config {
	if m.tls == nil {
		return nil
	}
	return m.tls.Client.Clone()
}

// TLSConfig returns the cluster's client TLS config (see Member.TLSConfig).
func (c *Cluster) TLSConfig() *tls.Config { return c.Members[0].TLSConfig() }

func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command("etcd", m.args...)
	m.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &m.mu, b: m.log}, &lockedWriter{mu: &m.mu, b: m.log}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("etcdtest: start etcd: %w", err)
	}
	wait := make(chan struct{})
	go func() { _ = cmd.Wait(); close(wait) }() // its status: the process is ours to kill
	m.cmd, m.wait = cmd, wait
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 1<<20 {
		w.b.Reset()
	}
	return w.b.Write(p)
}

// waitReady polls the member's /health until it reports healthy (it has a
// leader and answers a read).
func (m *Member) waitReady() error {
	tr := &http.Transport{TLSClientConfig: m.TLSConfig()}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(readyTimeout)
	for {
		err := m.healthy(hc)
		if err == nil {
			return nil
		}
		m.mu.Lock()
		exited := m.wait
		m.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("etcdtest: etcd exited: %s", m.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcdtest: etcd not ready after %s (%v): %s", readyTimeout, err, m.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthy asks the member's /health once.
func (m *Member) healthy(hc *http.Client) error {
	resp, err := hc.Get(m.Endpoint() + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		return fmt.Errorf("/health: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

func (m *Member) logTail() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.log.String()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// Kill kills the member (SIGKILL) and waits for it to exit. Killing a
// member that is not running does nothing.
func (m *Member) Kill() {
	m.mu.Lock()
	cmd, wait := m.cmd, m.wait
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // already gone is fine: Wait follows
	<-wait
}

// Pause stops the member's process (SIGSTOP): its sockets stay open and the
// kernel still accepts connections, but nothing answers, as with a member
// hung on a disk or a partition that drops packets. Resume undoes it; Kill
// and the test's cleanup also end a paused member.
func (m *Member) Pause(t testing.TB) {
	t.Helper()
	m.signal(t, syscall.SIGSTOP)
}

// Resume continues a paused member (SIGCONT).
func (m *Member) Resume(t testing.TB) {
	t.Helper()
	m.signal(t, syscall.SIGCONT)
}

func (m *Member) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil {
		t.Fatalf("etcdtest: %s: member %s is not running", sig, m.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("etcdtest: %s: %v", sig, err)
	}
}

// Metric returns the sum of the values of the member's Prometheus metric
// name (every label set), read from its /metrics; an error when the member
// does not answer or has no such metric.
func (m *Member) Metric(name string) (float64, error) {
	tr := &http.Transport{TLSClientConfig: m.TLSConfig()}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := hc.Get(m.Endpoint() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err != nil {
			return 0, fmt.Errorf("etcdtest: metric %s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("etcdtest: no metric %s", name)
	}
	return sum, nil
}

// Restart starts a killed member again on the same ports and data, and
// waits until it answers.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	m.Kill()
	// The restarted member joins its existing cluster from its data dir.
	for i, a := range m.args {
		if a == "--initial-cluster-state" {
			m.args[i+1] = "existing"
		}
	}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	if err := m.waitReady(); err != nil {
		t.Fatal(err)
	}
}
