package compress_test

import (
	"context"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-cache/strata/compress"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/serializer"
)

// benchCodecs are the codecs measured, the core module's Flate first.
func benchCodecs(b *testing.B) []struct {
	name string
	c    serializer.Compressor
} {
	zd, err := compress.NewZstd(zstd.SpeedDefault)
	if err != nil {
		b.Fatal(err)
	}
	zf, err := compress.NewZstd(zstd.SpeedFastest)
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		c    serializer.Compressor
	}{{"flate", serializer.Flate{}}, {"zstd", zd}, {"zstd-fastest", zf}, {"s2", compress.S2{}}}
}

var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"100KiB", 100 << 10}}

// BenchmarkCodec measures Compress and Decompress alone on a JSON-like
// value (jsonLike: records with varying fields), and reports the
// compressed size.
//
//	go test -run '^$' -bench Codec -count 10 -benchtime 300ms . | benchstat -col /codec -
func BenchmarkCodec(b *testing.B) {
	for _, size := range benchSizes {
		in := jsonLike(size.n)
		for _, cd := range benchCodecs(b) {
			z, err := cd.c.Compress(in)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("op=compress/size="+size.name+"/codec="+cd.name, func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := cd.c.Compress(in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(z)), "stored-bytes")
			})
			b.Run("op=decompress/size="+size.name+"/codec="+cd.name, func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := cd.c.Decompress(z, len(in)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(z)), "stored-bytes")
			})
		}
	}
}

// BenchmarkRedisHit reads the value from a real Redis on loopback
// (redistest) with the memory tier skipped: one GET, the envelope's
// decode, the decompression and msgpack's decode of a string. It reports
// the bytes Redis holds for the key.
//
//	go test -run '^$' -bench RedisHit -count 10 -benchtime 300ms . | benchstat -col /codec -
func BenchmarkRedisHit(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	skipL1 := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })
	codecs := append([]struct {
		name string
		c    serializer.Compressor
	}{{"none", nil}}, benchCodecs(b)...)
	for _, size := range benchSizes {
		value := string(jsonLike(size.n))
		for _, cd := range codecs {
			b.Run("size="+size.name+"/codec="+cd.name, func(b *testing.B) {
				cl := srv.FastClient(b, "")
				c, err := hybrid.New(hybrid.Options{Name: "bench-" + cd.name, L2: hybrid.NewRedisL2(cl), Compressor: cd.c, CompressMinSize: 512})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				key := "v" + size.name
				if err := hybrid.Set(ctx, c, key, value); err != nil {
					b.Fatal(err)
				}
				stored, err := cl.StrLen(ctx, "bench-"+cd.name+":"+key).Result()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, ok, err := hybrid.TryGet[string](ctx, c, key, skipL1); !ok || err != nil {
						b.Fatal("miss", err)
					}
				}
				b.ReportMetric(float64(stored), "stored-bytes")
			})
		}
	}
}
