package hybrid

import (
	"context"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/internal/redistest"
)

// Races found by a randomized multi-node checker, each made deterministic.

// An Expire of a key that memory holds only as a removal (or not at all)
// leaves a marker at its own timestamp: an older Set's message arriving
// after it, or a read that fetched an older entry before it, cannot store
// a fresh copy from before the expiry.
func TestExpireLeavesAMarker(t *testing.T) {
	c, err := New(Options{Name: "app", Entry: EntryOptions{Duration: time.Hour, FailSafe: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Remove(ctx, "k"); err != nil { // memory: a removal at t1
		t.Fatal(err)
	}
	older := newEntry("k", "from another node", stamp(), nowNano(), &c.entry, meta{}) // t2
	enc, err := c.encode(older)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Expire(ctx, "k"); err != nil { // t3
		t.Fatal(err)
	}
	// The other node's Set (t2) is announced after the expiry (t3).
	bpHandler{c}.HandleMessage(backplane.Message{Kind: backplane.KindSet, Cache: "app", Key: "k", Source: "other",
		Timestamp: older.ts, Value: string(enc)})
	if e := c.l1.get("k"); e != nil && e.fresh(nowNano()) {
		t.Fatalf("after Expire, an older Set's message stored a fresh copy: %+v", e)
	}
	// A read that fetched an older entry before the expiry does not store it.
	if err := c.Expire(ctx, "j"); err != nil { // nothing held at all
		t.Fatal(err)
	}
	if fresh, _ := c.mergeL2(ctx, "j", &c.entry, newEntry("j", "read before", older.ts, nowNano(), &c.entry, meta{}), nil, nil); fresh != nil {
		t.Fatalf("a read older than the expiry answered %+v", fresh)
	}
	if e := c.l1.get("j"); e != nil && e.fresh(nowNano()) {
		t.Fatalf("a read older than the expiry stored a fresh copy: %+v", e)
	}
}

// A read of the distributed tier during which a newer change reached
// memory (a Set on this node, a message) answers with memory's entry: the
// key held a value all along, so a miss (and, for GetOrSet, a factory
// call) would be wrong.
func TestReadAnswersWithNewerMemory(t *testing.T) {
	c, err := New(Options{Name: "app", Entry: EntryOptions{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	read := newEntry("k", "v1", stamp(), nowNano(), &c.entry, meta{}) // what the read fetched
	if err := Set(ctx, c, "k", "v2"); err != nil {                    // newer, in memory meanwhile
		t.Fatal(err)
	}
	fresh, _ := c.mergeL2(ctx, "k", &c.entry, read, nil, nil)
	if fresh == nil || fresh.value.(*string) == nil || *fresh.value.(*string) != "v2" {
		t.Fatalf("merge of an older read with a newer memory entry = %+v; want the memory entry v2", fresh)
	}
}

// An Expire that meets a removal in the distributed tier (another node's
// Remove, whose message had not arrived yet) leaves no fallback in this
// node's memory either: the key is gone, and its old value must not be
// served stale (AllowStaleOnRead, a fail-safe fallback).
func TestExpireAfterRemoteRemoveKeepsNoFallback(t *testing.T) {
	srv := redistest.Start(t)
	c, err := New(Options{Name: "app", L2: NewRedisL2(srv.Client(t)),
		Entry: EntryOptions{Duration: time.Hour, FailSafe: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := Set(ctx, c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// Another node's Remove reaches Redis; its message has not arrived here.
	if _, err := c.writeRemoval(ctx, c.prefix+"k", stamp()); err != nil {
		t.Fatal(err)
	}
	if err := c.Expire(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	stale := WithOptions(func(o *EntryOptions) { o.AllowStaleOnRead = true })
	if v, ok, err := TryGet[string](ctx, c, "k", stale); ok || err != nil {
		t.Fatalf("TryGet with AllowStaleOnRead after a remote Remove and a local Expire = %q, %v, %v; want a miss", v, ok, err)
	}
}
