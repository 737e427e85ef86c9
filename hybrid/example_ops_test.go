package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/strata-cache/strata/backplane"
	"github.com/strata-cache/strata/hybrid"
)

// Set stores a value in every tier of the cache, with per-call options; a
// bad key or option is an error and stores nothing.
func ExampleSet() {
	c, err := hybrid.New(hybrid.Options{Name: "prices"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := hybrid.Set(ctx, c, "sku:1", 9.99, hybrid.WithDuration(10*time.Minute), hybrid.WithTags("shop:1")); err != nil {
		log.Fatal(err)
	}
	v, ok, err := hybrid.TryGet[float64](ctx, c, "sku:1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v, ok)

	err = hybrid.Set(ctx, c, "", 1.0)
	fmt.Println(errors.Is(err, hybrid.ErrInvalidKey))
	err = hybrid.Set(ctx, c, "sku:2", 1.0, hybrid.WithDuration(-time.Second))
	fmt.Println(errors.Is(err, hybrid.ErrInvalidOptions))
	// Output:
	// 9.99 true
	// true
	// true
}

// Remove deletes a key from every tier; the next GetOrSet loads it again.
func ExampleCache_Remove() {
	c, err := hybrid.New(hybrid.Options{Name: "users"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := hybrid.Set(ctx, c, "user:42", "Ada"); err != nil {
		log.Fatal(err)
	}
	if err := c.Remove(ctx, "user:42"); err != nil {
		log.Fatal(err)
	}
	_, ok, err := hybrid.TryGet[string](ctx, c, "user:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after Remove:", ok)
	// Output:
	// after Remove: false
}

// RemoveByTag invalidates every entry that carries one of the tags, without
// listing them; entries without the tag stay.
func ExampleCache_RemoveByTag() {
	c, err := hybrid.New(hybrid.Options{Name: "products"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	for key, tag := range map[string]string{"p:1": "shop:1", "p:2": "shop:1", "p:3": "shop:2"} {
		if err := hybrid.Set(ctx, c, key, "product "+key, hybrid.WithTags(tag)); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.RemoveByTag(ctx, "shop:1"); err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"p:1", "p:2", "p:3"} {
		_, ok, err := hybrid.TryGet[string](ctx, c, key)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(key, ok)
	}
	// Output:
	// p:1 false
	// p:2 false
	// p:3 true
}

// Clear invalidates every entry of the cache. Clear(ctx, true) keeps the
// entries as fail-safe fallbacks; Clear(ctx, false) removes them.
func ExampleCache_Clear() {
	c, err := hybrid.New(hybrid.Options{Name: "pages", Entry: hybrid.EntryOptions{FailSafe: true}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := hybrid.Set(ctx, c, "page:/", "<html>v1</html>"); err != nil {
		log.Fatal(err)
	}
	if err := c.Clear(ctx, true); err != nil {
		log.Fatal(err)
	}
	// The entry is expired, but fail-safe still answers with it when the
	// source fails.
	v, err := hybrid.GetOrSet(ctx, c, "page:/", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("renderer down")
	})
	fmt.Println(v, err)

	if err := c.Clear(ctx, false); err != nil {
		log.Fatal(err)
	}
	_, err = hybrid.GetOrSet(ctx, c, "page:/", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return "", errors.New("renderer down")
	})
	fmt.Println(err)
	// Output:
	// <html>v1</html> <nil>
	// hybrid: factory "page:/": renderer down
}

// Events observe a cache: here two counters and the factory calls.
func ExampleEvents() {
	var hits, misses atomic.Int64
	ev := &hybrid.Events{
		Hit:  func(hybrid.HitEvent) { hits.Add(1) },
		Miss: func(hybrid.MissEvent) { misses.Add(1) },
		FactoryCall: func(e hybrid.FactoryCallEvent) {
			fmt.Printf("factory %s/%s, err=%v\n", e.Cache, e.Key, e.Err)
		},
	}
	c, err := hybrid.New(hybrid.Options{Name: "users", Events: ev})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	load := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) { return "Ada", nil }
	for range 3 {
		if _, err := hybrid.GetOrSet(ctx, c, "user:42", load); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("hits:", hits.Load(), "misses:", misses.Load())
	// Output:
	// factory users/user:42, err=<nil>
	// hits: 2 misses: 1
}

// NotModified keeps the stale value when the source says it has not
// changed (an HTTP 304 to an If-None-Match with the stored ETag).
func ExampleFactoryContext_NotModified() {
	c, err := hybrid.New(hybrid.Options{Name: "pages", Entry: hybrid.EntryOptions{FailSafe: true}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// fetch stands for an HTTP GET with If-None-Match: the page has not
	// changed since ETag "v1".
	fetch := func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		if fc.ETag() == "v1" {
			fmt.Println("304 Not Modified")
			return fc.NotModified()
		}
		fmt.Println("200 OK")
		fc.SetETag("v1")
		return "<html>v1</html>", nil
	}
	v, err := hybrid.GetOrSet(ctx, c, "page:/", fetch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)

	if err := c.Expire(ctx, "page:/"); err != nil { // stale: the next read refreshes it
		log.Fatal(err)
	}
	v, err = hybrid.GetOrSet(ctx, c, "page:/", fetch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)

	// Without a stale value there is nothing to keep.
	_, err = hybrid.GetOrSet(ctx, c, "page:/new", func(ctx context.Context, fc *hybrid.FactoryContext[string]) (string, error) {
		return fc.NotModified()
	})
	fmt.Println(errors.Is(err, hybrid.ErrNoStaleValue))
	// Output:
	// 200 OK
	// <html>v1</html>
	// 304 Not Modified
	// <html>v1</html>
	// true
}

// Two instances of a cache in one process, kept coherent by an in-process
// backplane (a strata.Provider with Redis uses a Redis pub/sub backplane
// instead): a Remove on one removes the other's copy too.
func Example_backplane() {
	hub := backplane.NewMemoryHub()
	newNode := func() *hybrid.Cache {
		c, err := hybrid.New(hybrid.Options{Name: "users", Backplane: hub.Backplane("users")})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	a, b := newNode(), newNode()
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	if err := hybrid.Set(ctx, b, "user:42", "Ada"); err != nil {
		log.Fatal(err)
	}
	if err := a.Remove(ctx, "user:42"); err != nil {
		log.Fatal(err)
	}
	// Delivery is asynchronous: wait (with a deadline) for b to drop its copy.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := hybrid.TryGet[string](ctx, b, "user:42")
		if err != nil {
			log.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("b still holds its copy")
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println("b dropped its copy")
	// Output:
	// b dropped its copy
}

// ValidateKey refuses a request whole before any of it runs: here a batch
// whose keys come from a client, checked before any is read or loaded.
func ExampleCache_ValidateKey() {
	c, err := hybrid.New(hybrid.Options{Name: "users", MaxKeyLength: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, key := range []string{"user:1", "", "user:with-a-very-long-id"} {
		if err := c.ValidateKey(key); err != nil {
			fmt.Println(errors.Is(err, hybrid.ErrInvalidKey), err)
			continue
		}
		fmt.Println("ok", key)
	}
	// Output:
	// ok user:1
	// true hybrid: invalid key: empty
	// true hybrid: invalid key: 24 bytes, longer than 16
}
