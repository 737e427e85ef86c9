package serializer

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Msgpack is a [Serializer] that encodes values as MessagePack with
// github.com/vmihailenco/msgpack/v5. It is the default serializer.
//
// Struct fields are encoded by name (a `msgpack:"name"` tag renames a field,
// `msgpack:"-"` skips it); unknown fields are ignored when decoding. Integers
// of every size, []byte and time.Time round-trip exactly (a decoded time.Time
// is in the local time zone; compare with time.Time.Equal).
//
// The zero value is ready to use and safe for concurrent use.
type Msgpack struct{}

var _ Serializer = Msgpack{}

// Marshal returns the MessagePack encoding of v, or an error prefixed with
// "serializer: msgpack marshal" if v cannot be encoded (a channel, a func).
func (Msgpack) Marshal(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("serializer: msgpack marshal %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes the MessagePack data into v, which must be a non-nil
// pointer. It returns an error prefixed with "serializer: msgpack unmarshal"
// when data is malformed or does not fit the type of v.
func (Msgpack) Unmarshal(data []byte, v any) error {
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("serializer: msgpack unmarshal into %T: %w", v, err)
	}
	return nil
}
