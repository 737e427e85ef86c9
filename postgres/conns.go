package postgres

import (
	"context"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// connSet keeps the network connections dialed for a pool or a backplane,
// so that closing it ends every one of them at once.
//
// pgx closes a connection whose statement ended with its context (a
// timeout against a server that does not answer) in the background: it
// sends a cancel request on a new connection and waits up to 15 s for the
// server to answer it and to close the session. Against a hung server that
// goroutine lives the whole 15 s, and pgxpool.Pool.Close waits for it; a
// closed tier or backplane would wait for, or leave behind, what only the
// server's answer ends. Closing the sockets ends those waits at once.
type connSet struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// dial returns a DialFunc that dials with inner and keeps the connection
// in s until it is closed. After closeAll, it refuses to dial.
func (s *connSet) dial(inner pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		if s.conns == nil {
			s.conns = make(map[*trackedConn]struct{})
		}
		tc := &trackedConn{Conn: c, set: s}
		s.conns[tc] = struct{}{}
		return tc, nil
	}
}

// closeAll closes every connection of s and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// trackedConn is a connection of a connSet; Close removes it.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}
