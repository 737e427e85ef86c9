package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

type User struct {
	ID   int
	Name string
}

func ExampleGetOrSet() {
	c, err := hybrid.New(hybrid.Options{Name: "users", Entry: hybrid.EntryOptions{Duration: time.Minute}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	load := func(ctx context.Context, fc *hybrid.FactoryContext[User]) (User, error) {
		fmt.Println("loading", fc.Key())
		return User{ID: 42, Name: "Ada"}, nil
	}
	if _, err := hybrid.GetOrSet(ctx, c, "user:42", load); err != nil { // miss: the factory runs
		panic(err)
	}
	u, err := hybrid.GetOrSet(ctx, c, "user:42", load) // hit: it does not
	if err != nil {
		panic(err)
	}
	fmt.Println(u.Name)
	// Output:
	// loading user:42
	// Ada
}

// A factory that needs another key reads it with its own ctx. Should the
// chain come back to a key being loaded (here "a" needs "b", which needs
// "a"), the inner call gets ErrLoadCycle instead of waiting for itself.
func ExampleGetOrSet_loadCycle() {
	c, err := hybrid.New(hybrid.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var loadA, loadB hybrid.Factory[string]
	loadA = func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		b, err := hybrid.GetOrSet(ctx, c, "b", loadB) // pass the factory's ctx on
		return "a needs " + b, err
	}
	loadB = func(ctx context.Context, _ *hybrid.FactoryContext[string]) (string, error) {
		if _, err := hybrid.GetOrSet(ctx, c, "a", loadA); err != nil {
			fmt.Println("b:", errors.Is(err, hybrid.ErrLoadCycle))
		}
		return "b alone", nil
	}
	a, err := hybrid.GetOrSet(context.Background(), c, "a", loadA)
	fmt.Println(a, err)
	// Output:
	// b: true
	// a needs b alone <nil>
}

func ExampleTryGet() {
	c, err := hybrid.New(hybrid.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	_, ok, err := hybrid.TryGet[int](ctx, c, "answer")
	if err != nil {
		panic(err)
	}
	fmt.Println("before Set:", ok)
	if err := hybrid.Set(ctx, c, "answer", 42); err != nil {
		panic(err)
	}
	v, ok, err := hybrid.TryGet[int](ctx, c, "answer")
	if err != nil {
		panic(err)
	}
	fmt.Println("after Set:", v, ok)
	_, _, err = hybrid.TryGet[string](ctx, c, "answer")
	fmt.Println(errors.Is(err, hybrid.ErrTypeMismatch))
	// Output:
	// before Set: false
	// after Set: 42 true
	// true
}

func Example_failSafe() {
	c, err := hybrid.New(hybrid.Options{Entry: hybrid.EntryOptions{
		Duration: time.Millisecond, // expire almost at once, for the example
		FailSafe: true,             // but keep the value as a fallback
	}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := hybrid.Set(ctx, c, "price", 10); err != nil {
		panic(err)
	}
	time.Sleep(2 * time.Millisecond) // the entry is now stale

	v, err := hybrid.GetOrSet(ctx, c, "price", func(ctx context.Context, fc *hybrid.FactoryContext[int]) (int, error) {
		return 0, errors.New("database down")
	})
	fmt.Println(v, err)
	// Output:
	// 10 <nil>
}
