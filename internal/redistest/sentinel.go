package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinels are Redis Sentinel processes watching one master, started for a test by
// StartSentinels. Each is a Server (Kill, Restart, Addr, Log) in Sentinel mode.
type Sentinels struct {
	// MasterName is the name the sentinels know the master by.
	MasterName string
	// Servers are the sentinel processes.
	Servers []*Server
}

// StartReplica starts a standalone server that replicates master and waits until its link to
// the master is up.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(master.Addr())
	// The master sends its data at once, not after diskless sync's 5 s delay.
	if _, err := command(master.Addr(), master.TLSConfig(), probeTimeout, "CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("redistest: CONFIG SET on the master: %v", err)
	}
	r := Start(t, WithArgs("--replicaof", host, port))
	Eventually(t, "the replica of "+master.Addr()+" to sync", func() bool {
		info, err := command(r.Addr(), nil, probeTimeout, "INFO", "replication")
		if err != nil {
			return false
		}
		status, _ := infoField(info, "master_link_status")
		return status == "up"
	})
	return r
}

// StartSentinels starts n sentinels that monitor master under masterName with a quorum of
// quorum, and a down-after of 500 ms and a failover timeout of 2 s, so that a test's failover
// happens within a few seconds. It returns once every sentinel knows the master.
func StartSentinels(t testing.TB, masterName string, master *Server, n, quorum int) *Sentinels {
	t.Helper()
	Require(t)
	host, port, _ := net.SplitHostPort(master.Addr())
	ss := &Sentinels{MasterName: masterName}
	for i := range n {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s %[4]d\n"+
			"sentinel down-after-milliseconds %[1]s 500\n"+
			"sentinel failover-timeout %[1]s 2000\n"+
			"sentinel parallel-syncs %[1]s 1\n", masterName, host, port, quorum)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("redistest: sentinel %d: %v", i, err)
		}
		ss.Servers = append(ss.Servers, start(t, config{sentinel: conf}))
	}
	for _, s := range ss.Servers {
		Eventually(t, "sentinel "+s.Addr()+" to know the master", func() bool {
			addr, err := ss.masterOf(s)
			return err == nil && addr == master.Addr()
		})
	}
	return ss
}

// Addrs returns the sentinels' addresses.
func (ss *Sentinels) Addrs() []string {
	addrs := make([]string, len(ss.Servers))
	for i, s := range ss.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Master returns the address of the master according to the first sentinel that answers.
func (ss *Sentinels) Master() (string, error) {
	var err error
	for _, s := range ss.Servers {
		var addr string
		if addr, err = ss.masterOf(s); err == nil {
			return addr, nil
		}
	}
	return "", err
}

func (ss *Sentinels) masterOf(s *Server) (string, error) {
	reply, err := command(s.Addr(), nil, probeTimeout, "SENTINEL", "get-master-addr-by-name", ss.MasterName)
	if err != nil {
		return "", err
	}
	parts := strings.Fields(reply)
	if len(parts) != 2 {
		return "", fmt.Errorf("redistest: unexpected reply %q", reply)
	}
	return net.JoinHostPort(parts[0], parts[1]), nil
}

// FailoverOptions returns the options of a go-redis failover client on the sentinels, with
// the short timeouts of FastClient.
func (ss *Sentinels) FailoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:    ss.MasterName,
		SentinelAddrs: ss.Addrs(),
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
	}
}
