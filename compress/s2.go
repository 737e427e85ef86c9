package compress

import (
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/strata-cache/strata/serializer"
)

// S2Level chooses the S2 encoder: how much time Compress spends for a
// smaller result. Decompression speed is about the same at every level.
type S2Level int

const (
	// S2Fast is s2.Encode, the fastest.
	S2Fast S2Level = iota
	// S2Better is s2.EncodeBetter: smaller, about half the speed of S2Fast.
	S2Better
	// S2Best is s2.EncodeBest: smallest and much slower; for values written
	// rarely and read often.
	S2Best
)

// S2 is a serializer.Compressor on the S2 block format
// (klauspost/compress/s2, a Snappy extension): very fast, with less
// compression than zstd. The zero value is ready to use (S2Fast); it holds
// no state and is safe for concurrent use.
//
// An S2 block starts with its decompressed length: Decompress reads it
// before it allocates.
type S2 struct {
	// Level is the encoder; any level's output decodes with any S2.
	Level S2Level
}

var _ serializer.Compressor = S2{}

// Compress returns src as one S2 block, encoded at s's level. The
// returned slice belongs to the caller.
func (s S2) Compress(src []byte) ([]byte, error) {
	switch s.Level {
	case S2Fast:
		return s2.Encode(nil, src), nil
	case S2Better:
		return s2.EncodeBetter(nil, src), nil
	case S2Best:
		return s2.EncodeBest(nil, src), nil
	default:
		return nil, fmt.Errorf("compress: s2: unknown level %d", s.Level)
	}
}

// Decompress returns the decompressed form of the S2 block src. A block
// that declares more than maxSize bytes is refused with an error wrapping
// serializer.ErrTooLarge, before anything is allocated for it; a malformed
// block (s2.ErrCorrupt) is an error too. The output is allocated at the
// declared size before decoding, so a payload can make it allocate up to
// maxSize.
func (S2) Decompress(src []byte, maxSize int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("compress: s2: %w", err)
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: s2 block of %d bytes, the maximum is %d", serializer.ErrTooLarge, n, maxSize)
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return nil, fmt.Errorf("compress: s2: %w", err)
	}
	return out, nil
}
