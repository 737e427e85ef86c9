package redisstore_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns an encoded envelope with timestamp ts and value v.
func env(ts int64, v string) []byte {
	e := envelope.Envelope{Timestamp: ts, FreshUntil: ts + int64(time.Minute), Type: "string", Value: []byte(v)}
	return e.Append(nil)
}

// newClient returns a client for srv that does not retry, so that fault
// tests fail fast; it is closed by t.Cleanup.
func newClient(t *testing.T, srv *redistest.Server, change func(*redis.Options)) *redis.Client {
	t.Helper()
	opts := srv.Options()
	opts.MaxRetries = -1
	if change != nil {
		change(opts)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustSet(t *testing.T, s *redisstore.Store, key string, val []byte, ttl time.Duration) bool {
	t.Helper()
	written, err := s.Set(t.Context(), key, val, ttl)
	if err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	return written
}

func mustGet(t *testing.T, s *redisstore.Store, key string) []byte {
	t.Helper()
	b, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return b
}

func TestGetMiss(t *testing.T) {
	t.Parallel()
	s := redisstore.New(redistest.Start(t).Client(t))
	b, err := s.Get(t.Context(), "missing")
	if b != nil || err != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, nil", b, err)
	}
}

func TestSetGetDelete(t *testing.T) {
	t.Parallel()
	s := redisstore.New(redistest.Start(t).Client(t))
	val := env(100, "hello")
	if !mustSet(t, s, "k", val, time.Minute) {
		t.Fatal("Set on an empty key: written = false, want true")
	}
	if got := mustGet(t, s, "k"); !bytes.Equal(got, val) {
		t.Fatalf("Get = % x, want % x", got, val)
	}
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := mustGet(t, s, "k"); got != nil {
		t.Fatalf("Get after Delete = % x, want nil", got)
	}
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func TestNewestWins(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb)

	negative := env(0, "negative")
	negative[envelope.TimestampOffset] = 0x80 // a corrupt envelope: negative timestamp
	cases := []struct {
		name        string
		stored      []byte // raw bytes put in Redis first; nil = none
		ts          int64
		wantWritten bool
	}{
		{"empty key", nil, 5, true},
		{"older is kept out", env(1000, "stored"), 999, false},
		{"newer overwrites", env(1000, "stored"), 1001, true},
		{"equal overwrites", env(1000, "stored"), 1000, true},
		{"zero against zero", env(0, "stored"), 0, true},
		{"high byte older", env(0x80, "stored"), 0x7f, false},
		{"high byte newer", env(0x0180, "stored"), 0x01ff, true},
		{"low byte decides", env(0x0200, "stored"), 0x01ff, false},
		{"top byte decides", env(1<<56, "stored"), 1<<56 - 1, false},
		{"max timestamp kept", env(1<<63-1, "stored"), 1 << 62, false},
		{"foreign bytes", []byte("some other app's value, long enough to look like an envelope"), 1, true},
		{"foreign short value", []byte{envelope.Magic, envelope.Version, 0x7f}, 1, true},
		{"foreign empty value", []byte{}, 1, true},
		{"other envelope version", append([]byte{envelope.Magic, 2}, env(1<<60, "v2")[2:]...), 1, true},
		{"negative stored timestamp", negative, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := "nw:" + tc.name
			if tc.stored != nil {
				if err := rdb.Set(t.Context(), key, tc.stored, time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
			}
			val := env(tc.ts, "new")
			written := mustSet(t, s, key, val, time.Minute)
			if written != tc.wantWritten {
				t.Errorf("written = %v, want %v", written, tc.wantWritten)
			}
			want := val
			if !tc.wantWritten {
				want = tc.stored
			}
			if got := mustGet(t, s, key); !bytes.Equal(got, want) {
				t.Errorf("stored value = % x, want % x", got, want)
			}
			pttl, err := rdb.PTTL(t.Context(), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantWritten && pttl > time.Minute {
				t.Errorf("PTTL = %v after a write with a 1m TTL", pttl)
			}
			if !tc.wantWritten && pttl <= time.Minute {
				t.Errorf("PTTL = %v: the kept value's 1h TTL was changed", pttl)
			}
		})
	}
}

// TestNewestWinsConcurrent races many writers with random timestamps on one
// key: whatever the order, the newest one must be what stays.
func TestNewestWinsConcurrent(t *testing.T) {
	t.Parallel()
	s := redisstore.New(redistest.Start(t).Client(t))
	const writers, perWriter = 8, 40
	var (
		mu     sync.Mutex
		newest int64
		wg     sync.WaitGroup
		errs   = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWriter {
				ts := r.Int64N(1 << 62)
				mu.Lock()
				newest = max(newest, ts)
				mu.Unlock()
				if _, err := s.Set(t.Context(), "race", env(ts, "v"), time.Minute); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, ok := envelope.Timestamp(mustGet(t, s, "race"))
	if !ok || got != newest {
		t.Fatalf("stored timestamp = %d (%v), want the newest, %d", got, ok, newest)
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb)
	cases := []struct {
		ttl      time.Duration
		min, max time.Duration // bounds of PTTL right after the write
	}{
		{10 * time.Second, 9 * time.Second, 10 * time.Second},
		{10*time.Second + time.Nanosecond, 9 * time.Second, 10*time.Second + time.Millisecond}, // rounded up
		{time.Hour, 59 * time.Minute, time.Hour},
	}
	for _, tc := range cases {
		key := "ttl:" + tc.ttl.String()
		mustSet(t, s, key, env(1, "v"), tc.ttl)
		pttl, err := rdb.PTTL(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl < tc.min || pttl > tc.max {
			t.Errorf("Set with TTL %v: PTTL = %v, want in [%v, %v]", tc.ttl, pttl, tc.min, tc.max)
		}
	}

	// A sub-millisecond TTL becomes 1 ms, never "no expiry".
	mustSet(t, s, "ttl:tiny", env(1, "v"), time.Microsecond)
	if pttl, err := rdb.PTTL(t.Context(), "ttl:tiny").Result(); err != nil {
		t.Fatal(err)
	} else if pttl > time.Millisecond || pttl == -1 {
		t.Errorf("Set with TTL 1µs: PTTL = %v, want at most 1ms (or gone)", pttl)
	}
}

func TestSetRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := redisstore.New(redistest.Start(t).Client(t), redisstore.WithMaxValueSize(200))
	big := env(1, strings.Repeat("x", 300))
	cases := []struct {
		name    string
		val     []byte
		ttl     time.Duration
		wantErr error
	}{
		{"zero ttl", env(1, "v"), 0, redisstore.ErrInvalidTTL},
		{"negative ttl", env(1, "v"), -time.Second, redisstore.ErrInvalidTTL},
		{"not an envelope", []byte("plain value that is long enough......"), time.Minute, redisstore.ErrNotEnvelope},
		{"nil", nil, time.Minute, redisstore.ErrNotEnvelope},
		{"too large", big, time.Minute, redisstore.ErrValueTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := "bad:" + tc.name
			written, err := s.Set(t.Context(), key, tc.val, tc.ttl)
			if !errors.Is(err, tc.wantErr) || written {
				t.Fatalf("Set = %v, %v; want false, %v", written, err, tc.wantErr)
			}
			if k := redisstore.Classify(err); k != redisstore.KindOther {
				t.Errorf("Classify(%v) = %v, want other", err, k)
			}
			if got := mustGet(t, s, key); got != nil {
				t.Errorf("a rejected Set wrote % x", got)
			}
		})
	}
}

func TestMaxValueSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		opts []redisstore.Option
		want int
	}{
		{nil, redisstore.DefaultMaxValueSize},
		{[]redisstore.Option{redisstore.WithMaxValueSize(0)}, redisstore.DefaultMaxValueSize},
		{[]redisstore.Option{redisstore.WithMaxValueSize(-1)}, redisstore.DefaultMaxValueSize},
		{[]redisstore.Option{redisstore.WithMaxValueSize(1 << 10)}, 1 << 10},
		{[]redisstore.Option{redisstore.WithMaxValueSize(1 << 40)}, redisstore.HardMaxValueSize},
	}
	for _, tc := range cases {
		// The client is never used: no server is needed.
		if got := redisstore.New(nil, tc.opts...).MaxValueSize(); got != tc.want {
			t.Errorf("MaxValueSize = %d, want %d", got, tc.want)
		}
	}
}

// TestScriptFlushed checks the EVAL fallback: after SCRIPT FLUSH the cached
// SHA is unknown to the server and Set must still work.
func TestScriptFlushed(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	s := redisstore.New(rdb)
	mustSet(t, s, "k", env(1, "a"), time.Minute)
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	if !mustSet(t, s, "k", env(2, "b"), time.Minute) {
		t.Fatal("Set after SCRIPT FLUSH: written = false")
	}
	if mustSet(t, s, "k", env(1, "c"), time.Minute) {
		t.Fatal("older Set after SCRIPT FLUSH: written = true")
	}
}

func TestDoesNotCloseClient(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	s := redisstore.New(rdb)
	mustSet(t, s, "k", env(1, "a"), time.Minute)
	s = nil //nolint:ineffassign // drop the store: nothing it held may close the client
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("client unusable after the store is dropped: %v", err)
	}
}

// TestCorruptHeaderNeverWins: a stored payload whose checksum fails but
// whose header claims a timestamp far in the future (one flipped bit) must
// not refuse later writes forever: the next write replaces it. A valid
// newer envelope still wins.
func TestCorruptHeaderNeverWins(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb)
	ctx := t.Context()

	corrupt := env(1<<62, "from the future")
	corrupt[len(corrupt)-6] ^= 0x01 // a bit of the value: the checksum fails
	if _, err := envelope.Decode(corrupt); err == nil {
		t.Fatal("setup: the flipped bit did not corrupt the envelope")
	}
	if err := rdb.Set(ctx, "k", corrupt, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := env(100, "repaired")
	if !mustSet(t, s, "k", fresh, time.Hour) {
		t.Fatal("Set over a corrupt value reported written=false")
	}
	if got := mustGet(t, s, "k"); !bytes.Equal(got, fresh) {
		t.Fatalf("Redis holds %q, want the new envelope", got)
	}
	if ttl := rdb.PTTL(ctx, "k").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL after repair = %v", ttl)
	}

	// A valid newer envelope is kept, and Set says so.
	newer := env(200, "newer")
	mustSet(t, s, "k", newer, time.Hour)
	if mustSet(t, s, "k", env(150, "older"), time.Hour) {
		t.Fatal("an older write replaced a valid newer envelope")
	}
	if got := mustGet(t, s, "k"); !bytes.Equal(got, newer) {
		t.Fatalf("Redis holds %q, want the newer envelope", got)
	}
}
