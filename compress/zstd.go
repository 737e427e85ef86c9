package compress

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-cache/strata/serializer"
)

// Zstd is a serializer.Compressor on Zstandard (klauspost/compress/zstd).
// It holds one zstd.Encoder and one zstd.Decoder, used only through their
// stateless EncodeAll and DecodeAll, so one Zstd is safe for concurrent use
// and is meant to be shared by every cache of a process. Build it with
// NewZstd; it starts no goroutine and needs no Close.
//
// Every payload is one single-segment zstd frame, which records its
// decompressed size (an empty value included) and carries zstd's checksum.
// Decompress reads that size from the frame header before it allocates,
// refuses a frame without it, and never decodes more than the header
// declares.
type Zstd struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var _ serializer.Compressor = (*Zstd)(nil)

// NewZstd returns a Zstandard Compressor at level: zstd.SpeedFastest,
// zstd.SpeedDefault, zstd.SpeedBetterCompression or
// zstd.SpeedBestCompression. The zero EncoderLevel means
// zstd.SpeedDefault. An unknown level is an error.
func NewZstd(level zstd.EncoderLevel) (*Zstd, error) {
	if level == 0 {
		level = zstd.SpeedDefault
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		// A single-segment frame always records its decompressed size (a
		// frame of another kind under 256 bytes does not), which Decompress
		// needs; the decoder allocates that size at once anyway.
		zstd.WithSingleSegment(true),
		zstd.WithZeroFrames(true), // an empty value is a frame too, so no payload is empty
	)
	if err != nil {
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),   // as many concurrent DecodeAll as GOMAXPROCS
		zstd.WithDecodeAllCapLimit(true), // decode at most cap(dst): the size the header declared
	)
	if err != nil {
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	return &Zstd{enc: enc, dec: dec}, nil
}

// Compress returns src as one zstd frame. The returned slice belongs to the
// caller.
func (z *Zstd) Compress(src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, nil), nil
}

// Decompress returns the decompressed form of the zstd frame src. A frame
// that declares more than maxSize bytes is refused with an error wrapping
// serializer.ErrTooLarge, before anything is allocated for it; a frame
// without a declared size, a malformed or truncated one, a checksum
// mismatch, trailing bytes or a frame that decodes to more than it
// declares are errors too. The output is allocated at the declared size
// before decoding, so a payload can make it allocate up to maxSize.
func (z *Zstd) Decompress(src []byte, maxSize int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	if h.Skippable || !h.HasFCS {
		return nil, errors.New("compress: zstd: frame without a decompressed size (not written by compress.Zstd)")
	}
	if maxSize < 0 || h.FrameContentSize > uint64(maxSize) {
		return nil, fmt.Errorf("%w: zstd frame of %d bytes, the maximum is %d", serializer.ErrTooLarge, h.FrameContentSize, maxSize)
	}
	// The decoder is limited to cap(dst): exactly the declared size, for
	// this frame and any that follow it.
	out, err := z.dec.DecodeAll(src, make([]byte, 0, int(h.FrameContentSize)))
	if err != nil {
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	return out, nil
}
