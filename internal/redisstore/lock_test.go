package redisstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/internal/redisstore"
	"github.com/strata-cache/strata/internal/redistest"
)

func TestGetOrLock(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv, nil)
	s := redisstore.New(c)
	ctx := t.Context()
	const key, lock = "app:k", "app:__strata:lock:k"
	lk := redisstore.LockKey(key, lock)

	v, locked, err := s.GetOrLock(ctx, key, lock, "a", time.Minute)
	if err != nil || !locked || v != nil {
		t.Fatalf("first GetOrLock = %q, %v, %v; want nil, true, nil", v, locked, err)
	}
	if got := c.Get(ctx, lk).Val(); got != "a" {
		t.Fatalf("lock holds %q, want the token a", got)
	}
	mustSet(t, s, key, env(10, "x"), time.Minute)
	v, locked, err = s.GetOrLock(ctx, key, lock, "b", time.Minute)
	if err != nil || locked || string(v) != string(env(10, "x")) {
		t.Fatalf("GetOrLock while held = %q, %v, %v; want the value, false, nil", v, locked, err)
	}

	// Only the holder's token extends or releases the lock.
	if held, err := s.ExtendLock(ctx, key, lock, "b", time.Minute); err != nil || held {
		t.Fatalf("ExtendLock by another token = %v, %v; want false", held, err)
	}
	if err := s.Unlock(ctx, key, lock, "b"); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, lk).Val(); n != 1 {
		t.Fatal("another token's Unlock released the lock")
	}
	if held, err := s.ExtendLock(ctx, key, lock, "a", 50*time.Second); err != nil || !held {
		t.Fatalf("ExtendLock by the holder = %v, %v; want true", held, err)
	}
	if ttl := c.PTTL(ctx, lk).Val(); ttl > 50*time.Second || ttl <= 0 {
		t.Fatalf("lease after ExtendLock = %v, want <= 50s", ttl)
	}
	if err := s.Unlock(ctx, key, lock, "a"); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, lk).Val(); n != 0 {
		t.Fatal("the holder's Unlock left the lock")
	}
	if _, locked, _ := s.GetOrLock(ctx, key, lock, "b", time.Minute); !locked {
		t.Fatal("lock not free after Unlock")
	}
}

func TestGetOrLockLeaseRunsOut(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv, nil)
	s := redisstore.New(c)
	ctx := t.Context()
	if _, locked, err := s.GetOrLock(ctx, "k", "k:lock", "a", 20*time.Millisecond); !locked || err != nil {
		t.Fatalf("GetOrLock = %v, %v", locked, err)
	}
	redistest.Eventually(t, "the lease to run out", func() bool {
		_, locked, err := s.GetOrLock(ctx, "k", "k:lock", "b", time.Minute)
		return err == nil && locked
	})
	if held, _ := s.ExtendLock(ctx, "k", "k:lock", "a", time.Minute); held {
		t.Fatal("the expired holder extended the new holder's lock")
	}
}

func TestGetOrLockBadInput(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv, nil)
	s := redisstore.New(c)
	ctx := t.Context()
	for _, tc := range []struct {
		token string
		lease time.Duration
	}{{"a", 0}, {"a", time.Microsecond}, {"a", -time.Second}, {"", time.Second}} {
		if _, _, err := s.GetOrLock(ctx, "k", "k:lock", tc.token, tc.lease); !errors.Is(err, redisstore.ErrInvalidLease) {
			t.Errorf("GetOrLock(token %q, lease %v) = %v, want ErrInvalidLease", tc.token, tc.lease, err)
		}
		if _, err := s.ExtendLock(ctx, "k", "k:lock", tc.token, tc.lease); !errors.Is(err, redisstore.ErrInvalidLease) {
			t.Errorf("ExtendLock(token %q, lease %v) = %v, want ErrInvalidLease", tc.token, tc.lease, err)
		}
	}
	if n := c.Exists(ctx, redisstore.LockKey("k", "k:lock")).Val(); n != 0 {
		t.Fatal("bad input took a lock")
	}
	// A key of another type: the script fails, nothing changes.
	c.LPush(ctx, "list", "x")
	if _, _, err := s.GetOrLock(ctx, "list", "list:lock", "a", time.Second); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("GetOrLock on a list = %v, want WRONGTYPE", err)
	}
	if n := c.Exists(ctx, redisstore.LockKey("list", "list:lock")).Val(); n != 0 {
		t.Fatal("a failed GetOrLock left a lock")
	}
}

// The lock of a key lives in the key's slot, whatever braces the key or
// the lock's name hold; checked against the cluster's own CLUSTER KEYSLOT,
// and used on a 3-master cluster.
func TestLockKeyInEntrySlot(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client(t)
	ctx := t.Context()
	keys := []string{
		"app:user:1", "app:{team}:1", "{tenant}:app:x", "app:a}b", "app:{}x}", "app:{", "app:}{",
		"app:x{y", "app:{a}b}c", "}", "app:{{}}", "app:" + strings.Repeat("}", 40),
	}
	s := redisstore.New(cc)
	for _, k := range keys {
		lock := k[:strings.IndexByte(k+":", ':')] + ":__strata:lock:" + k
		lk := redisstore.LockKey(k, lock)
		if !strings.HasPrefix(lk, lock) {
			t.Errorf("LockKey(%q) = %q: lost the name %q", k, lk, lock)
		}
		want, err := cc.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(redisstore.Slot(k)); got != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
		if got := cc.ClusterKeySlot(ctx, lk).Val(); got != want {
			t.Errorf("LockKey(%q) = %q in slot %d, the key is in %d", k, lk, got, want)
		}
		// The script reads the key and takes its lock on the key's node.
		if _, locked, err := s.GetOrLock(ctx, k, lock, "t", time.Minute); err != nil || !locked {
			t.Errorf("GetOrLock(%q) on the cluster = %v, %v", k, locked, err)
		}
		if err := s.Unlock(ctx, k, lock, "t"); err != nil {
			t.Errorf("Unlock(%q): %v", k, err)
		}
	}
}
