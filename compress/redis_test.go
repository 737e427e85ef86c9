package compress_test

import (
	"context"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-cache/strata/compress"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
	"github.com/strata-cache/strata/serializer"
)

// TestRedis: through a real Redis, a large value is stored compressed
// (STRLEN far below the value's size) and read back by another cache with
// the same codec and an empty memory tier; a cache without a compressor
// treats it as a miss.
func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	z, err := compress.NewZstd(zstd.SpeedDefault)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := string(jsonLike(100 << 10))
	for _, cd := range []struct {
		name string
		c    serializer.Compressor
	}{{"zstd", z}, {"s2", compress.S2{}}} {
		t.Run(cd.name, func(t *testing.T) {
			cache := func(c serializer.Compressor) *hybrid.Cache {
				h, err := hybrid.New(hybrid.Options{Name: "app-" + cd.name, L2: hybrid.NewRedisL2(srv.FastClient(t, "")), Compressor: c})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Close() })
				return h
			}
			writer := cache(cd.c)
			if err := hybrid.Set(ctx, writer, "big", big); err != nil {
				t.Fatal(err)
			}
			n, err := srv.FastClient(t, "").StrLen(ctx, "app-"+cd.name+":big").Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 || n > int64(len(big))/4 {
				t.Fatalf("Redis holds %d bytes for a %d-byte value: not compressed", n, len(big))
			}
			t.Logf("%s: %d bytes in Redis for %d", cd.name, n, len(big))

			v, ok, err := hybrid.TryGet[string](ctx, cache(cd.c), "big")
			if err != nil || !ok || v != big {
				t.Fatalf("reader with the codec: ok=%v err=%v, %d bytes", ok, err, len(v))
			}
			plain := cache(nil)
			if _, ok, err := hybrid.TryGet[string](ctx, plain, "big"); ok || err != nil {
				t.Fatalf("reader without a compressor: ok=%v err=%v, want a miss", ok, err)
			}
			if st := plain.Stats(); st.L2Corrupt != 1 {
				t.Fatalf("L2Corrupt = %d, want 1", st.L2Corrupt)
			}
		})
	}
}
