package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

// commandCalls returns the number of calls of each command the server
// counted (INFO commandstats), e.g. calls["mget"].
func commandCalls(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		calls[name] = n
	}
	return calls
}

// pipelines counts the round trips a client starts: single commands and
// pipelines (a go-redis hook; it observes, it does not answer). The
// handshake of a new connection (HELLO, CLIENT SETINFO) is not counted.
type pipelines struct{ cmds, pipes atomic.Int64 }

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			p.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			p.pipes.Add(1)
		}
		return next(ctx, cmds)
	}
}

func TestGetManyOneMGET(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := newClient(t, srv, nil)
	s := redisstore.New(rdb)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		if i%10 != 3 { // every tenth key is missing
			mustSet(t, s, keys[i], env(int64(i+1), keys[i]), time.Minute)
		}
	}
	keys = append(keys, "k0") // a duplicate
	admin := srv.Client(t)
	before := commandCalls(t, admin)
	vals, errs := s.GetMany(t.Context(), keys)
	after := commandCalls(t, admin)
	if errs != nil {
		t.Fatalf("GetMany errors: %v", errs)
	}
	if n := after["mget"] - before["mget"]; n != 1 {
		t.Fatalf("MGET calls = %d, want 1", n)
	}
	if n := after["get"] - before["get"]; n != 0 {
		t.Fatalf("GET calls = %d, want 0", n)
	}
	for i, k := range keys {
		idx := i % 100
		want := env(int64(idx+1), k)
		if idx%10 == 3 {
			want = nil
		}
		if !bytes.Equal(vals[i], want) {
			t.Fatalf("GetMany[%d] (%s) = %q, want %q", i, k, vals[i], want)
		}
	}
	if vals, errs := s.GetMany(t.Context(), nil); len(vals) != 0 || errs != nil {
		t.Fatalf("GetMany(nil) = %v, %v", vals, errs)
	}
}

func TestGetManyServerDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, nil))
	srv.Kill(t)
	_, errs := s.GetMany(t.Context(), []string{"a", "b"})
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil {
		t.Fatalf("errs = %v, want one per key", errs)
	}
	if k := redisstore.Classify(errs[0]); k != redisstore.KindTransient {
		t.Fatalf("Classify = %v, want transient", k)
	}
}

func TestSetManyNewestWinsOnePipeline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := newClient(t, srv, nil)
	var hook pipelines
	rdb.AddHook(&hook)
	s := redisstore.New(rdb)
	mustSet(t, s, "old", env(1000, "stored"), time.Minute) // newer than the batch's write
	mustSet(t, s, "young", env(10, "stored"), time.Minute) // older than the batch's write

	items := []redisstore.Item{
		{Key: "old", Value: env(999, "batch"), TTL: time.Minute},
		{Key: "young", Value: env(11, "batch"), TTL: time.Minute},
		{Key: "new", Value: env(5, "batch"), TTL: time.Minute},
		{Key: "bad-ttl", Value: env(5, "batch"), TTL: 0},
		{Key: "bad-env", Value: []byte("nope"), TTL: time.Minute},
	}
	admin := srv.Client(t)
	before := commandCalls(t, admin)
	hook.cmds.Store(0)
	hook.pipes.Store(0)
	written, errs := s.SetMany(t.Context(), items)
	after := commandCalls(t, admin)
	if got := []bool{written[0], written[1], written[2]}; got[0] || !got[1] || !got[2] {
		t.Fatalf("written = %v, want [false true true ...]", written)
	}
	if errs == nil || errs[0] != nil || errs[1] != nil || errs[2] != nil ||
		!errors.Is(errs[3], redisstore.ErrInvalidTTL) || !errors.Is(errs[4], redisstore.ErrNotEnvelope) {
		t.Fatalf("errs = %v", errs)
	}
	if p, c := hook.pipes.Load(), hook.cmds.Load(); p != 1 || c != 0 {
		t.Fatalf("round trips: %d pipelines, %d single commands; want 1, 0", p, c)
	}
	if n := after["evalsha"] - before["evalsha"]; n != 3 {
		t.Fatalf("EVALSHA calls = %d, want 3 (the invalid items are not sent)", n)
	}
	for key, want := range map[string][]byte{"old": env(1000, "stored"), "young": env(11, "batch"), "new": env(5, "batch")} {
		if got := mustGet(t, s, key); !bytes.Equal(got, want) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if ttl := admin.PTTL(t.Context(), "new").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL(new) = %v, want in (0, 1m]", ttl)
	}
	for _, k := range []string{"bad-ttl", "bad-env"} {
		if got := mustGet(t, s, k); got != nil {
			t.Errorf("%s was written: %q", k, got)
		}
	}
}

func TestSetManyScriptFlushed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, nil))
	admin := srv.Client(t)
	if err := admin.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	written, errs := s.SetMany(t.Context(), []redisstore.Item{
		{Key: "a", Value: env(1, "a"), TTL: time.Minute},
		{Key: "b", Value: env(1, "b"), TTL: time.Minute},
	})
	if errs != nil || !written[0] || !written[1] {
		t.Fatalf("SetMany after SCRIPT FLUSH = %v, %v", written, errs)
	}
	if got := mustGet(t, s, "b"); !bytes.Equal(got, env(1, "b")) {
		t.Fatalf("b = %q", got)
	}
}

func TestDeleteMany(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.New(newClient(t, srv, nil))
	mustSet(t, s, "a", env(1, "a"), time.Minute)
	mustSet(t, s, "b", env(1, "b"), time.Minute)
	if errs := s.DeleteMany(t.Context(), []string{"a", "b", "missing"}); errs != nil {
		t.Fatal(errs)
	}
	if mustGet(t, s, "a") != nil || mustGet(t, s, "b") != nil {
		t.Fatal("keys still there after DeleteMany")
	}
}

func TestBatchOnCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client(t)
	s := redisstore.New(cc)

	keys := make([]string, 60)
	items := make([]redisstore.Item, 0, len(keys))
	slots := map[uint16]bool{}
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
		if i >= 50 {
			keys[i] = fmt.Sprintf("{team}:%d", i) // one slot for these ten
		}
		slots[redisstore.Slot(keys[i])] = true
		items = append(items, redisstore.Item{Key: keys[i], Value: env(int64(i+1), keys[i]), TTL: time.Minute})
	}
	if len(slots) < 10 {
		t.Fatalf("keys span %d slots; the test wants many", len(slots))
	}
	// Slot agrees with the server.
	for _, k := range keys[:5] {
		want, err := cc.ClusterKeySlot(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisstore.Slot(k); int64(got) != want {
			t.Fatalf("Slot(%q) = %d, CLUSTER KEYSLOT = %d", k, got, want)
		}
	}
	if got, want := redisstore.Slot("{team}:1"), redisstore.Slot("team"); got != want {
		t.Fatalf("hash tag: Slot({team}:1) = %d, Slot(team) = %d", got, want)
	}

	written, errs := s.SetMany(t.Context(), items)
	if errs != nil {
		t.Fatalf("SetMany on a cluster: %v", errs)
	}
	for i, w := range written {
		if !w {
			t.Fatalf("item %d not written", i)
		}
	}
	nodes := cl.Nodes()
	mgets := func() int {
		n := 0
		for _, node := range nodes {
			n += commandCalls(t, node.Client(t))["mget"]
		}
		return n
	}
	before := mgets()
	vals, gerrs := s.GetMany(t.Context(), append(keys, "absent"))
	if gerrs != nil {
		t.Fatalf("GetMany on a cluster: %v", gerrs)
	}
	for i, k := range keys {
		if !bytes.Equal(vals[i], env(int64(i+1), k)) {
			t.Fatalf("GetMany[%s] = %q", k, vals[i])
		}
	}
	if vals[len(keys)] != nil {
		t.Fatalf("absent key = %q", vals[len(keys)])
	}
	// One MGET per slot: the ten {team} keys share one.
	slots[redisstore.Slot("absent")] = true
	if n, want := mgets()-before, len(slots); n != want {
		t.Fatalf("MGET calls = %d, want %d (one per slot)", n, want)
	}
	if errs := s.DeleteMany(t.Context(), keys); errs != nil {
		t.Fatal(errs)
	}
	vals, _ = s.GetMany(t.Context(), keys)
	for i, v := range vals {
		if v != nil {
			t.Fatalf("%s still there after DeleteMany", keys[i])
		}
	}
}

// A corrupt stored value whose header claims a newer timestamp does not
// refuse SetMany's write (as for Set); a valid newer one does.
func TestSetManyCorruptHeaderNeverWins(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := redisstore.New(rdb)
	corrupt := env(1<<62, "from the future")
	corrupt[len(corrupt)-6] ^= 0x01 // the checksum fails
	if err := rdb.Set(t.Context(), "corrupt", corrupt, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "newer", env(1<<61, "valid"), time.Hour)
	written, errs := s.SetMany(t.Context(), []redisstore.Item{
		{Key: "corrupt", Value: env(100, "repaired"), TTL: time.Hour},
		{Key: "newer", Value: env(100, "older"), TTL: time.Hour},
	})
	if errs != nil || !written[0] || written[1] {
		t.Fatalf("SetMany = %v, %v; want [true false], no error", written, errs)
	}
	if got := mustGet(t, s, "corrupt"); !bytes.Equal(got, env(100, "repaired")) {
		t.Fatalf("corrupt key holds %q", got)
	}
	if got := mustGet(t, s, "newer"); !bytes.Equal(got, env(1<<61, "valid")) {
		t.Fatalf("newer key holds %q", got)
	}
}

// On a *redis.Ring (two shards) the batch calls route every key to its
// shard: written and read back whichever shard holds it, one missing key a
// nil, and removed.
func TestBatchOnRing(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": a.Addr(), "b": b.Addr()}})
	t.Cleanup(func() { _ = ring.Close() })
	s := redisstore.New(ring)
	keys := make([]string, 40)
	items := make([]redisstore.Item, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
		items[i] = redisstore.Item{Key: keys[i], Value: env(int64(i+1), keys[i]), TTL: time.Minute}
	}
	if _, errs := s.SetMany(t.Context(), items); errs != nil {
		t.Fatalf("SetMany on a ring: %v", errs)
	}
	perShard := []int64{a.Client(t).DBSize(t.Context()).Val(), b.Client(t).DBSize(t.Context()).Val()}
	if perShard[0] == 0 || perShard[1] == 0 || perShard[0]+perShard[1] != int64(len(keys)) {
		t.Fatalf("keys per shard %v: want all %d spread over both", perShard, len(keys))
	}
	vals, errs := s.GetMany(t.Context(), append(keys, "absent"))
	if errs != nil {
		t.Fatalf("GetMany on a ring: %v", errs)
	}
	for i, k := range keys {
		if !bytes.Equal(vals[i], env(int64(i+1), k)) {
			t.Fatalf("GetMany[%s] = %q", k, vals[i])
		}
	}
	if vals[len(keys)] != nil {
		t.Fatalf("GetMany[absent] = %q, want nil", vals[len(keys)])
	}
	if errs := s.DeleteMany(t.Context(), keys); errs != nil {
		t.Fatalf("DeleteMany on a ring: %v", errs)
	}
	if n := a.Client(t).DBSize(t.Context()).Val() + b.Client(t).DBSize(t.Context()).Val(); n != 0 {
		t.Fatalf("%d keys left after DeleteMany", n)
	}
}

// SetPublishMany: each write that happens publishes its own message, in the
// one pipeline; a write that lost publishes nothing, nor does an item
// without a message.
func TestSetPublishMany(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := newClient(t, srv, nil)
	var hook pipelines
	rdb.AddHook(&hook)
	s := redisstore.New(rdb)
	mustSet(t, s, "old", env(1000, "stored"), time.Minute) // newer than the batch's write
	sub := srv.Client(t).Subscribe(t.Context(), "ch")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	items := []redisstore.Item{
		{Key: "old", Value: env(999, "batch"), TTL: time.Minute},
		{Key: "a", Value: env(5, "batch"), TTL: time.Minute},
		{Key: "quiet", Value: env(5, "batch"), TTL: time.Minute},
		{Key: "b", Value: env(5, "batch"), TTL: time.Minute},
	}
	hook.cmds.Store(0)
	hook.pipes.Store(0)
	written, published, errs := s.SetPublishMany(t.Context(), items, "ch", [][]byte{[]byte("m-old"), []byte("m-a"), nil, []byte("m-b")})
	if errs != nil {
		t.Fatalf("errs = %v", errs)
	}
	if want := []bool{false, true, true, true}; !slices.Equal(written, want) {
		t.Fatalf("written = %v, want %v", written, want)
	}
	if want := []bool{false, true, false, true}; !slices.Equal(published, want) {
		t.Fatalf("published = %v, want %v", published, want)
	}
	if p, c := hook.pipes.Load(), hook.cmds.Load(); p != 1 || c != 0 {
		t.Fatalf("round trips: %d pipelines, %d single commands; want 1, 0", p, c)
	}
	var got []string
	for range 2 {
		m, err := sub.ReceiveMessage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Payload)
	}
	if !slices.Equal(got, []string{"m-a", "m-b"}) {
		t.Fatalf("messages = %q, want [m-a m-b]", got)
	}
	// Nothing else was published: a PING answered next proves the queue empty.
	if err := sub.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	} else if _, isPong := m.(*redis.Pong); !isPong {
		t.Fatalf("after the two messages: %#v, want the PING's answer", m)
	}
}
