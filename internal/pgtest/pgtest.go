// Package pgtest starts real PostgreSQL servers for tests: initdb and pg_ctl
// in a temporary directory, listening on a free loopback port, stopped and
// removed by the test's cleanup. Faults are real: Kill (an immediate
// shutdown) and Restart on the same port and data. A machine's own
// PostgreSQL (5432) is never used.
//
// initdb refuses to run as root, so as root the server runs as the
// "postgres" user (Debian's package creates it) in a directory it owns.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/testcerts"
)

const (
	installHint   = "install it with `sudo apt-get install postgresql` or run ./scripts/test.sh, which installs it"
	startAttempts = 3
	// User is the superuser of every server (trust authentication on
	// loopback, no password, unless the server was started by
	// StartWithPassword).
	User = "test"
)

// Require checks that initdb and pg_ctl can be found. When they cannot, it
// skips the test, unless the environment variable CI is non-empty: then it
// fails it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := binDir(); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: initdb not found (CI is set, so this is a failure): %s", installHint)
	}
	t.Skipf("pgtest: initdb not found, skipping: %s", installHint)
}

// binDir returns the directory of initdb: on PATH, else Debian's
// /usr/lib/postgresql/<version>/bin (not on PATH by default).
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", fmt.Errorf("pgtest: initdb not found")
	}
	return filepath.Dir(dirs[len(dirs)-1]), nil // the highest version
}

// Server is one PostgreSQL server started for a test. Its methods are safe
// for concurrent use.
type Server struct {
	port int
	dir  string // data directory and socket directory live under it
	bin  string
	as   *user.User // nil: run as the current user
	tls  *testcerts.Files

	mu      sync.Mutex
	running bool
	paused  []int // processes stopped by Pause
	log     bytes.Buffer
}

// Start starts a server and waits until it accepts connections. The
// cleanup stops it and removes its directory.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, options{})
}

// StartWithPassword is Start for a server whose TCP connections must
// authenticate User with password (SCRAM-SHA-256). URL does not hold the
// password.
func StartWithPassword(t testing.TB, password string) *Server {
	t.Helper()
	if password == "" {
		t.Fatal("pgtest: StartWithPassword with an empty password")
	}
	return start(t, options{password: password})
}

// StartWithTLS is Start for a server that also accepts TLS (ssl=on), with a
// certificate for 127.0.0.1 and localhost issued by a test CA (CAFile). URL
// does not ask for TLS; add sslmode=verify-full&sslrootcert=CAFile().
func StartWithTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, options{tls: true})
}

// options are what the Start functions vary.
type options struct {
	password string // non-empty: SCRAM on TCP
	tls      bool
}

func start(t testing.TB, o options) *Server {
	t.Helper()
	Require(t)
	var lastErr error
	for range startAttempts {
		s, err := tryStart(t, o)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("pgtest: start: %v", lastErr)
	return nil
}

func tryStart(t testing.TB, o options) (*Server, error) {
	password := o.password
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user: %w", err)
		}
	}
	// Not t.TempDir(): its parents are private to root, and the server may
	// run as another user.
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = os.RemoveAll(s.dir) })
	if err := s.chown(s.dir); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if s.port == 5432 {
		return nil, fmt.Errorf("pgtest: got port 5432, trying again")
	}
	auth := []string{"-A", "trust"}
	if password != "" {
		pwfile := filepath.Join(s.dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := s.chown(pwfile); err != nil {
			return nil, err
		}
		auth = []string{"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile}
	}
	args := append([]string{"-D", s.dataDir()}, auth...)
	if err := s.run("initdb", append(args, "-U", User, "--no-sync", "-E", "UTF8", "--locale", "C")...); err != nil {
		return nil, err
	}
	if o.tls {
		f, err := testcerts.Write(s.dir, "pgtest")
		if err != nil {
			return nil, err
		}
		for _, p := range []string{f.CertFile, f.KeyFile, f.CAFile} {
			if err := s.chown(p); err != nil {
				return nil, err
			}
		}
		if err := os.Chmod(f.KeyFile, 0o600); err != nil { // PostgreSQL refuses a key others can read
			return nil, err
		}
		s.tls = f
	}
	t.Cleanup(s.Kill)
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// CAFile returns the PEM file of the CA that issued the certificate of a
// server started by StartWithTLS, or "" for another server.
func (s *Server) CAFile() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.CAFile
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// chown gives path to the server's user (nothing to do without one).
func (s *Server) chown(path string) error {
	if s.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.as.Uid)
	gid, _ := strconv.Atoi(s.as.Gid)
	return os.Chown(path, uid, gid)
}

// run runs a PostgreSQL program as the server's user and keeps its output
// for errors.
func (s *Server) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	out, err := cmd.CombinedOutput()
	s.mu.Lock()
	s.log.Write(out)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", prog, err, tail(out))
	}
	return nil
}

// start starts the server on its port and waits until it accepts
// connections (pg_ctl -w).
func (s *Server) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
		s.port, s.dir)
	if s.tls != nil {
		opts += fmt.Sprintf(" -c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s", s.tls.CertFile, s.tls.KeyFile)
	}
	if err := s.run("pg_ctl", "-D", s.dataDir(), "-o", opts, "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "30", "start"); err != nil {
		return fmt.Errorf("%w\nserver log: %s", err, s.serverLog())
	}
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	return nil
}

// Kill stops the server at once (pg_ctl stop -m immediate: no checkpoint,
// every connection dropped, as a crash would) and waits for it. Killing a
// server that is not running does nothing.
func (s *Server) Kill() {
	s.resume()
	s.mu.Lock()
	running := s.running
	s.running = false
	s.mu.Unlock()
	if running {
		_ = s.run("pg_ctl", "-D", s.dataDir(), "-m", "immediate", "-w", "-t", "30", "stop")
	}
}

// Pause stops every process of the server (SIGSTOP: the postmaster first,
// so that it forks no more, then each of its children): connections stay
// open and the kernel still accepts new ones, but nothing answers, as with
// a server hung on its disk or a host that froze. Resume undoes it; Kill
// and the test's cleanup resume a paused server first.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.dataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatalf("pgtest: pause: %v", err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("pgtest: pause: postmaster.pid: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("pgtest: pause: %v", err)
	}
	s.paused = append(s.paused, pid)
	for _, c := range children(pid) {
		if syscall.Kill(c, syscall.SIGSTOP) == nil {
			s.paused = append(s.paused, c)
		}
	}
}

// Resume continues the processes Pause stopped.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.resume()
}

func (s *Server) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.paused) - 1; i >= 0; i-- { // the children, then the postmaster
		_ = syscall.Kill(s.paused[i], syscall.SIGCONT) // gone already: nothing to continue
	}
	s.paused = nil
}

// children returns the processes whose parent is pid (from /proc).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// its closing parenthesis.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// Restart starts a killed server again on the same port and data, and
// waits until it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	var err error
	for range startAttempts {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may still be held by the old process's sockets
	}
	t.Fatal(err)
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// URL returns a connection URL for User on the database postgres, without
// TLS.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable", User, s.Addr())
}

func (s *Server) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return tail(b)
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
