package hybrid_test

// Scenarios ported from go-redis/cache's cache_test.go (v8/v9: Set/Get/
// Delete, Once, SkipLocalCache, TTL, errors on marshal), run against
// Strata's memory tier alone and against a real redis-server, asserting
// what Strata's docs promise. go-redis/cache's Once is GetOrSet, its
// SkipLocalCache is SkipL1Read+SkipL1Write, its Exists is TryGet's ok.
// SetNX/SetXX have no Strata equivalent and are not ported.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// grObject is go-redis/cache's test Object.
type grObject struct {
	Str string
	Num int
}

// grNodes starts a redis-server and returns a constructor of caches named
// name on it (each one a "process" with its own memory tier) and an
// admin client.
func grNodes(t *testing.T, name string, entry hybrid.EntryOptions, mod ...func(*hybrid.Options)) (func() *hybrid.Cache, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	admin := srv.FastClient(t, "")
	return func() *hybrid.Cache {
		o := hybrid.Options{Name: name, L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger(), Entry: entry}
		for _, m := range mod {
			m(&o)
		}
		return newCache(t, o)
	}, admin
}

var (
	grSkipL1  = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true; o.SkipL1Write = true })
	grL1Only  = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Read = true; o.SkipL2Write = true })
	grNoL2Set = hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL2Write = true })
)

// grPerform is go-redis/cache's perform: n concurrent calls of cb.
func grPerform(n int, cb func(int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cb(i) })
	}
	wg.Wait()
}

// TestGoRedisCacheGetsAndSetsNil ports "Gets and Sets nil": a nil value is
// a value (Exists is true), in memory and through Redis.
func TestGoRedisCacheGetsAndSetsNil(t *testing.T) {
	newNode, _ := grNodes(t, "nil", hybrid.EntryOptions{Duration: time.Hour})
	a, b := newNode(), newNode()
	ctx := context.Background()
	if err := hybrid.Set[*grObject](ctx, a, "mykey", nil); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set[any](ctx, a, "anykey", nil); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*hybrid.Cache{"writer": a, "other node": b} {
		v, ok, err := hybrid.TryGet[*grObject](ctx, c, "mykey")
		if err != nil || !ok || v != nil {
			t.Errorf("%s: TryGet[*grObject] = %v, %v, %v; want nil, true, nil", name, v, ok, err)
		}
		av, ok, err := hybrid.TryGet[any](ctx, c, "anykey")
		if err != nil || !ok || av != nil {
			t.Errorf("%s: TryGet[any] = %v, %v, %v; want nil, true, nil", name, av, ok, err)
		}
	}
}

// TestGoRedisCacheGetsAndSetsData ports "Gets and Sets data" (and "Sets
// bytes as is"): a struct and byte slices round-trip through memory and
// through Redis (another node, and the writer with its memory skipped).
func TestGoRedisCacheGetsAndSetsData(t *testing.T) {
	newNode, _ := grNodes(t, "data", hybrid.EntryOptions{Duration: time.Hour})
	a, b := newNode(), newNode()
	ctx := context.Background()
	obj := &grObject{Str: "mystring", Num: 42}
	if err := hybrid.Set(ctx, a, "obj", obj); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "bytes", []byte("raw\x00bytes")); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, a, "empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]struct {
		c    *hybrid.Cache
		opts []hybrid.Option
	}{"writer": {a, nil}, "writer, memory skipped": {a, []hybrid.Option{grSkipL1}}, "other node": {b, nil}} {
		got, ok, err := hybrid.TryGet[*grObject](ctx, read.c, "obj", read.opts...)
		if err != nil || !ok || *got != *obj {
			t.Errorf("%s: obj = %+v, %v, %v", name, got, ok, err)
		}
		bs, ok, err := hybrid.TryGet[[]byte](ctx, read.c, "bytes", read.opts...)
		if err != nil || !ok || !bytes.Equal(bs, []byte("raw\x00bytes")) {
			t.Errorf("%s: bytes = %q, %v, %v", name, bs, ok, err)
		}
		bs, ok, err = hybrid.TryGet[[]byte](ctx, read.c, "empty", read.opts...)
		if err != nil || !ok || len(bs) != 0 {
			t.Errorf("%s: empty bytes = %q, %v, %v", name, bs, ok, err)
		}
	}
}

// TestGoRedisCacheDeletesKey ports "Deletes key": after Delete, Get is a
// miss and Exists false, on every node, and Once loads again.
func TestGoRedisCacheDeletesKey(t *testing.T) {
	newNode, _ := grNodes(t, "del", hybrid.EntryOptions{Duration: time.Hour})
	a := newNode()
	ctx := context.Background()
	if err := hybrid.Set(ctx, a, "mykey", "v"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet[string](t, a, "mykey"); !ok {
		t.Fatal("not set")
	}
	if err := a.Remove(ctx, "mykey"); err != nil {
		t.Fatal(err)
	}
	b := newNode()
	for name, c := range map[string]*hybrid.Cache{"writer": a, "other node": b} {
		if v, ok := mustGet[string](t, c, "mykey"); ok {
			t.Errorf("%s: after Remove: %q", name, v)
		}
		if v, ok := mustGet[string](t, c, "mykey", grSkipL1); ok {
			t.Errorf("%s: after Remove, from Redis: %q", name, v)
		}
	}
	var k counter
	if v, err := hybrid.GetOrSet(ctx, b, "mykey", k.factory("again", nil)); err != nil || v != "again" || k.calls.Load() != 1 {
		t.Fatalf("GetOrSet after Remove: %q, %v, %d calls", v, err, k.calls.Load())
	}
}

// TestGoRedisCacheOnceWithWrongType ports "Once func: calls Func when cache
// fails": the key holds a string and is read as a bool. go-redis/cache
// gets an unmarshal error from Get and Once overwrites the key. Strata on
// the node that holds the string in memory answers ErrTypeMismatch and
// does not run the factory (docs/getorset.md "Type mismatch": "the factory
// does not run and the stored value is unchanged"); a node that only finds
// the string in Redis treats it as a miss (docs/l2.md: "or that holds
// another type ... is a miss") and its factory's value replaces it
// ("A valid envelope of another type is overwritten by any newer write").
func TestGoRedisCacheOnceWithWrongType(t *testing.T) {
	newNode, _ := grNodes(t, "wrongtype", hybrid.EntryOptions{Duration: time.Hour})
	a, b := newNode(), newNode()
	ctx := context.Background()
	if err := hybrid.Set(ctx, a, "mykey", "*"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	f := func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
		calls.Add(1)
		return true, nil
	}
	if _, _, err := hybrid.TryGet[bool](ctx, a, "mykey"); !errors.Is(err, hybrid.ErrTypeMismatch) {
		t.Fatalf("TryGet[bool] on the writer: %v, want ErrTypeMismatch", err)
	}
	if _, err := hybrid.GetOrSet(ctx, a, "mykey", f); !errors.Is(err, hybrid.ErrTypeMismatch) || calls.Load() != 0 {
		t.Fatalf("GetOrSet[bool] on the writer: %v (%d calls), want ErrTypeMismatch, no call", err, calls.Load())
	}
	if got, err := hybrid.GetOrSet(ctx, b, "mykey", f); err != nil || !got || calls.Load() != 1 {
		t.Fatalf("GetOrSet[bool] on another node: %v, %v (%d calls), want true from the factory", got, err, calls.Load())
	}
	if got, ok := mustGet[bool](t, b, "mykey"); !ok || !got {
		t.Fatalf("TryGet[bool] on that node: %v, %v", got, ok)
	}
	c := newNode()
	if got, ok := mustGet[bool](t, c, "mykey"); !ok || !got {
		t.Fatalf("a third node reads Redis: %v, %v; want the newer bool", got, ok)
	}
}

// TestGoRedisCacheOnceDoesNotCacheWhenFuncFails ports "does not cache when
// Func fails": 100 concurrent callers all get the error (wrapped, matched
// with errors.Is), nothing is cached, and the next call loads.
func TestGoRedisCacheOnceDoesNotCacheWhenFuncFails(t *testing.T) {
	newNode, _ := grNodes(t, "fails", hybrid.EntryOptions{Duration: time.Hour})
	c := newNode()
	ctx := context.Background()
	grPerform(100, func(int) {
		got, err := hybrid.GetOrSet(ctx, c, "mykey", func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
			return false, io.EOF
		})
		if !errors.Is(err, io.EOF) || got {
			t.Errorf("GetOrSet = %v, %v; want io.EOF", got, err)
		}
	})
	if _, ok := mustGet[bool](t, c, "mykey"); ok {
		t.Fatal("a failed load was cached in memory")
	}
	if _, ok := mustGet[bool](t, newNode(), "mykey"); ok {
		t.Fatal("a failed load was cached in Redis")
	}
	if got, err := hybrid.GetOrSet(ctx, c, "mykey", func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
		return true, nil
	}); err != nil || !got {
		t.Fatalf("then: %v, %v", got, err)
	}
}

// TestGoRedisCacheOnceWorksWithValue ports "works with Value", "works with
// ptr and non-ptr" and "works with bool": 100 concurrent callers, one
// factory call, every caller gets the value; through Redis.
func TestGoRedisCacheOnceWorksWithValue(t *testing.T) {
	newNode, _ := grNodes(t, "once", hybrid.EntryOptions{Duration: time.Hour})
	c := newNode()
	ctx := context.Background()
	obj := grObject{Str: "mystring", Num: 42}
	var structCalls, ptrCalls, boolCalls atomic.Int64
	grPerform(100, func(int) {
		got, err := hybrid.GetOrSet(ctx, c, "struct", func(context.Context, *hybrid.FactoryContext[grObject]) (grObject, error) {
			structCalls.Add(1)
			return obj, nil
		})
		if err != nil || got != obj {
			t.Errorf("struct: %+v, %v", got, err)
		}
		p, err := hybrid.GetOrSet(ctx, c, "ptr", func(context.Context, *hybrid.FactoryContext[*grObject]) (*grObject, error) {
			ptrCalls.Add(1)
			return &obj, nil
		})
		if err != nil || p == nil || *p != obj {
			t.Errorf("ptr: %+v, %v", p, err)
		}
		b, err := hybrid.GetOrSet(ctx, c, "bool", func(context.Context, *hybrid.FactoryContext[bool]) (bool, error) {
			boolCalls.Add(1)
			return true, nil
		})
		if err != nil || !b {
			t.Errorf("bool: %v, %v", b, err)
		}
	})
	for name, n := range map[string]int64{"struct": structCalls.Load(), "ptr": ptrCalls.Load(), "bool": boolCalls.Load()} {
		if n != 1 {
			t.Errorf("%s: %d factory calls, want 1", name, n)
		}
	}
	// The value reached Redis: another node reads it without a factory.
	if got, ok := mustGet[grObject](t, newNode(), "struct"); !ok || got != obj {
		t.Errorf("other node: %+v, %v", got, ok)
	}
}

// TestGoRedisCacheOnceWithoutValueAndErrorResult ports "works without
// Value and error result": 100 concurrent callers of a slow failing
// factory make one call and all get its error.
func TestGoRedisCacheOnceWithoutValueAndErrorResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		var calls atomic.Int64
		stub := errors.New("error stub")
		grPerform(100, func(int) {
			_, err := hybrid.GetOrSet(context.Background(), c, "mykey", func(context.Context, *hybrid.FactoryContext[any]) (any, error) {
				time.Sleep(100 * time.Millisecond)
				calls.Add(1)
				return nil, stub
			})
			if !errors.Is(err, stub) {
				t.Errorf("err = %v, want the stub", err)
			}
		})
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d factory calls, want 1", n)
		}
	})
}

// TestGoRedisCacheOnceDoesNotCacheErrorResult ports "does not cache error
// result": a wave of 100 callers gets the error (one call), the next wave
// gets 42 (one more call).
func TestGoRedisCacheOnceDoesNotCacheErrorResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		var calls atomic.Int64
		do := func(sleep time.Duration) (int, error) {
			return hybrid.GetOrSet(context.Background(), c, "mykey", func(context.Context, *hybrid.FactoryContext[int]) (int, error) {
				time.Sleep(sleep)
				if calls.Add(1) == 1 {
					return 0, errors.New("error stub")
				}
				return 42, nil
			})
		}
		grPerform(100, func(int) {
			if n, err := do(100 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "error stub") || n != 0 {
				t.Errorf("first wave: %d, %v", n, err)
			}
		})
		grPerform(100, func(int) {
			if n, err := do(0); err != nil || n != 42 {
				t.Errorf("second wave: %d, %v", n, err)
			}
		})
		if n := calls.Load(); n != 2 {
			t.Fatalf("%d factory calls, want 2", n)
		}
	})
}

// TestGoRedisCacheTTL ports the Item.TTL tests: the Redis TTL is the
// entry's physical lifetime (docs/l2.md: "Duration (+ jitter) without
// fail-safe, max(Duration + jitter, FailSafeMaxDuration) with fail-safe");
// a removal leaves a one-minute record (removalTTL).
func TestGoRedisCacheTTL(t *testing.T) {
	newNode, admin := grNodes(t, "ttl", hybrid.EntryOptions{})
	c := newNode()
	ctx := context.Background()
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := admin.PTTL(ctx, "ttl:"+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	within := func(what string, got, want time.Duration) {
		t.Helper()
		if got > want || got < want-5*time.Second {
			t.Errorf("%s: PTTL %v, want about %v", what, got, want)
		}
	}
	if err := hybrid.Set(ctx, c, "hour", "v", hybrid.WithDuration(time.Hour)); err != nil {
		t.Fatal(err)
	}
	within("Duration 1h", pttl("hour"), time.Hour)
	if err := hybrid.Set(ctx, c, "default", "v"); err != nil {
		t.Fatal(err)
	}
	within("default Duration", pttl("default"), hybrid.DefaultDuration)
	if err := hybrid.Set(ctx, c, "fs", "v", hybrid.WithDuration(time.Minute), hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.FailSafe = true
		o.FailSafeMaxDuration = 2 * time.Hour
	})); err != nil {
		t.Fatal(err)
	}
	within("fail-safe", pttl("fs"), 2*time.Hour)
	if err := hybrid.SetMany(ctx, c, map[string]string{"m1": "v", "m2": "v"}, hybrid.WithDuration(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	within("SetMany", pttl("m2"), 3*time.Hour)
	if _, err := hybrid.GetOrSet(ctx, c, "loaded", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		fc.SetDuration(4 * time.Hour)
		return "v", nil
	}); err != nil {
		t.Fatal(err)
	}
	within("adaptive GetOrSet", pttl("loaded"), 4*time.Hour)
	if err := c.Remove(ctx, "hour"); err != nil {
		t.Fatal(err)
	}
	within("removal record", pttl("hour"), time.Minute)
}

// TestGoRedisCacheExpiration ports the expiry side of Item.TTL on the
// memory tier: fresh until Duration, a miss after, and Once loads again.
func TestGoRedisCacheExpiration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", "v", hybrid.WithDuration(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(999 * time.Millisecond)
		if v, ok := mustGet[string](t, c, "k"); !ok || v != "v" {
			t.Fatalf("before expiry: %q, %v", v, ok)
		}
		time.Sleep(time.Millisecond)
		if v, ok := mustGet[string](t, c, "k"); ok {
			t.Fatalf("at expiry: %q still served", v)
		}
		var k counter
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("w", nil)); err != nil || v != "w" || k.calls.Load() != 1 {
			t.Fatalf("GetOrSet after expiry: %q, %v, %d calls", v, err, k.calls.Load())
		}
	})
}

// TestGoRedisCacheSkipLocalCache ports "skips local cache" (Item.
// SkipLocalCache): a write that skips memory is only in Redis, a read that
// skips memory reads Redis; and the converse, a write that skips Redis
// stays on its node.
func TestGoRedisCacheSkipLocalCache(t *testing.T) {
	newNode, _ := grNodes(t, "skip", hybrid.EntryOptions{Duration: time.Hour})
	a, b := newNode(), newNode()
	ctx := context.Background()
	if err := hybrid.Set(ctx, a, "k", "redis-only", grSkipL1); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, a, "k", grL1Only); ok {
		t.Fatalf("memory holds a value written with SkipL1Write: %q", v)
	}
	if v, ok := mustGet[string](t, a, "k", grSkipL1); !ok || v != "redis-only" {
		t.Fatalf("SkipL1Read: %q, %v", v, ok)
	}
	if v, ok := mustGet[string](t, b, "k"); !ok || v != "redis-only" {
		t.Fatalf("other node: %q, %v", v, ok)
	}
	if err := hybrid.Set(ctx, a, "local", "mem-only", grNoL2Set); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[string](t, a, "local"); !ok || v != "mem-only" {
		t.Fatalf("writer: %q, %v", v, ok)
	}
	if v, ok := mustGet[string](t, b, "local"); ok {
		t.Fatalf("a SkipL2Write value reached another node: %q", v)
	}
	var k counter
	if v, err := hybrid.GetOrSet(ctx, a, "k2", k.factory("x", nil), grSkipL1); err != nil || v != "x" {
		t.Fatalf("GetOrSet skipping memory: %q, %v", v, err)
	}
	if v, ok := mustGet[string](t, a, "k2", grL1Only); ok {
		t.Fatalf("GetOrSet with SkipL1Write stored in memory: %q", v)
	}
	if v, ok := mustGet[string](t, b, "k2"); !ok || v != "x" {
		t.Fatalf("other node: %q, %v", v, ok)
	}
}

// TestGoRedisCacheMarshalError ports the marshal-error cases: a value the
// serializer cannot encode fails Set with that error, and nothing is
// stored in any tier (hybrid/getorset.go Set doc: "the serializer's error,
// wrapped with the key"; SetMany "stores nothing").
func TestGoRedisCacheMarshalError(t *testing.T) {
	newNode, _ := grNodes(t, "marshal", hybrid.EntryOptions{Duration: time.Hour})
	a := newNode()
	ctx := context.Background()
	bad := func() {}
	if err := hybrid.Set(ctx, a, "k", bad); err == nil {
		t.Fatal("Set of a func: no error")
	}
	if _, ok := mustGet[func()](t, a, "k"); ok {
		t.Fatal("an unencodable value was stored in memory")
	}
	err := hybrid.SetMany(ctx, a, map[string]any{"ok": 1, "bad": make(chan int)})
	if err == nil {
		t.Fatal("SetMany with an unencodable value: no error")
	}
	if _, ok := mustGet[any](t, a, "ok"); ok {
		t.Fatal("SetMany stored a value of a call that failed")
	}
}

// TestGoRedisCacheHugeValue: go-redis/cache compresses values over 64
// bytes and stores large ones; Strata stores values up to MaxValueSize
// (measured on the envelope) and refuses larger ones with
// ErrValueTooLarge, storing nothing in any tier (docs/errors.md,
// docs/l2.md); a too-large factory result is kept in memory only.
func TestGoRedisCacheHugeValue(t *testing.T) {
	const limit = 1 << 20
	newNode, _ := grNodes(t, "huge", hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) { o.MaxValueSize = limit })
	a, b := newNode(), newNode()
	ctx := context.Background()
	big := strings.Repeat("x", limit-1024)
	if err := hybrid.Set(ctx, a, "big", big); err != nil {
		t.Fatalf("Set just under MaxValueSize: %v", err)
	}
	if v, ok := mustGet[string](t, b, "big"); !ok || v != big {
		t.Fatalf("other node: %d bytes, %v", len(v), ok)
	}
	huge := strings.Repeat("y", limit+1)
	if err := hybrid.Set(ctx, a, "huge", huge); !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("Set over MaxValueSize: %v, want ErrValueTooLarge", err)
	}
	if _, ok := mustGet[string](t, a, "huge"); ok {
		t.Fatal("a refused value is in memory")
	}
	if err := hybrid.Set(ctx, a, "big", huge); !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("overwrite with a huge value: %v", err)
	}
	if v, ok := mustGet[string](t, a, "big"); !ok || v != big {
		t.Fatalf("a refused overwrite changed the key: %d bytes, %v", len(v), ok)
	}
	if err := hybrid.SetMany(ctx, a, map[string]string{"s1": "small", "s2": huge}); !errors.Is(err, hybrid.ErrValueTooLarge) {
		t.Fatalf("SetMany with a huge value: %v", err)
	}
	if _, ok := mustGet[string](t, a, "s1"); ok {
		t.Fatal("SetMany stored part of a refused call")
	}
	v, err := hybrid.GetOrSet(ctx, a, "loaded", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
		return huge, nil
	})
	if err != nil || v != huge {
		t.Fatalf("GetOrSet of a huge factory result: %d bytes, %v", len(v), err)
	}
	if v, ok := mustGet[string](t, a, "loaded"); !ok || v != huge {
		t.Fatalf("the huge factory result is not in memory: %v", ok)
	}
	if _, ok := mustGet[string](t, b, "loaded"); ok {
		t.Fatal("the huge factory result reached Redis")
	}
	res, err := hybrid.GetOrSetMany(ctx, a, []string{"h1", "h2"}, func(ctx context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
		return map[string]string{"h1": huge, "h2": "small"}, nil
	})
	if err != nil || !res[0].Found || res[0].Value != huge || res[1].Value != "small" {
		t.Fatalf("GetOrSetMany with a huge result: %v", err)
	}
	if _, ok := mustGet[string](t, b, "h1"); ok {
		t.Fatal("the huge batch result reached Redis")
	}
	if v, ok := mustGet[string](t, b, "h2"); !ok || v != "small" {
		t.Fatalf("the small batch result did not reach Redis: %q, %v", v, ok)
	}
}

// TestGoRedisCacheEmptyKey: go-redis/cache passes an empty key to Redis;
// Strata refuses it (and over-long and reserved keys) with ErrInvalidKey
// on every operation, first, even on a closed cache (docs/errors.md).
func TestGoRedisCacheEmptyKey(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{MaxKeyLength: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var k counter
	check := func(state string) {
		t.Helper()
		for _, key := range []string{"", "123456789", "__strata:x"} {
			_, gerr := hybrid.GetOrSet(ctx, c, key, k.factory("v", nil))
			_, _, terr := hybrid.TryGet[string](ctx, c, key)
			for op, err := range map[string]error{
				"GetOrSet": gerr,
				"TryGet":   terr,
				"Set":      hybrid.Set(ctx, c, key, "v"),
				"Remove":   c.Remove(ctx, key),
				"Expire":   c.Expire(ctx, key),
			} {
				if !errors.Is(err, hybrid.ErrInvalidKey) {
					t.Errorf("%s: %s(%q): %v, want ErrInvalidKey", state, op, key, err)
				}
			}
		}
	}
	check("open")
	if err := hybrid.Set(ctx, c, "12345678", "max length"); err != nil {
		t.Fatalf("a key of exactly MaxKeyLength: %v", err)
	}
	c.Close()
	check("closed")
	if k.calls.Load() != 0 {
		t.Fatal("the factory ran for an invalid key")
	}
}

// TestGoRedisCacheCancelledContextOverRedis: a GetOrSet whose context ends
// while the load waits returns ctx.Err() at once, and the load still fills
// both tiers for the others (docs/getorset.md, miss path step 2).
func TestGoRedisCacheCancelledContextOverRedis(t *testing.T) {
	newNode, _ := grNodes(t, "cancel", hybrid.EntryOptions{Duration: time.Hour})
	a, b := newNode(), newNode()
	started, release := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := hybrid.GetOrSet(ctx, a, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			close(started)
			<-release
			return "v", nil
		})
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("GetOrSet with its context cancelled: %v", err)
	}
	close(release)
	redistest.Eventually(t, "the load reached Redis", func() bool {
		v, ok := mustGet[string](t, b, "k", grSkipL1)
		return ok && v == "v"
	})
	if v, ok := mustGet[string](t, a, "k"); !ok || v != "v" {
		t.Fatalf("writer's memory: %q, %v", v, ok)
	}
}

// TestGoRedisCacheEntryLargerThanMemory: go-redis/cache's local cache
// (TinyLFU) silently drops what it cannot hold and Get falls back to
// Redis. Strata documents the same edge (docs/getorset.md, "Read-your-
// writes ends where capacity starts": an entry whose Size exceeds
// L1MaxEntries is never stored in memory, a removal takes the key's place
// so no older value is served, and with a distributed tier it is read from
// there; Set returns nil).
func TestGoRedisCacheEntryLargerThanMemory(t *testing.T) {
	newNode, _ := grNodes(t, "cap", hybrid.EntryOptions{Duration: time.Hour}, func(o *hybrid.Options) { o.L1MaxEntries = 10 })
	c := newNode()
	mem := newCache(t, hybrid.Options{L1MaxEntries: 10})
	ctx := context.Background()
	size100 := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.Size = 100 })
	for name, cache := range map[string]*hybrid.Cache{"with Redis": c, "memory-only": mem} {
		if err := hybrid.Set(ctx, cache, "k", "old"); err != nil {
			t.Fatal(err)
		}
		if err := hybrid.Set(ctx, cache, "k", "big", size100); err != nil {
			t.Fatalf("%s: Set larger than memory: %v, want nil", name, err)
		}
		v, ok := mustGet[string](t, cache, "k")
		switch {
		case name == "memory-only" && ok:
			t.Errorf("%s: read %q, want a miss (never stored, the older value not served)", name, v)
		case name == "with Redis" && (!ok || v != "big"):
			t.Errorf("%s: read %q, %v; want \"big\" from Redis", name, v, ok)
		}
	}
}

// TestGoRedisCacheExpiredEntryOfAnotherType: go-redis/cache's Once
// overwrites a key whose bytes do not decode into the wanted type. Strata
// does so for an expired entry of another type (docs/getorset.md: "An
// expired entry of another type is not a mismatch: GetOrSet[string] on a
// stale int runs the factory and replaces it with a string"), while a
// fresh one stays ErrTypeMismatch.
func TestGoRedisCacheExpiredEntryOfAnotherType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: time.Second, FailSafe: true}})
		ctx := context.Background()
		if err := hybrid.Set(ctx, c, "k", 42); err != nil {
			t.Fatal(err)
		}
		var k counter
		if _, err := hybrid.GetOrSet(ctx, c, "k", k.factory("s", nil)); !errors.Is(err, hybrid.ErrTypeMismatch) {
			t.Fatalf("fresh int read as string: %v, want ErrTypeMismatch", err)
		}
		time.Sleep(2 * time.Second)
		if v, err := hybrid.GetOrSet(ctx, c, "k", k.factory("s", nil)); err != nil || v != "s" || k.calls.Load() != 1 {
			t.Fatalf("stale int read as string: %q, %v (%d calls), want the factory's string", v, err, k.calls.Load())
		}
		if _, _, err := hybrid.TryGet[int](ctx, c, "k"); !errors.Is(err, hybrid.ErrTypeMismatch) {
			t.Fatalf("TryGet[int] after the replacement: %v, want ErrTypeMismatch", err)
		}
		// The batch path: the same rule per key.
		if err := hybrid.Set(ctx, c, "b", 7); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		res := scMany(t, c, []string{"b"}, newSCSource("b").fetch)
		scWant(t, res[0], "b", "valueb")
	})
}
