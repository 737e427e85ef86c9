package redistest

import (
	"fmt"
	"net"
	"sync"
)

const (
	// defaultRedisPort is never used: a shared Redis may listen there.
	defaultRedisPort = 6379
	// maxPort keeps port+10000 (the cluster bus port) a valid port number.
	maxPort = 55535
	// clusterBusOffset is the distance from a cluster node's port to its bus port.
	clusterBusOffset = 10000
)

// reserved holds the ports handed out in this process and not yet released, so that tests
// running in parallel never pick the same one. Other processes (other test binaries) are
// handled by retrying when redis-server cannot bind.
var reserved struct {
	sync.Mutex
	ports map[int]bool
}

// reservePort picks a free loopback port below maxPort and reserves it in this process. With
// bus set, port+10000 must be free as well, and is reserved too.
func reservePort(bus bool) (int, error) {
	var lastErr error
	for range 100 {
		p, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		if p == defaultRedisPort || p >= maxPort {
			continue
		}
		if bus && !portFree(p+clusterBusOffset) {
			continue
		}
		reserved.Lock()
		if reserved.ports == nil {
			reserved.ports = make(map[int]bool)
		}
		if reserved.ports[p] || (bus && reserved.ports[p+clusterBusOffset]) {
			reserved.Unlock()
			continue
		}
		reserved.ports[p] = true
		if bus {
			reserved.ports[p+clusterBusOffset] = true
		}
		reserved.Unlock()
		return p, nil
	}
	return 0, fmt.Errorf("redistest: no free loopback port found (last error: %v)", lastErr)
}

// releasePort makes port (and its bus port, with bus set) available again.
func releasePort(port int, bus bool) {
	reserved.Lock()
	defer reserved.Unlock()
	delete(reserved.ports, port)
	if bus {
		delete(reserved.ports, port+clusterBusOffset)
	}
}

// freePort asks the kernel for a free port by listening on 127.0.0.1:0.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether a listener can be opened on 127.0.0.1:port right now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
