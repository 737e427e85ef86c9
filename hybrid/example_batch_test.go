package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

func ExampleGetOrSetMany() {
	c, _ := hybrid.New(hybrid.Options{Name: "users", Entry: hybrid.EntryOptions{Duration: time.Minute}})
	defer c.Close()
	ctx := context.Background()

	// The source: one query for many ids, like SELECT ... WHERE id IN (...).
	db := map[string]User{"user:1": {ID: 1, Name: "Ada"}, "user:2": {ID: 2, Name: "Grace"}}
	load := func(ctx context.Context, bc *hybrid.BatchContext[User]) (map[string]User, error) {
		fmt.Println("loading", bc.Keys())
		found := map[string]User{}
		for _, k := range bc.Keys() {
			if u, ok := db[k]; ok {
				found[k] = u
			}
		}
		return found, nil
	}

	_ = hybrid.Set(ctx, c, "user:1", User{ID: 1, Name: "Ada"}) // already cached
	res, err := hybrid.GetOrSetMany(ctx, c, []string{"user:1", "user:2", "user:3", "user:2"}, load)
	if err != nil {
		fmt.Println("call failed:", err)
		return
	}
	for _, r := range res {
		switch {
		case r.Err != nil:
			fmt.Println("error:", r.Err)
		case !r.Found:
			fmt.Println("not found")
		default:
			fmt.Println(r.Value.Name)
		}
	}
	// Output:
	// loading [user:2 user:3]
	// Ada
	// Grace
	// not found
	// Grace
}

func ExampleSetMany() {
	c, _ := hybrid.New(hybrid.Options{})
	defer c.Close()
	ctx := context.Background()

	_ = hybrid.SetMany(ctx, c, map[string]int{"a": 1, "b": 2})
	res, _ := hybrid.TryGetMany[int](ctx, c, []string{"a", "b", "c"})
	for _, r := range res {
		fmt.Println(r.Value, r.Found)
	}
	_ = c.RemoveMany(ctx, []string{"a", "b"})
	res, _ = hybrid.TryGetMany[int](ctx, c, []string{"a", "b"})
	fmt.Println(res[0].Found, res[1].Found)
	// Output:
	// 1 true
	// 2 true
	// 0 false
	// false false
}

func ExampleBatchContext_Fail() {
	c, _ := hybrid.New(hybrid.Options{Name: "prices"})
	defer c.Close()
	ctx := context.Background()

	// One upstream call per key inside a batch: one of them fails, the
	// others are answered and cached.
	fetch := func(key string) (int, error) {
		if key == "sku-2" {
			return 0, errors.New("upstream timeout")
		}
		return len(key) * 100, nil
	}
	load := func(ctx context.Context, bc *hybrid.BatchContext[int]) (map[string]int, error) {
		out := map[string]int{}
		for _, k := range bc.Keys() {
			v, err := fetch(k)
			if err != nil {
				bc.Fail(k, err) // this key alone
				continue
			}
			out[k] = v
		}
		return out, nil
	}
	res, _ := hybrid.GetOrSetMany(ctx, c, []string{"sku-1", "sku-2", "sku-3"}, load)
	for _, r := range res {
		if r.Err != nil {
			fmt.Println("error:", r.Err)
			continue
		}
		fmt.Println(r.Value)
	}
	// Output:
	// 500
	// error: hybrid: batch factory "sku-2": upstream timeout
	// 500
}
