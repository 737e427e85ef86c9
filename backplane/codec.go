package backplane

import (
	"fmt"
)

// Wire format, version 1 (all integers big-endian):
//
//	magic     2 bytes  0xC1 0x42 (0xC1 is never used by msgpack, so foreign payloads are rejected early)
//	version   1 byte   1
//	kind      1 byte   1..4
//	timestamp 8 bytes  int64, Unix nanoseconds
//	cache     uvarint length + bytes
//	key       uvarint length + bytes
//	source    uvarint length + bytes
//	value     optional: uvarint length (at least 1) + bytes
//
// Lengths use the minimal uvarint encoding, an empty value is left out and nothing may
// follow the value (or the source, without one), so every message has exactly one
// encoding.
const (
	magic0        = 0xC1
	magic1        = 0x42
	formatVersion = 1
	headerLen     = 2 + 1 + 1 + 8
)

// AppendBinary appends the binary encoding of m to dst and returns the extended slice.
// The format (documented in the package overview) starts with a magic number and a
// version byte so that a future format can be told apart. AppendBinary does not check
// m.Kind; Publish does.
func (m Message) AppendBinary(dst []byte) []byte {
	dst = append(dst, magic0, magic1, formatVersion, byte(m.Kind))
	t := uint64(m.Timestamp)
	dst = append(dst, byte(t>>56), byte(t>>48), byte(t>>40), byte(t>>32), byte(t>>24), byte(t>>16), byte(t>>8), byte(t))
	dst = appendString(dst, m.Cache)
	dst = appendString(dst, m.Key)
	dst = appendString(dst, m.Source)
	if len(m.Value) > 0 {
		dst = appendString(dst, m.Value)
	}
	return dst
}

// MarshalBinary returns the binary encoding of m (see [Message.AppendBinary]). It
// implements [encoding.BinaryMarshaler] and never fails.
func (m Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, m.encodedLen())), nil
}

// UnmarshalBinary decodes b into m (see [DecodeMessage]). It implements
// [encoding.BinaryUnmarshaler]; on error m is left unchanged.
func (m *Message) UnmarshalBinary(b []byte) error {
	d, err := DecodeMessage(b)
	if err != nil {
		return err
	}
	*m = d
	return nil
}

func (m Message) encodedLen() int {
	return headerLen + uvarintLen(len(m.Cache)) + len(m.Cache) + uvarintLen(len(m.Key)) + len(m.Key) +
		uvarintLen(len(m.Source)) + len(m.Source) + valueLen(m.Value)
}

func valueLen(v string) int {
	if len(v) == 0 {
		return 0
	}
	return uvarintLen(len(v)) + len(v)
}

func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	n := uint64(len(s))
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	dst = append(dst, byte(n))
	return append(dst, s...)
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// DecodeMessage decodes a message encoded by [Message.AppendBinary]. It never panics
// and never allocates more than the input's size: every length is checked against the
// bytes that remain. It returns an error wrapping [ErrVersion] for a message of an
// unknown format version, and one wrapping [ErrCorrupt] for anything else that is not
// a well-formed message (short input, wrong magic, unknown kind, a length beyond the
// input, a non-minimal length, trailing bytes).
func DecodeMessage(b []byte) (Message, error) {
	return decode(b)
}

// decode works on the Redis payload (a string) without copying it first: the fields
// of the result are substrings of it. On a []byte each field is a copy.
func decode[T ~string | ~[]byte](b T) (Message, error) {
	var m Message
	if len(b) < 3 {
		return m, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != magic0 || b[1] != magic1 {
		return m, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if b[2] != formatVersion {
		return m, fmt.Errorf("%w: %d", ErrVersion, b[2])
	}
	if len(b) < headerLen {
		return m, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	m.Kind = Kind(b[3])
	if !m.Kind.Valid() {
		return Message{}, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, b[3])
	}
	var t uint64
	for i := 4; i < headerLen; i++ {
		t = t<<8 | uint64(b[i])
	}
	m.Timestamp = int64(t)
	rest := b[headerLen:]
	var err error
	if m.Cache, rest, err = decodeString(rest, "cache"); err != nil {
		return Message{}, err
	}
	if m.Key, rest, err = decodeString(rest, "key"); err != nil {
		return Message{}, err
	}
	if m.Source, rest, err = decodeString(rest, "source"); err != nil {
		return Message{}, err
	}
	if len(rest) != 0 {
		var v string
		if v, rest, err = decodeString(rest, "value"); err != nil {
			return Message{}, err
		}
		if v == "" {
			return Message{}, fmt.Errorf("%w: empty value", ErrCorrupt)
		}
		if len(rest) != 0 {
			return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(rest))
		}
		m.Value = v
	}
	return m, nil
}

func decodeString[T ~string | ~[]byte](b T, field string) (string, T, error) {
	var n uint64
	var shift uint
	i := 0
	for {
		if i >= len(b) {
			return "", b, fmt.Errorf("%w: truncated %s length", ErrCorrupt, field)
		}
		c := b[i]
		i++
		if i == 10 && c > 1 || i > 10 {
			return "", b, fmt.Errorf("%w: %s length overflows", ErrCorrupt, field)
		}
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if c == 0 && i > 1 {
				return "", b, fmt.Errorf("%w: non-minimal %s length", ErrCorrupt, field)
			}
			break
		}
		shift += 7
	}
	if n > uint64(len(b)-i) {
		return "", b, fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrCorrupt, field, n, len(b)-i)
	}
	end := i + int(n)
	return string(b[i:end]), b[end:], nil
}
