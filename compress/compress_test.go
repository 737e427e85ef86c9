package compress_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/strata-cache/strata/compress"
	"github.com/strata-cache/strata/serializer"
)

// jsonLike is n bytes of JSON-like text: records that repeat with varying
// fields, so it compresses well but not trivially.
func jsonLike(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"user %d","email":"u%d@example.com","roles":["admin","dev"],"active":%v},`, i, i*7, i, i%3 == 0)
	}
	return b.Bytes()[:n]
}

// codecs are the compressors under test, by name.
func codecs(t testing.TB) []struct {
	name string
	c    serializer.Compressor
} {
	t.Helper()
	zd, err := compress.NewZstd(0)
	if err != nil {
		t.Fatal(err)
	}
	zf, err := compress.NewZstd(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	zb, err := compress.NewZstd(zstd.SpeedBestCompression)
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		c    serializer.Compressor
	}{
		{"zstd-default", zd}, {"zstd-fastest", zf}, {"zstd-best", zb},
		{"s2", compress.S2{}}, {"s2-better", compress.S2{Level: compress.S2Better}}, {"s2-best", compress.S2{Level: compress.S2Best}},
	}
}

func TestRoundTrip(t *testing.T) {
	random := make([]byte, 64<<10)
	for i := range random { // incompressible, deterministic
		random[i] = byte(uint32(i) * 2654435761 >> 24)
	}
	inputs := map[string][]byte{
		"empty":    {},
		"one-byte": {'x'},
		"small":    []byte(`{"id":1}`), // under 256 bytes: zstd records the size only in a single-segment frame
		"1KiB":     jsonLike(1 << 10),
		"100KiB":   jsonLike(100 << 10),
		"300KiB":   jsonLike(300 << 10), // several zstd blocks (128 KiB each)
		"random":   random,
	}
	for _, cd := range codecs(t) {
		for name, in := range inputs {
			t.Run(cd.name+"/"+name, func(t *testing.T) {
				z, err := cd.c.Compress(in)
				if err != nil {
					t.Fatal(err)
				}
				if len(z) == 0 {
					t.Fatal("empty payload")
				}
				if len(in) >= 1<<10 && name != "random" && len(z) >= len(in)/2 {
					t.Errorf("%d bytes compressed to %d", len(in), len(z))
				}
				out, err := cd.c.Decompress(z, len(in))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("round trip: got %d bytes, want %d", len(out), len(in))
				}
			})
		}
	}
}

// TestLevelsInteroperate: every level decodes what any other level of the
// same codec wrote, so nodes may differ in level.
func TestLevelsInteroperate(t *testing.T) {
	in := jsonLike(10 << 10)
	all := codecs(t)
	for _, w := range all {
		z, err := w.c.Compress(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			if w.name[:2] != r.name[:2] {
				continue
			}
			if out, err := r.c.Decompress(z, len(in)); err != nil || !bytes.Equal(out, in) {
				t.Errorf("written by %s, read by %s: %v", w.name, r.name, err)
			}
		}
	}
}

// TestOverLimit: a payload that decompresses to more than maxSize is
// refused with serializer.ErrTooLarge; exactly maxSize is accepted.
func TestOverLimit(t *testing.T) {
	in := jsonLike(100 << 10)
	for _, cd := range codecs(t) {
		t.Run(cd.name, func(t *testing.T) {
			z, err := cd.c.Compress(in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cd.c.Decompress(z, len(in)-1); !errors.Is(err, serializer.ErrTooLarge) {
				t.Fatalf("maxSize one below: err = %v, want ErrTooLarge", err)
			}
			if _, err := cd.c.Decompress(z, 0); !errors.Is(err, serializer.ErrTooLarge) {
				t.Fatalf("maxSize 0: err = %v, want ErrTooLarge", err)
			}
			if _, err := cd.c.Decompress(z, len(in)); err != nil {
				t.Fatalf("maxSize exact: %v", err)
			}
		})
	}
}

// TestOverLimitAllocatesNothingLarge: a small payload claiming a huge
// decompressed size is refused without allocating that size.
func TestOverLimitAllocatesNothingLarge(t *testing.T) {
	bomb := func(t *testing.T, c serializer.Compressor, n int) []byte {
		z, err := c.Compress(make([]byte, n)) // zeros: a few hundred bytes for n = 64 MiB
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	const n = 64 << 20
	for _, cd := range codecs(t) {
		if cd.name != "zstd-fastest" && cd.name != "s2" {
			continue
		}
		t.Run(cd.name, func(t *testing.T) {
			z := bomb(t, cd.c, n)
			allocs := testing.AllocsPerRun(5, func() {
				if _, err := cd.c.Decompress(z, 1<<20); !errors.Is(err, serializer.ErrTooLarge) {
					t.Fatalf("err = %v, want ErrTooLarge", err)
				}
			})
			if allocs > 10 {
				t.Fatalf("%v allocations refusing a %d-byte payload", allocs, len(z))
			}
		})
	}
}

// TestZstdLyingHeader: a frame whose header declares fewer bytes than its
// blocks hold decodes to an error, not to more than it declared.
func TestZstdLyingHeader(t *testing.T) {
	z, err := compress.NewZstd(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	in := jsonLike(100 << 10)
	p, err := z.Compress(in)
	if err != nil {
		t.Fatal(err)
	}
	// Single-segment header of this size: magic(4), descriptor(1), then a
	// 4-byte content size (sizes from 65792 on).
	if p[4]>>6 != 2 {
		t.Fatalf("frame descriptor %#x: expected a 4-byte content size", p[4])
	}
	lie := bytes.Clone(p)
	binary.LittleEndian.PutUint32(lie[5:], 1000)
	out, err := z.Decompress(lie, len(in))
	if err == nil {
		t.Fatalf("a frame declaring 1000 bytes decoded to %d bytes without error", len(out))
	}
}

// TestCorrupt: malformed payloads are errors, never panics or garbage.
func TestCorrupt(t *testing.T) {
	in := jsonLike(10 << 10)
	for _, cd := range codecs(t) {
		t.Run(cd.name, func(t *testing.T) {
			z, err := cd.c.Compress(in)
			if err != nil {
				t.Fatal(err)
			}
			flipped := bytes.Clone(z)
			flipped[len(flipped)/2] ^= 0xff
			cases := map[string][]byte{
				"empty":     {},
				"nil":       nil,
				"garbage":   []byte(strings.Repeat("not compressed at all ", 20)),
				"truncated": z[:len(z)/2],
				"one-byte":  z[:1],
				"trailing":  append(bytes.Clone(z), 1, 2, 3, 4, 5, 6, 7, 8),
				"flipped":   flipped,
			}
			for name, p := range cases {
				out, err := cd.c.Decompress(p, 1<<20)
				if err == nil {
					if name == "flipped" && strings.HasPrefix(cd.name, "s2") && !bytes.Equal(out, in) {
						// S2 blocks carry no checksum: a flipped literal decodes. The
						// envelope's CRC-32C catches it in a cache.
						continue
					}
					t.Errorf("%s: no error (%d bytes)", name, len(out))
				}
			}
		})
	}
}

// TestForeignZstdFrame: a zstd frame without a recorded size (another
// encoder's, here a multi-segment frame under 256 bytes) is refused with a
// clear error.
func TestForeignZstdFrame(t *testing.T) {
	w, err := zstd.NewWriter(nil, zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	p := w.EncodeAll(jsonLike(200), nil)
	var h zstd.Header
	if err := h.Decode(p); err != nil || h.HasFCS {
		t.Fatalf("test frame: HasFCS=%v, err=%v; want a frame without its size", h.HasFCS, err)
	}
	z, err := compress.NewZstd(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := z.Decompress(p, 1<<20); err == nil || !strings.Contains(err.Error(), "decompressed size") {
		t.Fatalf("err = %v, want the missing size named", err)
	}
}

func TestS2UnknownLevel(t *testing.T) {
	if _, err := (compress.S2{Level: 9}).Compress([]byte("x")); err == nil {
		t.Fatal("unknown level accepted")
	}
}

func TestZstdUnknownLevel(t *testing.T) {
	if _, err := compress.NewZstd(zstd.EncoderLevel(99)); err == nil {
		t.Fatal("unknown level accepted")
	}
}

// TestS2IsTheBlockFormat: payloads are plain S2 blocks, readable by s2.Decode.
func TestS2IsTheBlockFormat(t *testing.T) {
	in := jsonLike(4 << 10)
	z, err := compress.S2{}.Compress(in)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s2.Decode(nil, z); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("s2.Decode: %v", err)
	}
}

// TestConcurrent: one compressor shared by many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	for _, cd := range codecs(t) {
		t.Run(cd.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range 16 {
				wg.Go(func() {
					in := jsonLike(1<<10 + g*997)
					for range 5 {
						z, err := cd.c.Compress(in)
						if err != nil {
							errs <- err
							return
						}
						out, err := cd.c.Decompress(z, len(in))
						if err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(out, in) {
							errs <- fmt.Errorf("goroutine %d: round trip differs", g)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
