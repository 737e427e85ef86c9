package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/pgtest"
	"github.com/strata-cache/strata/postgres"
)

func TestL2SetGetBytes(t *testing.T) {
	srv := pgtest.Start(t)
	l2 := newL2(t, newTier(t, srv), "app:")
	if v, err := l2.Get(ctx(t), "app:missing"); v != nil || err != nil {
		t.Fatalf("Get of a missing key = %q, %v; want nil, nil", v, err)
	}
	binary := []byte{0, 1, 2, 0xff, 0xfe, 0, 'x', 0xc3, 0x28} // not UTF-8, NUL bytes
	written, err := l2.Set(ctx(t), "app:k", env(10, binary), time.Minute)
	if err != nil || !written {
		t.Fatalf("Set = %v, %v", written, err)
	}
	got, err := l2.Get(ctx(t), "app:k")
	if err != nil || valueOf(t, got) != string(binary) {
		t.Fatalf("Get = %q, %v; want the bytes as written", got, err)
	}
	if err := l2.Delete(ctx(t), "app:k"); err != nil {
		t.Fatal(err)
	}
	if err := l2.Delete(ctx(t), "app:k"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if v, _ := l2.Get(ctx(t), "app:k"); v != nil {
		t.Fatalf("Get after Delete = %q", v)
	}
}

func TestL2NewestWins(t *testing.T) {
	srv := pgtest.Start(t)
	l2 := newL2(t, newTier(t, srv), "app:")
	c := ctx(t)
	if w, err := l2.Set(c, "app:k", env(10, []byte("ten")), time.Minute); !w || err != nil {
		t.Fatalf("first Set = %v, %v", w, err)
	}
	if w, err := l2.Set(c, "app:k", env(5, []byte("five")), time.Minute); w || err != nil {
		t.Fatalf("older Set = %v, %v; want false, nil", w, err)
	}
	if v, _ := l2.Get(c, "app:k"); valueOf(t, v) != "ten" {
		t.Fatalf("after an older Set: %q, want ten", valueOf(t, v))
	}
	if w, err := l2.Set(c, "app:k", env(10, []byte("ten again")), time.Minute); !w || err != nil {
		t.Fatalf("Set with an equal timestamp = %v, %v; want it written", w, err)
	}

	// Concurrent writers: the highest timestamp is what remains.
	var wg sync.WaitGroup
	var maxTS int64 = 1000
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 25 {
				ts := 100 + r.Int64N(900)
				if _, err := l2.Set(c, "app:race", env(ts, fmt.Appendf(nil, "%d", ts)), time.Minute); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := l2.Set(c, "app:race", env(maxTS, []byte("1000")), time.Minute); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if v, _ := l2.Get(c, "app:race"); valueOf(t, v) != "1000" {
		t.Fatalf("after concurrent writers: %q, want the newest, 1000", valueOf(t, v))
	}
}

func TestL2ExpiryAndPrune(t *testing.T) {
	srv := pgtest.Start(t)
	tier := newTier(t, srv)
	l2 := newL2(t, tier, "app:")
	c := ctx(t)
	if _, err := l2.Set(c, "app:short", env(10, []byte("v")), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Set(c, "app:long", env(10, []byte("v")), time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the short entry to expire", func() bool {
		v, err := l2.Get(c, "app:short")
		return err == nil && v == nil
	})
	// An expired row never blocks a write, even an older one.
	if w, err := l2.Set(c, "app:short", env(5, []byte("older")), time.Hour); !w || err != nil {
		t.Fatalf("Set over an expired row = %v, %v; want written", w, err)
	}
	if _, err := l2.Set(c, "app:gone", env(10, []byte("v")), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "app:gone to expire", func() bool { v, _ := l2.Get(c, "app:gone"); return v == nil })
	n, err := tier.Prune(c)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the one expired row", n, err)
	}
	if v, _ := l2.Get(c, "app:long"); v == nil {
		t.Fatal("Prune removed a live row")
	}
}

func TestL2BadInput(t *testing.T) {
	srv := pgtest.Start(t)
	l2 := newL2(t, newTier(t, srv), "app:")
	if _, err := l2.Set(ctx(t), "app:k", env(1, nil), 0); !errors.Is(err, postgres.ErrInvalidTTL) {
		t.Fatalf("Set with ttl 0: %v", err)
	}
	if _, err := l2.Set(ctx(t), "app:k", []byte("not an envelope"), time.Minute); !errors.Is(err, postgres.ErrNotEnvelope) {
		t.Fatalf("Set of a non-envelope: %v", err)
	}
	if v, _ := l2.Get(ctx(t), "app:k"); v != nil {
		t.Fatal("a refused Set wrote")
	}
	for _, cfg := range []postgres.Config{
		{},
		{ConnString: srv.URL(), Table: "bad;table"},
		{ConnString: "postgres://u:hunter2@[::1:bad", Password: "hunter2"},
	} {
		_, err := postgres.NewTier(cfg)
		if !errors.Is(err, strata.ErrInvalidSettings) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("NewTier(%+v) = %v; want ErrInvalidSettings without the password", cfg.Table, err)
		}
	}
}

// An unreachable server: errors mark the tier unavailable, and the password
// appears in none of them.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tier, err := postgres.NewTier(postgres.Config{ConnString: "postgres://app@" + addr + "/app?sslmode=disable&connect_timeout=1", Password: "hunter2", PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	l2 := newL2(t, tier, "app:")
	_, err1 := l2.Get(ctx(t), "app:k")
	_, err2 := l2.Set(ctx(t), "app:k", env(1, nil), time.Minute)
	err3 := tier.Ping(ctx(t))
	for _, err := range []error{err1, err2, err3} {
		if !errors.Is(err, hybrid.ErrL2Unavailable) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error %v: want one wrapping hybrid.ErrL2Unavailable, without the password", err)
		}
	}
	if bytes.Contains([]byte(err3.Error()), []byte("hunter2")) {
		t.Fatal("password in Ping's error")
	}
}

// PostgreSQL killed and restarted: the pool's connections are dead, but
// the first call after the restart succeeds (the tier drops the dead
// connections and tries once more on a new one) instead of failing once
// per pooled connection.
func TestRestartFailsNoCall(t *testing.T) {
	srv := pgtest.Start(t)
	tier := newTier(t, srv)
	l2 := newL2(t, tier, "app:")
	c := ctx(t)
	if _, err := l2.Set(c, "app:k", env(1, []byte("before")), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with several connections, all of which the restart kills.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := l2.Get(c, "app:k"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	srv.Kill()
	srv.Restart(t)
	for i := range 8 {
		v, err := l2.Get(c, "app:k")
		if err != nil {
			t.Fatalf("Get %d after the restart: %v", i, err)
		}
		if valueOf(t, v) != "before" {
			t.Fatalf("Get %d after the restart = %q", i, valueOf(t, v))
		}
	}
	srv.Kill()
	srv.Restart(t)
	if _, err := l2.Set(c, "app:k", env(2, []byte("after")), time.Minute); err != nil {
		t.Fatalf("Set after the restart: %v", err)
	}
	srv.Kill()
	srv.Restart(t)
	if err := l2.Delete(c, "app:k"); err != nil {
		t.Fatalf("Delete after the restart: %v", err)
	}
	// A server that stays down still fails the call, at once.
	srv.Kill()
	if _, err := l2.Get(c, "app:k"); !errors.Is(err, hybrid.ErrL2Unavailable) {
		t.Fatalf("Get with the server down: %v; want hybrid.ErrL2Unavailable", err)
	}
}

// A tier on the caller's pool prunes expired rows on its own, stops on
// Close, and leaves the pool open.
func TestTierFromPool(t *testing.T) {
	srv := pgtest.Start(t)
	pool, err := pgxpool.New(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, cfg := range []postgres.Config{
		{Table: "bad;table"},
		{ConnString: srv.URL()},
		{Password: "hunter2"},
		{ChangeRetention: -time.Second},
	} {
		if _, err := postgres.NewTierFromPoolConfig(pool, cfg); !errors.Is(err, strata.ErrInvalidSettings) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("NewTierFromPoolConfig(%+v) = %v; want ErrInvalidSettings without the password", cfg.Table, err)
		}
	}
	if _, err := postgres.NewTierFromPool(nil, ""); !errors.Is(err, strata.ErrInvalidSettings) {
		t.Fatalf("NewTierFromPool(nil) = %v", err)
	}
	tier, err := postgres.NewTierFromPoolConfig(pool, postgres.Config{Table: "pooled", PruneInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l2 := newL2(t, tier, "app:")
	c := ctx(t)
	if _, err := l2.Set(c, "app:gone", env(1, []byte("v")), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Set(c, "app:kept", env(1, []byte("v")), time.Hour); err != nil {
		t.Fatal(err)
	}
	rows := func() (n int) {
		if err := pool.QueryRow(c, `SELECT count(*) FROM pooled`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, 10*time.Second, "the expired row to be pruned", func() bool { return rows() == 1 })
	if err := tier.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(c); err != nil {
		t.Fatalf("the caller's pool after the tier's Close: %v", err)
	}
}
