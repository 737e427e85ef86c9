package hybrid_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/envelope"
	"github.com/strata-cache/strata/serializer"
)

// memL2 is a distributed tier in memory (newest wins), that keeps what it
// was given, for looking at the stored bytes.
type memL2 struct{ m map[string][]byte }

func (s *memL2) Get(_ context.Context, key string) ([]byte, error) { return s.m[key], nil }
func (s *memL2) Set(_ context.Context, key string, v []byte, _ time.Duration) (bool, error) {
	if cur, ok := s.m[key]; ok {
		a, _ := envelope.Timestamp(cur)
		b, _ := envelope.Timestamp(v)
		if a > b {
			return false, nil
		}
	}
	s.m[key] = bytes.Clone(v)
	return true, nil
}
func (s *memL2) Delete(_ context.Context, key string) error { delete(s.m, key); return nil }

// TestCompression: values above the threshold are stored compressed (and
// smaller), values below it plainly; a compressing reader reads both, and a
// reader without the compressor treats a compressed payload as a miss.
func TestCompression(t *testing.T) {
	ctx := context.Background()
	l2 := &memL2{m: map[string][]byte{}}
	plainWriter := newCache(t, hybrid.Options{Name: "app", L2: l2})
	zipped := newCache(t, hybrid.Options{Name: "app", L2: l2, Compressor: serializer.Flate{}, CompressMinSize: 100})
	big := strings.Repeat(`{"id":42,"name":"ada","roles":["admin","dev"]}`, 200)
	if err := hybrid.Set(ctx, zipped, "big", big); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, zipped, "small", "tiny"); err != nil {
		t.Fatal(err)
	}
	if err := hybrid.Set(ctx, plainWriter, "old", big); err != nil { // written before compression was on
		t.Fatal(err)
	}
	envOf := func(key string) envelope.Envelope {
		e, err := envelope.Decode(l2.m["app:"+key])
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := envOf("big"); !e.Compressed || len(e.Value) >= len(big)/4 {
		t.Fatalf("big value: compressed=%v, %d bytes stored for %d", e.Compressed, len(e.Value), len(big))
	}
	if envOf("small").Compressed || envOf("old").Compressed {
		t.Fatal("a value below the threshold, or written without a compressor, was compressed")
	}
	reader := newCache(t, hybrid.Options{Name: "app", L2: l2, Compressor: serializer.Flate{}})
	for _, k := range []string{"big", "old"} {
		if v, ok := mustGet[string](t, reader, k); !ok || v != big {
			t.Fatalf("compressing reader, %s: ok=%v, %d bytes", k, ok, len(v))
		}
	}
	plainReader := newCache(t, hybrid.Options{Name: "app", L2: l2})
	if _, ok := mustGet[string](t, plainReader, "big"); ok {
		t.Fatal("a reader without the compressor served a compressed payload")
	}
	if st := plainReader.Stats(); st.L2Corrupt != 1 {
		t.Fatalf("L2Corrupt = %d, want the compressed payload counted", st.L2Corrupt)
	}
}

// BenchmarkCompression reads a JSON-like value from the distributed tier
// (memory skipped, an in-memory L2, so the figure is the decode and
// decompression cost, not the network's) and reports the bytes stored.
//
//	go test -run '^$' -bench Compression -count 6 ./hybrid | benchstat -col /codec -
func BenchmarkCompression(b *testing.B) {
	ctx := context.Background()
	skipL1 := hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.SkipL1Read = true })
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"100KiB", 100 << 10}} {
		record := `{"id":4242,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","dev"],"active":true},`
		value := strings.Repeat(record, size.n/len(record)+1)[:size.n]
		for _, codec := range []struct {
			name string
			c    serializer.Compressor
		}{{"none", nil}, {"flate", serializer.Flate{}}} {
			b.Run("size="+size.name+"/codec="+codec.name, func(b *testing.B) {
				l2 := &memL2{m: map[string][]byte{}}
				c := newCache(b, hybrid.Options{Name: "app", L2: l2, Compressor: codec.c, CompressMinSize: 512})
				if err := hybrid.Set(ctx, c, "k", value); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, ok, err := hybrid.TryGet[string](ctx, c, "k", skipL1); !ok || err != nil {
						b.Fatal("miss", err)
					}
				}
				b.ReportMetric(float64(len(l2.m["app:k"])), "stored-bytes")
			})
		}
	}
}
