// Package tcpproxy is a small TCP proxy for fault injection in tests: it sits between a
// client and a real server (redis-server) and can add latency, hold all traffic (pause), and
// reset every connection, without any third-party dependency.
//
// Typical use:
//
//	p, err := tcpproxy.New(srv.Addr())
//	if err != nil { t.Fatal(err) }
//	t.Cleanup(func() { p.Close() })
//	opts := srv.Options()
//	opts.Addr = p.Addr() // the client talks to the proxy
//	p.SetLatency(20 * time.Millisecond) // slow network
//	p.Pause()                           // server "hangs": connections stay open, nothing moves
//	p.Resume()
//	p.ResetAll()                        // every connection is reset (RST) on both sides
package tcpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the largest piece of data read, delayed and written at once.
	chunkSize = 32 << 10
	// queuedChunks bounds how many chunks per direction are held while paused or delayed;
	// beyond that, TCP flow control pushes back on the sender.
	queuedChunks = 64
	// dialTimeout bounds the connection to the target.
	dialTimeout = 10 * time.Second
)

// Proxy forwards every connection accepted on a loopback port to a target address. Its
// methods are safe for concurrent use.
type Proxy struct {
	target  string
	ln      net.Listener
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup
	latency atomic.Int64 // time.Duration

	mu      sync.Mutex
	resumed chan struct{} // closed while forwarding; open while paused
	paused  bool
	links   map[*link]struct{}
	closed  bool
}

// New starts a proxy listening on 127.0.0.1 on a free port, forwarding each accepted
// connection to target (host:port), which is dialed once per accepted connection. If the
// target cannot be reached, the accepted connection is closed. New returns an error only when
// it cannot listen.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target:  target,
		ln:      ln,
		closing: make(chan struct{}),
		resumed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	close(p.resumed)
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr returns the address clients must connect to, "127.0.0.1:PORT".
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string {
	return p.target
}

// SetLatency sets a delay added to every chunk of data forwarded, in either direction: a
// chunk read at time T is written at T+d at the earliest (a round trip thus gains 2d). The
// delay applies to data read after the call; 0 means none.
func (p *Proxy) SetLatency(d time.Duration) {
	p.latency.Store(int64(max(d, 0)))
}

// Pause stops forwarding: connections stay open, data read from either side is held (and,
// once the proxy's buffers are full, the senders are pushed back by TCP). New connections are
// still accepted and dialed to the target, but no byte moves on them either. Resume releases
// everything held, in order.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resumed = make(chan struct{})
	}
}

// Resume undoes Pause. Resuming a proxy that is not paused does nothing.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

// ResetAll resets every current connection on both sides (a TCP RST, so the peers see
// "connection reset by peer" rather than an orderly end of stream) and drops the data held for
// them. New connections are still accepted. When ResetAll returns, NumConns no longer counts
// the reset connections.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
		delete(p.links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// NumConns returns the number of client connections the proxy currently holds.
func (p *Proxy) NumConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops the listener, closes every connection and waits until all the proxy's
// goroutines have ended. It returns the listener's close error, if any; calling it again
// returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	close(p.closing)
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
		delete(p.links, l)
	}
	p.mu.Unlock()

	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// acceptLoop accepts connections until Close and starts a forwarder for each.
func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closing:
				return
			case <-time.After(10 * time.Millisecond): // a transient error (EMFILE...): try again
				continue
			}
		}
		l := newLink(c)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Go(func() { p.serve(l) }) // Add happens before Close's Wait: both hold p.mu
		p.mu.Unlock()
	}
}

// serve dials the target for l and forwards both ways until both directions have ended or
// the link is closed.
func (p *Proxy) serve(l *link) {
	defer p.drop(l)
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(l.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !l.setServer(server) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.forward(l, l.client, server) })
	wg.Go(func() { p.forward(l, server, l.client) })
	wg.Wait()
}

// drop forgets l and closes it.
func (p *Proxy) drop(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
	l.close(false)
}

// chunk is a piece of data on its way, due to be written at due.
type chunk struct {
	data []byte
	due  time.Time
}

// forward copies src to dst through a bounded queue, honouring latency and pause. At the
// end of src it half-closes dst, so that the other direction may still finish; on any error
// it closes the whole link.
func (p *Proxy) forward(l *link, src, dst net.Conn) {
	queue := make(chan chunk, queuedChunks)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(queue)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{data: buf[:n], due: time.Now().Add(time.Duration(p.latency.Load()))}
				select {
				case queue <- c:
				case <-l.done:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					l.close(false)
				}
				return
			}
		}
	})
	for c := range queue {
		if !p.hold(l, c.due) {
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close(false)
			return
		}
	}
	select {
	case <-l.done:
	default:
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			l.close(false)
		}
	}
}

// hold waits until the proxy is not paused and due has passed. It returns false if the link
// was closed meanwhile.
func (p *Proxy) hold(l *link, due time.Time) bool {
	for {
		p.mu.Lock()
		resumed := p.resumed
		p.mu.Unlock()
		select {
		case <-resumed:
		case <-l.done:
			return false
		}
		if wait := time.Until(due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-l.done:
				timer.Stop()
				return false
			}
		}
		p.mu.Lock()
		paused := p.paused
		p.mu.Unlock()
		if !paused { // Pause may have come while we slept
			return true
		}
	}
}

// link is one proxied connection: the accepted client side and the dialed server side.
type link struct {
	client net.Conn
	ctx    context.Context // cancelled by close, so that a pending dial ends
	cancel context.CancelFunc
	done   chan struct{} // closed by close

	mu     sync.Mutex
	server net.Conn
	closed bool
}

func newLink(client net.Conn) *link {
	ctx, cancel := context.WithCancel(context.Background())
	return &link{client: client, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// setServer records the dialed server side; if the link was closed meanwhile it closes
// server and returns false.
func (l *link) setServer(server net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		server.Close()
		return false
	}
	l.server = server
	return true
}

// close closes both sides once; with reset, they are reset (RST) rather than closed.
func (l *link) close(reset bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	server := l.server
	l.mu.Unlock()

	close(l.done)
	l.cancel()
	for _, c := range []net.Conn{l.client, server} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0) // Close then sends RST
		}
		_ = c.Close()
	}
}
