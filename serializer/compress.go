package serializer

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
)

// Compressor compresses the serialized values a cache writes to its
// distributed tier (see hybrid.Options.Compressor). Implementations must
// be safe for concurrent use. Every node of a cache must use the same
// compressor: the envelope records that a value is compressed, not how.
type Compressor interface {
	// Compress returns the compressed form of src. The returned slice
	// belongs to the caller.
	Compress(src []byte) ([]byte, error)
	// Decompress returns the decompressed form of src, or an error if it is
	// malformed or would exceed maxSize bytes (a guard against a payload
	// that decompresses to far more than any value the cache writes).
	Decompress(src []byte, maxSize int) ([]byte, error)
}

// ErrTooLarge is returned by Decompress for a payload that decompresses to
// more than the maximum size.
var ErrTooLarge = errors.New("serializer: decompressed value too large")

// Flate is a Compressor on the standard library's DEFLATE (compress/flate).
// Level is a compress/flate level; zero means flate.DefaultCompression.
// Faster codecs (zstd, S2) are in the module
// github.com/strata-cache/strata/compress, kept apart because the core
// module depends on no compression library.
type Flate struct{ Level int }

var _ Compressor = Flate{}

func (f Flate) level() int {
	if f.Level == 0 {
		return flate.DefaultCompression
	}
	return f.Level
}

// Compress returns src compressed with DEFLATE at f's level.
func (f Flate) Compress(src []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(src) / 2)
	w, err := flate.NewWriter(&buf, f.level())
	if err != nil {
		return nil, fmt.Errorf("serializer: flate: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("serializer: flate: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("serializer: flate: %w", err)
	}
	return buf.Bytes(), nil
}

// Decompress returns src decompressed, at most maxSize bytes (ErrTooLarge
// beyond).
func (Flate) Decompress(src []byte, maxSize int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(src))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(maxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("serializer: flate: %w", err)
	}
	if len(out) > maxSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxSize)
	}
	return out, nil
}
