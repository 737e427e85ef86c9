package pgtest_test

import (
	"net"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/pgtest"
)

// dial reports whether the server accepts a TCP connection.
func dial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestStartKillRestart(t *testing.T) {
	s := pgtest.Start(t)
	if !dial(s.Addr()) {
		t.Fatalf("server at %s does not accept connections", s.Addr())
	}
	s.Kill()
	if dial(s.Addr()) {
		t.Fatal("server still accepts connections after Kill")
	}
	s.Restart(t)
	if !dial(s.Addr()) {
		t.Fatal("server does not accept connections after Restart")
	}
}
