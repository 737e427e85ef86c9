package etcd_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/etcd/internal/etcdtest"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
)

func newL2(t testing.TB, c *clientv3.Client) *etcd.L2 {
	t.Helper()
	s, err := etcd.NewL2(c, etcd.L2Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestL2NewestWins(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	s := newL2(t, cli)
	c := ctx(t)

	if b, err := s.Get(c, "k"); err != nil || b != nil {
		t.Fatalf("Get of a missing key = %v, %v; want nil, nil", b, err)
	}
	if w, err := s.Set(c, "k", env(200, []byte("new")), time.Minute); err != nil || !w {
		t.Fatalf("first Set = %v, %v", w, err)
	}
	if w, err := s.Set(c, "k", env(100, []byte("old")), time.Minute); err != nil || w {
		t.Fatalf("older Set = %v, %v; want false, nil", w, err)
	}
	b, _ := s.Get(c, "k")
	if got := tsOf(t, b); got != 200 {
		t.Fatalf("stored timestamp %d after an older write; want 200", got)
	}
	if w, err := s.Set(c, "k", env(200, []byte("same")), time.Minute); err != nil || !w {
		t.Fatalf("Set with an equal timestamp = %v, %v; want true (equal overwrites)", w, err)
	}

	// Binary values are stored as bytes.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	bin = append(bin, 0xff, 0xfe, 0xc3, 0x28) // invalid UTF-8 too
	if _, err := s.Set(c, "bin", env(1, bin), time.Minute); err != nil {
		t.Fatal(err)
	}
	b, _ = s.Get(c, "bin")
	e, err := envelope.Decode(b)
	if err != nil || !bytes.Equal(e.Value, bin) {
		t.Fatalf("binary value changed on the way: %v", err)
	}

	// A corrupt value that looks newer (valid header, bad checksum) never wins.
	corrupt := env(1<<60, []byte("x"))
	corrupt[len(corrupt)-1] ^= 0xff
	if _, err := cli.Put(c, "bad", string(corrupt)); err != nil {
		t.Fatal(err)
	}
	if w, err := s.Set(c, "bad", env(5, []byte("good")), time.Minute); err != nil || !w {
		t.Fatalf("Set over a corrupt value = %v, %v; want true", w, err)
	}
	b, _ = s.Get(c, "bad")
	if tsOf(t, b) != 5 {
		t.Fatal("the corrupt value was kept")
	}
	// Foreign data and a negative timestamp are replaced too.
	for _, foreign := range [][]byte{[]byte("hello"), {0xff, 0xff}, append([]byte{envelope.Magic, envelope.Version, 0x80}, make([]byte, 60)...)} {
		cli.Put(c, "foreign", string(foreign))
		if w, err := s.Set(c, "foreign", env(5, nil), time.Minute); err != nil || !w {
			t.Fatalf("Set over %x = %v, %v; want true", foreign, w, err)
		}
	}

	// Bad input is refused and changes nothing.
	if _, err := s.Set(c, "k", []byte("not an envelope at all, not even close........"), time.Minute); !errors.Is(err, etcd.ErrNotEnvelope) {
		t.Fatalf("Set of a non-envelope: %v", err)
	}
	if _, err := s.Set(c, "k", env(999, nil), 0); !errors.Is(err, etcd.ErrInvalidTTL) {
		t.Fatalf("Set with ttl 0: %v", err)
	}
	b, _ = s.Get(c, "k")
	if tsOf(t, b) != 200 {
		t.Fatal("refused writes changed the key")
	}
	if err := s.Delete(c, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "k"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if b, _ := s.Get(c, "k"); b != nil {
		t.Fatal("key still there after Delete")
	}
}

func TestL2ValueTooLarge(t *testing.T) {
	m := etcdtest.Start(t)
	s := newL2(t, m.Client(t))
	c := ctx(t)
	big := env(1, make([]byte, etcd.DefaultMaxRequestBytes))
	_, err := s.Set(c, "big", big, time.Minute)
	if !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("Set of %d bytes: %v; want ErrValueTooLarge", len(big), err)
	}
	if b, _ := s.Get(c, "big"); b != nil {
		t.Fatal("a refused value was written")
	}
	fits := env(1, make([]byte, s.MaxValueSize(3)-100))
	if _, err := s.Set(c, "big", fits, time.Minute); err != nil {
		t.Fatalf("Set of %d bytes (under the limit): %v", len(fits), err)
	}
}

func TestL2ConcurrentWriters(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	stores := []*etcd.L2{newL2(t, cl.Members[0].Client(t)), newL2(t, cl.Members[1].Client(t)), newL2(t, cl.Members[2].Client(t))}
	c := ctx(t)
	const keys, writers, writes = 4, 6, 25
	var mu sync.Mutex
	maxTS := map[string]int64{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for i := range writes {
				key := string(rune('a' + i%keys))
				ts := rand.Int64N(1 << 40)
				if _, err := s.Set(c, key, env(ts, nil), time.Minute); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				maxTS[key] = max(maxTS[key], ts)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for key, want := range maxTS {
		b, err := stores[0].Get(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if got := tsOf(t, b); got != want {
			t.Errorf("key %s holds timestamp %d; the newest written was %d", key, got, want)
		}
	}
}

func TestL2LeaseBuckets(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	s := newL2(t, cli)
	c := ctx(t)
	// 600 keys written over about 1.5 s with three lifetimes: 10 s (1 s
	// buckets), 60 s (4 s buckets) and 1 h (4 min buckets).
	n := 0
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond || n < 600 {
		ttl := []time.Duration{10 * time.Second, time.Minute, time.Hour}[n%3]
		if _, err := s.Set(c, "lease/"+string(rune('a'+n%26))+string(rune(n)), env(int64(n), nil), ttl); err != nil {
			t.Fatal(err)
		}
		n++
		if n%100 == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	resp, err := cli.Leases(c)
	if err != nil {
		t.Fatal(err)
	}
	// Buckets are 1 s wide for 10 s keys, 4 s for 1 min keys and 4 min for
	// 1 h keys: the deadlines written during elapsed fall in at most
	// elapsed/width + 2 buckets of each width.
	most := 0
	for _, w := range []time.Duration{time.Second, 4 * time.Second, 4 * time.Minute} {
		most += int(elapsed/w) + 2
	}
	if got := len(resp.Leases); got > most || got < 3 {
		t.Fatalf("%d keys with 3 lifetimes written over %s hold %d leases; want 3..%d (one per bucket)", n, elapsed, got, most)
	}
	if s.Leases() != len(resp.Leases) {
		t.Errorf("the store counts %d leases, etcd has %d", s.Leases(), len(resp.Leases))
	}
	t.Logf("%d keys over %s, %d leases", n, elapsed, len(resp.Leases))
}

func TestL2ExpiresByLease(t *testing.T) {
	m := etcdtest.Start(t)
	s := newL2(t, m.Client(t))
	c := ctx(t)
	if _, err := s.Set(c, "short", env(1, nil), 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Get(c, "short"); b == nil {
		t.Fatal("key missing right after Set")
	}
	// The bucket lease runs to the end of its second plus a margin, and etcd
	// may raise it to its minimum TTL: under 5 s in all.
	waitFor(t, 8*time.Second, "the key to expire with its lease", func() bool {
		b, err := s.Get(c, "short")
		return err == nil && b == nil
	})
}

// A TTL near math.MaxInt64 (an entry "forever": the engine passes its
// physical expiry minus now) gets a lease of a century, not an error from a
// deadline that wrapped around.
func TestL2ForeverTTL(t *testing.T) {
	m := etcdtest.Start(t)
	cli := m.Client(t)
	s := newL2(t, cli)
	c := ctx(t)
	ttl := time.Duration(math.MaxInt64 - time.Now().UnixNano())
	if w, err := s.Set(c, "forever", env(1, []byte("v")), ttl); err != nil || !w {
		t.Fatalf("Set with a TTL of %v = %v, %v", ttl, w, err)
	}
	if b, err := s.Get(c, "forever"); err != nil || b == nil {
		t.Fatalf("Get = %v, %v", b, err)
	}
	resp, err := cli.Leases(c)
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("leases = %v, %v; want one", resp, err)
	}
	left, err := cli.TimeToLive(c, resp.Leases[0].ID)
	if err != nil || left.TTL < 99*365*24*3600 || left.TTL > 101*365*24*3600 {
		t.Fatalf("lease TTL = %v, %v; want about a century", left, err)
	}
}
