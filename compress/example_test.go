package compress_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-cache/strata/compress"
	"github.com/strata-cache/strata/hybrid"
)

// mapL2 is a distributed tier in a map, standing in for
// hybrid.NewRedisL2(client) so that the example runs without Redis.
type mapL2 struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapL2) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[key]), nil
}

func (s *mapL2) Set(_ context.Context, key string, v []byte, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = bytes.Clone(v)
	return true, nil
}

func (s *mapL2) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// A cache whose values of 1 KiB or more go to the distributed tier
// compressed with zstd. One Zstd serves every cache of the process; every
// node of the cache uses the same codec.
func ExampleNewZstd() {
	z, err := compress.NewZstd(zstd.SpeedFastest)
	if err != nil {
		panic(err)
	}
	l2 := &mapL2{m: map[string][]byte{}} // in production: hybrid.NewRedisL2(client)
	writer, err := hybrid.New(hybrid.Options{Name: "pages", L2: l2, Compressor: z})
	if err != nil {
		panic(err)
	}
	defer writer.Close()
	ctx := context.Background()

	page := strings.Repeat("<li>an item of a long, repetitive page</li>", 1000) // 43,000 bytes
	if err := hybrid.Set(ctx, writer, "home", page); err != nil {
		panic(err)
	}
	fmt.Println("stored in under 1 KiB:", len(l2.m["pages:home"]) < 1<<10)

	// Another node, with an empty memory tier, reads it from L2.
	reader, err := hybrid.New(hybrid.Options{Name: "pages", L2: l2, Compressor: z})
	if err != nil {
		panic(err)
	}
	defer reader.Close()
	v, ok, err := hybrid.TryGet[string](ctx, reader, "home")
	if err != nil {
		panic(err)
	}
	fmt.Println(ok, v == page)
	// Output:
	// stored in under 1 KiB: true
	// true true
}

// S2 needs no construction: its zero value is the fastest level.
func ExampleS2() {
	var c compress.S2 // or compress.S2{Level: compress.S2Better}
	in := []byte(strings.Repeat(`{"id":42,"name":"Ada"},`, 100))
	z, err := c.Compress(in)
	if err != nil {
		panic(err)
	}
	out, err := c.Decompress(z, 1<<20) // at most 1 MiB
	if err != nil {
		panic(err)
	}
	fmt.Println(len(z) < len(in)/10, bytes.Equal(out, in))
	// Output: true true
}
