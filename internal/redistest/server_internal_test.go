package redistest

import (
	"errors"
	"net"
	"testing"
)

// TestLaunchReportsPortInUse checks the signal Start relies on to retry on another port:
// a redis-server that cannot bind its port is reported as errPortInUse, and is not mistaken
// for ready because something answers there.
func TestLaunchReportsPortInUse(t *testing.T) {
	Require(t)
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{dir: t.TempDir(), port: ln.Addr().(*net.TCPAddr).Port}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.launch()
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("launch on a busy port = %v, want errPortInUse", err)
	}
	if s.proc != nil {
		t.Fatalf("launch on a busy port left a process behind (PID %d)", s.proc.cmd.Process.Pid)
	}
}
