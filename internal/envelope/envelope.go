package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Layout constants of version 1.
const (
	// Magic is the first byte of every envelope.
	Magic byte = 0xA7
	// Version is the format version this package writes and reads.
	Version byte = 1
	// TimestampOffset is the offset of the 8 big-endian bytes of Timestamp.
	TimestampOffset = 2
	// HeaderSize is the size of the fixed part: magic, version, the three
	// timestamps and the flags byte.
	HeaderSize = 27
	// MinSize is the size of the smallest valid envelope: the header, four
	// zero lengths (Type, ETag, Tags, Value) and the checksum.
	MinSize = HeaderSize + 4 + crcSize

	crcSize = 4
)

// Flags of the flags byte (offset 26). Any other bit set is corrupt.
const (
	// FlagRemoved marks a removal record: the key was removed (or expired
	// with nothing to keep) at Timestamp. It carries no value; it exists so
	// that an older write is refused (newest wins) for as long as it lives.
	FlagRemoved byte = 1 << 0
	// FlagCreated says that 8 bytes of Created follow the value.
	FlagCreated byte = 1 << 1
	// FlagNotFound marks a cached "not found": the source has no value for
	// the key. It carries no value.
	FlagNotFound byte = 1 << 2
	// FlagCompressed says that Value is compressed (with the cache's
	// compressor).
	FlagCompressed byte = 1 << 3

	knownFlags = FlagRemoved | FlagCreated | FlagNotFound | FlagCompressed
)

var (
	// ErrCorrupt is returned, wrapped with the detail, by Decode for input
	// that is not a well-formed envelope: too short, bad magic, bad
	// checksum, a length past the end, trailing bytes, a negative
	// timestamp or unknown flags.
	ErrCorrupt = errors.New("envelope: corrupt")
	// ErrVersion is returned, wrapped with the version found, by Decode for
	// an envelope with the right magic byte and a version this package
	// does not know.
	ErrVersion = errors.New("envelope: unknown version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Envelope is one L2 entry: a serialized value and its metadata.
type Envelope struct {
	// Timestamp is when the value was created, in unix nanoseconds; in a
	// conflict the newest wins. It must be >= 0.
	Timestamp int64
	// FreshUntil is the logical expiration, in unix nanoseconds.
	FreshUntil int64
	// LastModified is the entry's last-modified time, in unix nanoseconds;
	// 0 means none.
	LastModified int64
	// Type is a fingerprint of the Go type of the value, supplied by the
	// caller; the engine compares it on read to detect a type mismatch.
	Type string
	// ETag is the entry's entity tag, empty for none.
	ETag string
	// Tags are the entry's tags, for invalidation by tag.
	Tags []string
	// Value is the serialized value.
	Value []byte
	// Removed marks a removal record (FlagRemoved): Value is empty.
	Removed bool
	// NotFound marks a cached "not found" (FlagNotFound): Value is empty.
	NotFound bool
	// Compressed says that Value is compressed (FlagCompressed).
	Compressed bool
	// Created, when non-zero, is when the value was created, if that is
	// earlier than Timestamp: an expired copy takes the expiry's time as
	// Timestamp (so that older writes lose against it) and keeps its
	// creation time here (so that an earlier Clear or RemoveByTag still
	// applies to it). Zero means Timestamp. Encoded only when non-zero.
	Created int64
}

func (e *Envelope) flags() byte {
	var f byte
	if e.Removed {
		f |= FlagRemoved
	}
	if e.NotFound {
		f |= FlagNotFound
	}
	if e.Compressed {
		f |= FlagCompressed
	}
	if e.Created != 0 {
		f |= FlagCreated
	}
	return f
}

// Size returns the number of bytes Append adds for e.
func (e *Envelope) Size() int {
	n := HeaderSize + crcSize
	n += uvarintLen(uint64(len(e.Type))) + len(e.Type)
	n += uvarintLen(uint64(len(e.ETag))) + len(e.ETag)
	n += uvarintLen(uint64(len(e.Tags)))
	for _, t := range e.Tags {
		n += uvarintLen(uint64(len(t))) + len(t)
	}
	n += uvarintLen(uint64(len(e.Value))) + len(e.Value)
	if e.Created != 0 {
		n += 8
	}
	return n
}

// Append appends the encoding of e to dst and returns the extended slice.
// It grows dst at most once. e.Timestamp must be >= 0 (see the package
// documentation); Append does not check it.
func (e *Envelope) Append(dst []byte) []byte {
	dst = slices.Grow(dst, e.Size())
	start := len(dst)
	dst = append(dst, Magic, Version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Timestamp))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.FreshUntil))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.LastModified))
	dst = append(dst, e.flags())
	dst = appendString(dst, e.Type)
	dst = appendString(dst, e.ETag)
	dst = binary.AppendUvarint(dst, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		dst = appendString(dst, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
	dst = append(dst, e.Value...)
	if e.Created != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.Created))
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Timestamp returns the Timestamp of the envelope b without decoding the
// rest or verifying the checksum. It reports false when b is too short to be
// an envelope, has the wrong magic byte or version, or holds a negative
// timestamp.
func Timestamp(b []byte) (int64, bool) {
	if len(b) < MinSize || b[0] != Magic || b[1] != Version {
		return 0, false
	}
	ts := int64(binary.BigEndian.Uint64(b[TimestampOffset:]))
	if ts < 0 {
		return 0, false
	}
	return ts, true
}

// Decode decodes the envelope b. The result does not alias b, so the caller
// may reuse b afterwards. It returns an error wrapping ErrVersion for an
// unknown version, and an error wrapping ErrCorrupt, with the detail, for
// anything else that is malformed. Decode never panics.
func Decode(b []byte) (Envelope, error) {
	e, err := decode(b, "")
	if err == nil && len(e.Value) > 0 {
		e.Value = slices.Clone(e.Value)
	}
	return e, err
}

// DecodeShared is Decode without the copy of the value: the result's Value
// aliases b, so the caller must not change b while it uses Value. For a
// buffer that nobody else holds (the reply of a GET), it saves an
// allocation and a copy of the value on every read.
//
// typ is the Type the caller expects: when the envelope's is the same, the
// result's Type is typ itself, not a new string (one allocation less per
// read). Pass "" for none.
func DecodeShared(b []byte, typ string) (Envelope, error) { return decode(b, typ) }

// decode is Decode without the copy of the value; see DecodeShared for typ.
func decode(b []byte, typ string) (Envelope, error) {
	var e Envelope
	if len(b) < 2 {
		return e, corrupt("%d bytes, shorter than the header", len(b))
	}
	if b[0] != Magic {
		return e, corrupt("bad magic byte 0x%02x", b[0])
	}
	if b[1] != Version {
		return e, fmt.Errorf("%w %d", ErrVersion, b[1])
	}
	if len(b) < MinSize {
		return e, corrupt("%d bytes, want at least %d", len(b), MinSize)
	}
	body := b[:len(b)-crcSize]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return e, corrupt("checksum 0x%08x, want 0x%08x", got, want)
	}
	e.Timestamp = int64(binary.BigEndian.Uint64(body[2:]))
	e.FreshUntil = int64(binary.BigEndian.Uint64(body[10:]))
	e.LastModified = int64(binary.BigEndian.Uint64(body[18:]))
	if e.Timestamp < 0 {
		return Envelope{}, corrupt("negative timestamp %d", e.Timestamp)
	}
	flags := body[26]
	if flags&^knownFlags != 0 {
		return Envelope{}, corrupt("unknown flags 0x%02x", flags)
	}
	e.Removed = flags&FlagRemoved != 0
	e.NotFound = flags&FlagNotFound != 0
	e.Compressed = flags&FlagCompressed != 0

	r := reader{b: body, off: HeaderSize}
	typeBytes := r.bytes("type")
	etag := r.bytes("etag")
	count := r.uvarint("tag count")
	// Every tag takes at least one byte, so a count above the remaining
	// input is corrupt; this also bounds the allocation below.
	if r.err == nil && count > uint64(len(r.b)-r.off) {
		r.fail("tag count %d exceeds the %d remaining bytes", count, len(r.b)-r.off)
	}
	var tags []string
	if r.err == nil && count > 0 {
		tags = make([]string, 0, count)
		for i := uint64(0); i < count && r.err == nil; i++ {
			tags = append(tags, string(r.bytes("tag")))
		}
	}
	value := r.bytes("value")
	if flags&FlagCreated != 0 && r.err == nil {
		if len(r.b)-r.off < 8 {
			r.fail("created time truncated at offset %d", r.off)
		} else {
			e.Created = int64(binary.BigEndian.Uint64(r.b[r.off:]))
			r.off += 8
			if e.Created <= 0 {
				r.fail("created time %d not positive", e.Created)
			}
		}
	}
	if r.err == nil && e.Removed && len(value) > 0 {
		r.fail("removal record with a value")
	}
	if r.err == nil && e.NotFound && (len(value) > 0 || e.Removed) {
		r.fail("not-found record with a value or a removal")
	}
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes after the value", len(r.b)-r.off)
	}
	if r.err != nil {
		return Envelope{}, r.err
	}
	if string(typeBytes) == typ {
		e.Type = typ // no copy
	} else {
		e.Type = string(typeBytes)
	}
	e.ETag = string(etag)
	e.Tags = tags
	if len(value) > 0 {
		e.Value = value
	}
	return e, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// reader reads length-prefixed fields; after the first error every read
// returns zero values and the error is kept.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = corrupt(format, args...)
	}
}

// uvarint reads a varint in its shortest form.
func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail("%s length truncated at offset %d", what, r.off)
		return 0
	case n < 0:
		r.fail("%s length overflows at offset %d", what, r.off)
		return 0
	case n != uvarintLen(v):
		r.fail("%s length not in shortest form at offset %d", what, r.off)
		return 0
	}
	r.off += n
	return v
}

// bytes reads a uvarint length and that many bytes; the result aliases r.b.
func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if rem := uint64(len(r.b) - r.off); n > rem {
		r.fail("%s length %d exceeds the %d remaining bytes", what, n, rem)
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
