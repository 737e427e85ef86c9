// Package envelope encodes and decodes the L2 envelope: the binary record
// that Strata stores as the Redis value of every entry. It carries the
// serialized value together with the metadata the engine needs to apply
// newest-wins, logical expiration, tags and conditional refresh.
//
// # Layout (version 1)
//
// All integers are big-endian; "uvarint" is encoding/binary's unsigned
// varint, in its shortest form.
//
//	offset  size  field
//	0       1     magic 0xA7
//	1       1     version, 1
//	2       8     Timestamp     int64, unix nanoseconds, >= 0
//	10      8     FreshUntil    int64, unix nanoseconds
//	18      8     LastModified  int64, unix nanoseconds, 0 = none
//	26      1     flags: bit 0 FlagRemoved (a removal record, no value),
//	              bit 1 FlagCreated (Created follows the value), bit 2
//	              FlagNotFound (a cached "not found", no value), bit 3
//	              FlagCompressed (Value is compressed); any other bit set
//	              is corrupt
//	27      ...   uvarint len, then the bytes of Type
//	        ...   uvarint len, then the bytes of ETag
//	        ...   uvarint count of Tags, then for each: uvarint len, bytes
//	        ...   uvarint len, then the bytes of Value
//	        8     Created       int64, unix nanoseconds, > 0; only with FlagCreated
//	n-4     4     CRC-32C (Castagnoli) of bytes [0, n-4)
//
// The smallest envelope is [MinSize] bytes (every string empty, no tags, an
// empty value).
//
// # Ordering contract
//
// Bytes 0..9 (magic, version, Timestamp) are fixed for every future version.
// Timestamp must be >= 0, so its 8 big-endian bytes sort, compared byte by
// byte, exactly as the numbers do. The Redis store relies on this: its Lua
// script compares bytes 2..9 of the stored and the new value to keep the
// newest write without decoding either. [Decode] and [Timestamp] reject a
// negative Timestamp; [Envelope.Append] cannot fail and does not check, so
// callers must not build an envelope with a negative Timestamp.
//
// # Safety
//
// [Decode] never panics, bounds every length by the remaining input (a
// corrupt length cannot cause a large allocation), verifies the checksum,
// rejects trailing bytes, and returns values that do not alias its input.
package envelope
