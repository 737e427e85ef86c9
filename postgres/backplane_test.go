package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/internal/tcpproxy"
	"github.com/strata-cache/strata/postgres"
)

// recorder is a backplane.Handler that keeps the keys it is given and
// counts gaps.
type recorder struct {
	mu   sync.Mutex
	keys map[string]int
	gaps int
}

func newRecorder() *recorder { return &recorder{keys: map[string]int{}} }

func (r *recorder) HandleMessage(m backplane.Message) {
	r.mu.Lock()
	r.keys[m.Key]++
	r.mu.Unlock()
}

func (r *recorder) HandleGap() {
	r.mu.Lock()
	r.gaps++
	r.mu.Unlock()
}

func (r *recorder) count() (keys, gaps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys), r.gaps
}

// feedPair returns a publishing backplane on srv, and a subscribed one
// whose connections go through a proxy (to cut them), with its recorder.
func feedPair(t *testing.T, srv *pgtest.Server, retention time.Duration) (pub *postgres.Backplane, pubTier *postgres.Tier, sub *postgres.Backplane, rec *recorder, proxy *tcpproxy.Proxy) {
	t.Helper()
	proxy, url := proxied(t, srv)
	pubTier, err := postgres.NewTier(postgres.Config{ConnString: srv.URL(), PruneInterval: -1, ChangeRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pubTier.Close() })
	subTier, err := postgres.NewTier(postgres.Config{ConnString: url, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { subTier.Close() })
	_, pub, err = pubTier.OpenCache(postgres.Options{KeyPrefix: "app:", DisableL2: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	_, sub, err = subTier.OpenCache(postgres.Options{KeyPrefix: "app:", DisableL2: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	rec = newRecorder()
	if err := sub.Subscribe(rec); err != nil {
		t.Fatal(err)
	}
	return pub, pubTier, sub, rec, proxy
}

func publishN(t *testing.T, pub *postgres.Backplane, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := backplane.Message{Kind: backplane.KindSet, Cache: "app", Key: fmt.Sprint("k", i), Source: "pub", Timestamp: int64(i + 1)}
		if err := pub.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// A listener cut off while another node publishes 300 changes gets every
// one of them once it is back, and reports no gap: the feed resumes.
func TestFeedLosesNothingAcrossADisconnect(t *testing.T) {
	srv := pgtest.Start(t)
	pub, _, sub, rec, proxy := feedPair(t, srv, 0)
	publishN(t, pub, 0, 10)
	waitFor(t, 5*time.Second, "the first 10", func() bool { k, _ := rec.count(); return k == 10 })

	proxy.Pause()
	proxy.ResetAll() // the listening connection is gone; new ones hang
	publishN(t, pub, 10, 300)
	proxy.Resume()
	waitFor(t, 20*time.Second, "all 310 changes", func() bool { k, _ := rec.count(); return k == 310 })
	if _, gaps := rec.count(); gaps != 0 {
		t.Fatalf("%d gaps reported; the feed resumes without one", gaps)
	}
	// The resubscription is counted once the catch-up after it is done,
	// which may be just after the last change was delivered.
	waitFor(t, 5*time.Second, "the resubscription to be counted", func() bool { return sub.Stats().Resubscribes > 0 })
	if st := sub.Stats(); st.Gaps != 0 {
		t.Fatalf("stats %+v: want no gap", st)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, n := range rec.keys {
		if n != 1 {
			t.Fatalf("%s delivered %d times", k, n)
		}
	}
}

// Changes pruned before a disconnected listener read them are lost: that,
// and only that, is a gap.
func TestFeedPrunedWhileAwayIsAGap(t *testing.T) {
	srv := pgtest.Start(t)
	pub, pubTier, sub, rec, proxy := feedPair(t, srv, time.Millisecond)
	publishN(t, pub, 0, 5)
	waitFor(t, 5*time.Second, "the first 5", func() bool { k, _ := rec.count(); return k == 5 })

	proxy.Pause()
	proxy.ResetAll()
	publishN(t, pub, 5, 20)
	time.Sleep(5 * time.Millisecond) // older than the 1 ms retention: not a synchronization
	if _, err := pubTier.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	waitFor(t, 20*time.Second, "the gap", func() bool { _, g := rec.count(); return g == 1 })
	publishN(t, pub, 100, 1)
	waitFor(t, 5*time.Second, "a change after the gap", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.keys["k100"] == 1 })
	if st := sub.Stats(); st.Gaps != 1 {
		t.Fatalf("stats %+v: want one gap", st)
	}
}

// A message too large for a notification's payload travels as its row's id;
// the receiver reads the row.
func TestFeedLargeMessage(t *testing.T) {
	srv := pgtest.Start(t)
	pub, _, sub, rec, _ := feedPair(t, srv, 0)
	big := strings.Repeat("v", 7000) // base64 of the message exceeds 8,000 bytes
	m := backplane.Message{Kind: backplane.KindSet, Cache: "app", Key: "big", Source: "pub", Timestamp: 1, Value: big}
	if err := pub.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the large message", func() bool { k, _ := rec.count(); return k == 1 })
	if st := sub.Stats(); st.Corrupt != 0 || st.Received != 1 {
		t.Fatalf("stats %+v: want one message received, none corrupt", st)
	}
}

// The feed's table dropped and created again (a restore, an operator's
// DROP): its ids start again at 1, so the ids the listener remembers and
// its position mean nothing any more, and the rows it had not read are
// gone. That is one gap, and the changes after it are delivered, though
// their ids are ones it had delivered before.
func TestFeedTableCreatedAgainIsAGap(t *testing.T) {
	srv := pgtest.Start(t)
	pub, _, sub, rec, _ := feedPair(t, srv, 0)
	publishN(t, pub, 0, 5)
	waitFor(t, 5*time.Second, "the first 5", func() bool { k, _ := rec.count(); return k == 5 })

	adminExec(t, srv, `DROP TABLE strata_cache_changes`)
	waitFor(t, 10*time.Second, "a publish to create the table again", func() bool {
		m := backplane.Message{Kind: backplane.KindSet, Cache: "app", Key: "again", Source: "pub", Timestamp: 1}
		return pub.Publish(context.Background(), m) == nil
	})
	waitFor(t, 10*time.Second, "the gap", func() bool { _, g := rec.count(); return g == 1 })
	publishN(t, pub, 100, 5) // ids 2 to 6 of the new table: delivered before, in the old one
	waitFor(t, 5*time.Second, "the changes after the gap", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for i := 100; i < 105; i++ {
			if rec.keys[fmt.Sprint("k", i)] != 1 {
				return false
			}
		}
		return true
	})
	if st := sub.Stats(); st.Gaps != 1 {
		t.Fatalf("stats %+v: want one gap", st)
	}
}

// A feed pruned by a tier of an earlier version, which records only how
// far the whole feed was pruned (no mark per channel), while a listener
// was away: the listener reports the gap all the same.
func TestFeedPrunedByAnEarlierVersionIsAGap(t *testing.T) {
	srv := pgtest.Start(t)
	pub, _, sub, rec, proxy := feedPair(t, srv, 0)
	publishN(t, pub, 0, 5)
	waitFor(t, 5*time.Second, "the first 5", func() bool { k, _ := rec.count(); return k == 5 })

	proxy.Pause()
	proxy.ResetAll()
	publishN(t, pub, 5, 20)
	adminExec(t, srv, `WITH d AS (DELETE FROM strata_cache_changes RETURNING xid::text::bigint AS x, id),
m AS (SELECT x, id FROM d ORDER BY x DESC, id DESC LIMIT 1)
UPDATE strata_cache_changes_pruned p SET xid = m.x, id = m.id FROM m WHERE (m.x, m.id) > (p.xid, p.id)`)
	proxy.Resume()
	waitFor(t, 20*time.Second, "the gap", func() bool { _, g := rec.count(); return g == 1 })
	if st := sub.Stats(); st.Gaps != 1 {
		t.Fatalf("stats %+v: want one gap", st)
	}
}
