// Package serializer turns cached values into bytes and back for the
// distributed (L2) tier of a Strata cache.
//
// A [Serializer] has two methods, Marshal and Unmarshal. Two implementations
// are provided:
//
//   - [Msgpack], built on github.com/vmihailenco/msgpack/v5, is the default:
//     compact, fast, and exact for integers, byte slices and time.Time.
//   - [JSON], built on encoding/json, for values that other tools must read.
//
// Both are stateless, safe for concurrent use, and usable as zero values:
//
//	var s serializer.Serializer = serializer.Msgpack{}
//	b, err := s.Marshal(user)
//	...
//	var u User
//	err = s.Unmarshal(b, &u)
//
// Always decode into the caller's concrete type (a pointer to T), never into
// a pointer to an interface value: decoding into any loses the type (JSON
// turns objects into map[string]any and numbers into float64; msgpack turns
// structs into maps).
//
// WARNING: with [JSON], integers above 2^53 survive only when decoded into an
// integer type (decoding into any or float64 rounds them), strings holding
// invalid UTF-8 are silently changed (each bad byte becomes U+FFFD), []byte
// travels as base64, and time.Time keeps its instant but may lose its
// monotonic reading and location name. Use [Msgpack] when any of this
// matters.
package serializer
