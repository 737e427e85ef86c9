package serializer

// Serializer turns values into bytes and back.
//
// Implementations must be safe for concurrent use. Unmarshal is always given
// a non-nil pointer to the caller's concrete type T; it must return an error,
// and never panic, when data was not produced for that type or is malformed.
type Serializer interface {
	// Marshal returns the encoding of v. The returned slice belongs to the
	// caller.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer. It does not keep
	// references to data after it returns.
	Unmarshal(data []byte, v any) error
}
