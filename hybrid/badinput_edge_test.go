package hybrid_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/serializer"
)

// label is a value read through an interface type, fmt.Stringer.
type label struct{ S string }

func (l label) String() string { return l.S }

// TestAutoCloneInterfaceType: with AutoClone and T an interface type, the
// copy cannot be decoded back into T (the serializer does not know which
// concrete type to build; msgpack panics trying). The write fails with an
// error and stores nothing, instead of every read panicking in the cache.
func TestAutoCloneInterfaceType(t *testing.T) {
	c := newCache(t, hybrid.Options{Logger: quietLogger()})
	ctx := context.Background()
	clone := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AutoClone = true })

	if err := hybrid.Set[fmt.Stringer](ctx, c, "k", label{"x"}, clone); err == nil {
		t.Fatal("Set[fmt.Stringer] with AutoClone: nil error; no read could decode the copy")
	}
	if _, ok := mustGet[fmt.Stringer](t, c, "k"); ok {
		t.Fatal("a refused Set stored a value")
	}
	var k counter
	v, err := hybrid.GetOrSet(ctx, c, "g", func(ctx context.Context, fc *hybrid.FactoryContext[fmt.Stringer]) (fmt.Stringer, error) {
		k.calls.Add(1)
		return label{"y"}, nil
	}, clone)
	if err == nil || v != nil {
		t.Fatalf("GetOrSet[fmt.Stringer] with AutoClone = %v, %v; want an error", v, err)
	}
	if _, ok := mustGet[fmt.Stringer](t, c, "g"); ok {
		t.Fatal("a refused factory result was stored")
	}
	if err := hybrid.SetMany[fmt.Stringer](ctx, c, map[string]fmt.Stringer{"m": label{"z"}}, clone); err == nil {
		t.Fatal("SetMany[fmt.Stringer] with AutoClone: nil error")
	}

	// What decodes back still works: a nil interface, and any.
	if err := hybrid.Set[fmt.Stringer](ctx, c, "nil", nil, clone); err != nil {
		t.Fatalf("Set of a nil fmt.Stringer with AutoClone: %v", err)
	}
	if v, ok := mustGet[fmt.Stringer](t, c, "nil"); !ok || v != nil {
		t.Fatalf("nil fmt.Stringer read back as %v, %v", v, ok)
	}
	if err := hybrid.Set[any](ctx, c, "any", 42, clone); err != nil {
		t.Fatalf("Set[any] with AutoClone: %v", err)
	}
	// Without AutoClone an interface type is stored as it is.
	if err := hybrid.Set[fmt.Stringer](ctx, c, "plain", label{"p"}); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[fmt.Stringer](t, c, "plain"); !ok || v.String() != "p" {
		t.Fatalf("plain fmt.Stringer read back as %v, %v", v, ok)
	}
}

func TestCancelledContextPing(t *testing.T) {
	c := newCache(t, hybrid.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestBatchInvalidKeyBeforeClosed: SetMany and RemoveMany check their keys
// before whether the cache is closed or ctx done, as every single-key
// operation does, so that the error does not depend on the (random)
// order of a map's keys.
func TestBatchInvalidKeyBeforeClosed(t *testing.T) {
	values := map[string]int{"": 0}
	keys := []string{}
	for i := range 30 {
		k := fmt.Sprint("k", i)
		values[k] = i
		keys = append(keys, k)
	}
	keys = append(keys, "")

	closed, err := hybrid.New(hybrid.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	open := newCache(t, hybrid.Options{})
	for _, tc := range []struct {
		name string
		c    *hybrid.Cache
		ctx  context.Context
	}{
		{"closed", closed, context.Background()},
		{"cancelled", open, cancelled},
	} {
		for range 20 { // a map's order changes from one range to the next
			if err := hybrid.SetMany(tc.ctx, tc.c, values); !errors.Is(err, hybrid.ErrInvalidKey) {
				t.Fatalf("%s: SetMany with an empty key = %v, want ErrInvalidKey", tc.name, err)
			}
		}
		if err := tc.c.RemoveMany(tc.ctx, keys); !errors.Is(err, hybrid.ErrInvalidKey) {
			t.Fatalf("%s: RemoveMany with an empty key = %v, want ErrInvalidKey", tc.name, err)
		}
		// Valid keys only: the cache's state, or ctx's, is the error.
		if err := hybrid.SetMany(tc.ctx, tc.c, map[string]int{"a": 1}); err == nil || errors.Is(err, hybrid.ErrInvalidKey) {
			t.Fatalf("%s: SetMany of valid keys = %v", tc.name, err)
		}
		if err := tc.c.RemoveMany(tc.ctx, keys[:3]); err == nil || errors.Is(err, hybrid.ErrInvalidKey) {
			t.Fatalf("%s: RemoveMany of valid keys = %v", tc.name, err)
		}
	}
	if _, ok := mustGet[int](t, open, "k1"); ok {
		t.Fatal("a refused SetMany stored a value")
	}
}

// TestL2InterfaceTypeUndecodable: an entry stored in Redis as an interface
// type (Set[fmt.Stringer]) cannot be decoded back into it by another
// process (msgpack panics trying). The read is a miss, counted as
// corrupt, as docs/serialization.md says of an Unmarshal error: no panic
// in the reader's call.
func TestL2InterfaceTypeUndecodable(t *testing.T) {
	srv := redistest.Start(t)
	mk := func() *hybrid.Cache {
		return newCache(t, hybrid.Options{Name: "iface", L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger()})
	}
	a, b := mk(), mk()
	ctx := context.Background()
	if err := hybrid.Set[fmt.Stringer](ctx, a, "k", label{"x"}); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet[fmt.Stringer](t, b, "k"); ok {
		t.Fatalf("TryGet from L2 = %v; want a miss", v)
	}
	if got := b.Stats().L2Corrupt; got != 1 {
		t.Fatalf("L2Corrupt = %d, want 1", got)
	}
	v, err := hybrid.GetOrSet(ctx, b, "k", func(ctx context.Context, fc *hybrid.FactoryContext[fmt.Stringer]) (fmt.Stringer, error) {
		return label{"y"}, nil
	})
	if err != nil || v.String() != "y" {
		t.Fatalf("GetOrSet after the undecodable entry = %v, %v; want the factory's value", v, err)
	}
}

// undecodable is a serializer whose encodings never decode.
type undecodable struct{ serializer.Msgpack }

func (undecodable) Unmarshal([]byte, any) error { return errors.New("corrupt") }

// TestAutoCloneUndecodableSaysSo: an auto-clone copy that the serializer
// cannot decode is ErrTypeMismatch with a message that says so; it used
// to read "holds string, read as string".
func TestAutoCloneUndecodableSaysSo(t *testing.T) {
	c, err := hybrid.New(hybrid.Options{Serializer: undecodable{}, Entry: hybrid.EntryOptions{AutoClone: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	_, _, err = hybrid.TryGet[string](ctx, c, "k")
	if !errors.Is(err, hybrid.ErrTypeMismatch) || !strings.Contains(err.Error(), "cannot decode") {
		t.Fatalf("TryGet of an undecodable copy: %v; want ErrTypeMismatch saying it cannot decode", err)
	}
}

// panicky is a serializer whose Marshal panics (a custom serializer's bug,
// or a value it cannot handle).
type panicky struct{ serializer.Msgpack }

func (panicky) Marshal(any) ([]byte, error) { panic("cannot encode this") }

// TestSerializerMarshalPanicIsAnError: a serializer that panics on encode
// fails the write with an error, in the caller's goroutine, and the write
// stores nothing: with a distributed tier (the value is encoded for it),
// with AutoClone (encoded for the copy), and for a GetOrSet's factory
// result.
func TestSerializerMarshalPanicIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    hybrid.Options
	}{
		{"l2", hybrid.Options{Name: "panicky", Serializer: panicky{}, L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Logger: quietLogger()}},
		{"autoclone", hybrid.Options{Serializer: panicky{}, Entry: hybrid.EntryOptions{AutoClone: true}, Logger: quietLogger()}},
	} {
		c := newCache(t, tc.o)
		err := hybrid.Set(ctx, c, "k", "v")
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Fatalf("%s: Set with a serializer that panics = %v; want an error saying it panicked", tc.name, err)
		}
		if v, ok := mustGet[string](t, c, "k"); ok {
			t.Fatalf("%s: a failed Set stored %q", tc.name, v)
		}
		_, err = hybrid.GetOrSet(ctx, c, "g", func(context.Context, *hybrid.FactoryContext[string]) (string, error) { return "v", nil })
		if tc.name == "autoclone" && err == nil {
			t.Fatalf("%s: GetOrSet whose result cannot be encoded for its copy = nil error", tc.name)
		}
	}
}
