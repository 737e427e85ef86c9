package redistest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/testcerts"
)

const (
	// readyTimeout bounds how long a start waits for the server to answer.
	readyTimeout = 10 * time.Second
	// pollInterval is the pause between two readiness probes.
	pollInterval = 10 * time.Millisecond
	// probeTimeout bounds one readiness probe (dial, write, read).
	probeTimeout = 500 * time.Millisecond
	// startAttempts is how many fresh ports a start tries when the port is taken.
	startAttempts = 8
	// logTailLines is how much of the server's output goes into a failure message.
	logTailLines = 30
)

// Option changes how Start starts a server.
type Option func(*config)

// config is what the Options set.
type config struct {
	tls     bool
	args    []string
	cluster bool // internal: started by StartCluster
	// sentinel, when set, is the configuration file of a Sentinel
	// (internal: started by StartSentinel).
	sentinel string
}

// WithTLS makes the server listen with TLS only (--port 0, --tls-port P). A CA, a server
// certificate (IP SAN 127.0.0.1, DNS localhost) and a client certificate are generated for
// the test (ECDSA P-256) and written into the server's temporary directory.
//
// Client certificates are optional on the server side (--tls-auth-clients optional): a
// client that trusts the CA may connect without one. TLSConfig and Options present the client
// certificate anyway, so mutual TLS is exercised by default.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithArgs appends extra argv items to the redis-server command line, after the ones Start
// sets (so they win where Redis takes the last value). Each item is one argv element, with no
// shell quoting, for example an ACL user:
//
//	redistest.WithArgs("--user", "cacheapp", "on", ">secret", "~app:*", "&app:*", "+@all")
//
// WARNING: on Redis 7.0, '+client|setinfo' in an ACL rule makes the server refuse to start.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is a redis-server process started for a test. Its methods are safe for concurrent
// use; the ones that take a testing.TB fail that test when the operation fails.
type Server struct {
	port int
	dir  string
	cfg  config
	tls  *testcerts.Files

	mu      sync.Mutex
	proc    *process // nil while killed
	lastLog *logBuffer
	stopped bool // set by the cleanup: nothing may start again
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{} // closed once Wait returned
	err    error         // what Wait returned, readable after exited is closed
}

// Start starts a standalone redis-server on a free loopback port, in t.TempDir(), with
// --bind 127.0.0.1 --port P --save ” --appendonly no --dir D --daemonize no (plus what the
// options add). It returns once the server answers PING, and registers a t.Cleanup that kills
// the process by its PID and waits for it. Start calls Require first, and fails the test, with
// the tail of the server's output, when the server cannot be started within about 10 s.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	Require(t)
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	return start(t, cfg)
}

// start starts a server with cfg; see Start.
func start(t testing.TB, cfg config) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir(), cfg: cfg}
	if cfg.tls {
		f, err := testcerts.Write(s.dir, "redistest")
		if err != nil {
			t.Fatalf("redistest: generate TLS certificates: %v", err)
		}
		s.tls = f
	}
	t.Cleanup(s.cleanup)

	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range startAttempts {
		s.port, err = reservePort(cfg.cluster)
		if err != nil {
			break
		}
		err = s.launch()
		if err == nil {
			return s
		}
		releasePort(s.port, cfg.cluster)
		s.port = 0
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// errPortInUse says that redis-server could not bind its port (or its cluster bus port).
var errPortInUse = errors.New("address already in use")

// args returns the redis-server command line for the current port.
func (s *Server) args() []string {
	port := strconv.Itoa(s.port)
	args := []string{"--bind", "127.0.0.1", "--port", port}
	if s.tls != nil {
		args = []string{
			"--bind", "127.0.0.1", "--port", "0", "--tls-port", port,
			"--tls-cert-file", s.tls.CertFile,
			"--tls-key-file", s.tls.KeyFile,
			"--tls-ca-cert-file", s.tls.CAFile,
			"--tls-auth-clients", "optional",
		}
	}
	if s.cfg.sentinel != "" {
		// A Sentinel rewrites its configuration file, the first argument.
		args = append([]string{s.cfg.sentinel, "--sentinel"}, args...)
	}
	args = append(args, "--save", "", "--appendonly", "no", "--dir", s.dir, "--daemonize", "no")
	if s.cfg.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
		)
	}
	return append(args, s.cfg.args...)
}

// launch starts redis-server on s.port and waits until it answers. On failure the process
// is killed and waited for, and the error carries the tail of its output. s.mu must be held.
func (s *Server) launch() error {
	log := &logBuffer{}
	s.lastLog = log
	cmd := exec.Command("redis-server", s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // a forked child holding the output pipe must not block Wait
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec redis-server: %w", err)
	}
	p := &process{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := s.waitReady(p); err != nil {
		p.kill()
		if strings.Contains(log.String(), "Address already in use") {
			return fmt.Errorf("port %d: %w\n%s", s.port, errPortInUse, log.tail(logTailLines))
		}
		return fmt.Errorf("%s on port %d: %w; redis-server output:\n%s",
			strings.Join(cmd.Args, " "), s.port, err, log.tail(logTailLines))
	}
	s.proc = p
	return nil
}

// waitReady polls until p answers PING and is known to be the process listening on s.port
// (its log says it is ready, or INFO reports its PID), or p exits, or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		if lastErr = s.probe(p); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", readyTimeout, lastErr)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited: %v", p.err)
		case <-time.After(pollInterval):
		}
	}
}

// probe returns nil when p is up and answering on s.port.
func (s *Server) probe(p *process) error {
	select {
	case <-p.exited:
		return fmt.Errorf("redis-server exited: %v", p.err)
	default:
	}
	_, err := command(s.Addr(), s.TLSConfig(), probeTimeout, "PING")
	var re replyError
	if err != nil && !errors.As(err, &re) { // an error reply (NOAUTH...) is an answer too
		return err
	}
	// Another process may hold the port (our server then fails to bind and exits): make sure
	// the answer came from p.
	if strings.Contains(p.log.String(), "Ready to accept connections") {
		return nil
	}
	info, err := command(s.Addr(), s.TLSConfig(), probeTimeout, "INFO", "server")
	if err == nil {
		if pid, _ := infoField(info, "process_id"); pid == strconv.Itoa(p.cmd.Process.Pid) {
			return nil
		}
	}
	return errors.New("the server answering is not (yet) ours")
}

// kill sends SIGKILL to the process and waits until it has exited.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// cleanup kills the server for good; it is registered with t.Cleanup by Start.
func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	if s.port != 0 {
		releasePort(s.port, s.cfg.cluster)
	}
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return "127.0.0.1:" + strconv.Itoa(s.port)
}

// Port returns the server's port (the TLS port with WithTLS). It stays the same across
// Kill and Restart.
func (s *Server) Port() int {
	return s.port
}

// URL returns "redis://127.0.0.1:PORT", or "rediss://127.0.0.1:PORT" with WithTLS.
//
// WARNING: a client built from the URL alone (redis.ParseURL) does not trust the test CA;
// set its TLSConfig from TLSConfig.
func (s *Server) URL() string {
	if s.tls != nil {
		return "rediss://" + s.Addr()
	}
	return "redis://" + s.Addr()
}

// TLSConfig returns a fresh client TLS configuration that trusts the test CA, expects the
// server name 127.0.0.1 and presents the test client certificate. It returns nil for a server
// started without WithTLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Client.Clone()
}

// CAFile returns the path of the test CA certificate (PEM), or "" without WithTLS.
func (s *Server) CAFile() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.CAFile
}

// Options returns a fresh copy of go-redis options that connect to the server (Addr, and
// TLSConfig with WithTLS); the caller may change them freely.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Addr: s.Addr(), TLSConfig: s.TLSConfig()}
}

// Client returns a new go-redis client for the server, closed by t.Cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Log returns what the current (or last) redis-server process has written to its stdout
// and stderr, up to its last 256 KiB.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastLog == nil {
		return ""
	}
	return s.lastLog.String()
}

// PID returns the process id of the running redis-server, or 0 while it is killed.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Kill sends SIGKILL to the server and waits until it has exited. Its port stays reserved for
// Restart. Killing a server that is already killed does nothing.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Restart starts the server again on the same port, with the same options, and waits until
// it answers. The data is gone (a server still running is killed first). Restart fails the
// test when the port cannot be bound again within about 10 s or the server does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("redistest: Restart of %s after the test's cleanup", s.Addr())
	}
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	// Make sure nothing is loaded from disk, whatever the test did (SAVE, CONFIG SET).
	for _, name := range []string{"dump.rdb", "appendonly.aof", "appendonlydir"} {
		_ = os.RemoveAll(filepath.Join(s.dir, name))
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond) // someone else holds the port: try again shortly
	}
}

// Suspend sends SIGSTOP to the server: it stops answering, while its connections stay open
// (commands time out instead of failing). Resume undoes it.
func (s *Server) Suspend(t testing.TB) {
	t.Helper()
	s.signal(t, sigStop)
}

// Resume sends SIGCONT to a server stopped by Suspend.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, sigCont)
}

// signal sends sig to the running server, failing the test if it is not running.
func (s *Server) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatalf("redistest: signal %v to %s: the server is not running", sig, s.Addr())
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redistest: signal %v to %s: %v", sig, s.Addr(), err)
	}
}
