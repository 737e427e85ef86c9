package serializer

import (
	"encoding/json"
	"fmt"
)

// JSON is a [Serializer] that encodes values with encoding/json, for caches
// whose L2 entries other tools must read.
//
// The usual encoding/json rules apply: only exported fields are encoded,
// `json:"..."` tags rename or skip them, unknown fields are ignored when
// decoding.
//
// WARNING: JSON is lossy where [Msgpack] is not. Strings holding invalid
// UTF-8 are changed (each bad byte becomes U+FFFD); integers above 2^53
// keep their value only when decoded into an integer field (into any or
// float64 they are rounded); []byte travels as base64; map keys become
// strings. Decode into the concrete type that was stored, never into any.
//
// The zero value is ready to use and safe for concurrent use.
type JSON struct{}

var _ Serializer = JSON{}

// Marshal returns the JSON encoding of v, or an error prefixed with
// "serializer: json marshal" if v cannot be encoded (a channel, a func, a
// NaN float).
func (JSON) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("serializer: json marshal %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes the JSON data into v, which must be a non-nil pointer.
// It returns an error prefixed with "serializer: json unmarshal" when data
// is malformed or does not fit the type of v.
func (JSON) Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("serializer: json unmarshal into %T: %w", v, err)
	}
	return nil
}
