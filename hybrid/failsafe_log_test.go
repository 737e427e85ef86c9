package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/internal/testlog"
)

func logTo(b *testlog.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// A soft timeout serves the stale value (one fail-safe activation); the
// factory then fails in the background: that failure is logged as such,
// with its error, and is not a second activation. A failure served at once
// is logged with the error it swallows.
func TestFailSafeCountsOnceAndLogsTheError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		c := newCache(t, hybrid.Options{Logger: logTo(&logs), Entry: hybrid.EntryOptions{
			Duration: time.Second, FailSafe: true, FactorySoftTimeout: 100 * time.Millisecond}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // expired, a fail-safe fallback
		slowFail := func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			time.Sleep(time.Second)
			return "", errors.New("db-7 refused the connection")
		}
		if v, err := hybrid.GetOrSet(ctx, c, "k", slowFail); err != nil || v != "old" {
			t.Fatalf("GetOrSet = %q, %v; want the stale value at the soft timeout", v, err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := c.Stats().FailSafeActivations; n != 1 {
			t.Errorf("FailSafeActivations = %d; want 1 (one stale value served)", n)
		}
		out := logs.String()
		if n := strings.Count(out, "fail-safe activated"); n != 1 {
			t.Errorf("fail-safe activated logged %d times; want 1:\n%s", n, out)
		}
		if !strings.Contains(out, "background factory failed") || !strings.Contains(out, "db-7 refused") {
			t.Errorf("the late failure is not logged with its error:\n%s", out)
		}

		// A failure served at once: the activation's log line has the error.
		time.Sleep(time.Minute) // past the throttle
		var k counter
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("", errors.New("db-8 is down"))); err != nil || v != "old" {
			t.Fatalf("GetOrSet = %q, %v", v, err)
		}
		if out := logs.String(); !strings.Contains(out, "db-8 is down") {
			t.Errorf("the swallowed factory error is in no log line:\n%s", out)
		}
	})
}

// With RedactKeys no log line names a key, also not inside a logged error
// (the distributed tier's errors quote the key they were about).
func TestRedactKeysCoversLoggedErrors(t *testing.T) {
	srv := redistest.Start(t)
	const secret = "acct-4711-secret"
	if err := srv.Client(t).LPush(context.Background(), "app:"+secret, "x").Err(); err != nil {
		t.Fatal(err) // a key of another Redis type: GET fails with WRONGTYPE
	}
	var logs testlog.Buffer
	c := node(t, srv.FastClient(t, ""), hybrid.EntryOptions{Duration: time.Minute}, func(o *hybrid.Options) {
		o.Logger, o.RedactKeys = logTo(&logs), true
	})
	var k counter
	if v, err := hybrid.GetOrSet(context.Background(), c, secret, k.factory("v", nil)); err != nil || v != "v" {
		t.Fatalf("GetOrSet over a WRONGTYPE key = %q, %v", v, err)
	}
	out := logs.String()
	if !strings.Contains(out, "WRONGTYPE") {
		t.Fatalf("the configuration error was not logged:\n%s", out)
	}
	if strings.Contains(out, "4711") {
		t.Fatalf("RedactKeys: the key is in the log:\n%s", out)
	}
}

// With RedactKeys a factory's panic value is logged without the key where
// it quotes it, as a logged error is ("factory panicked" logged the value
// as it was).
func TestRedactKeysCoversPanicValues(t *testing.T) {
	const secret = "acct-4711-secret"
	var logs testlog.Buffer
	c := newCache(t, hybrid.Options{Logger: logTo(&logs), RedactKeys: true})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the factory's panic did not reach its caller")
			}
		}()
		_, _ = hybrid.GetOrSet(context.Background(), c, secret, func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			panic(fmt.Sprintf("no row for %q", fc.Key()))
		})
	}()
	// Unquoted, in a panic value and in a factory error that fail-safe
	// swallows (and logs).
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the factory's panic did not reach its caller")
			}
		}()
		_, _ = hybrid.GetOrSet(context.Background(), c, secret+"-2", func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
			panic("no row for " + fc.Key())
		})
	}()
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, secret+"-3", "old", hybrid.WithFailSafe(true)); err != nil {
		t.Fatal(err)
	}
	if err := c.Expire(ctx, secret+"-3"); err != nil {
		t.Fatal(err)
	}
	v, err := hybrid.GetOrSet(ctx, c, secret+"-3", func(_ context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("db has no " + fc.Key())
	}, hybrid.WithFailSafe(true))
	if err != nil || v != "old" {
		t.Fatalf("GetOrSet with fail-safe = %q, %v; want the stale value", v, err)
	}
	out := logs.String()
	if !strings.Contains(out, "factory panicked") || !strings.Contains(out, "no row for") || !strings.Contains(out, "db has no") {
		t.Fatalf("the panics and the error were not logged:\n%s", out)
	}
	if strings.Contains(out, "4711") {
		t.Fatalf("RedactKeys: the key is in the log:\n%s", out)
	}
}
