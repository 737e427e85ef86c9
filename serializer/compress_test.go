package serializer_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-cache/strata/serializer"
)

func TestFlateRoundTripAndGuards(t *testing.T) {
	t.Parallel()
	for _, f := range []serializer.Flate{{}, {Level: 1}, {Level: 9}} {
		src := bytes.Repeat([]byte(`{"id":42,"name":"ada","tags":["a","b"]},`), 500)
		c, err := f.Compress(src)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) >= len(src) {
			t.Errorf("level %d: %d bytes compressed to %d", f.Level, len(src), len(c))
		}
		out, err := f.Decompress(c, len(src))
		if err != nil || !bytes.Equal(out, src) {
			t.Fatalf("level %d: round trip: %v", f.Level, err)
		}
		if _, err := f.Decompress(c, len(src)-1); !errors.Is(err, serializer.ErrTooLarge) {
			t.Errorf("level %d: a payload above the maximum: %v, want ErrTooLarge", f.Level, err)
		}
	}
	if _, err := (serializer.Flate{}).Decompress([]byte("not deflate at all"), 1<<20); err == nil {
		t.Error("garbage decompressed without an error")
	}
	if _, err := (serializer.Flate{Level: 42}).Compress([]byte("x")); err == nil {
		t.Error("an invalid level compressed without an error")
	}
}
