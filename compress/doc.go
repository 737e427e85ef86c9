// Package compress provides serializer.Compressor implementations on
// github.com/klauspost/compress, for the distributed tier's compression
// (hybrid.Options.Compressor, strata.CacheSettings.Compressor): Zstandard
// (NewZstd) and S2 (S2), both faster than the core module's
// serializer.Flate.
//
// It is a module of its own (github.com/strata-cache/strata/compress), so
// that the core module depends on no compression library.
//
// Every node of a cache must use the same codec: the envelope records that
// a value is compressed, not how. The compression level may differ between
// nodes (any zstd level decodes with any other, and so do the S2 levels).
package compress
