package hybrid

import (
	"errors"

	"github.com/strata-cache/strata/internal/redisstore"
)

// Sentinel errors returned by the cache. Match them with errors.Is: the
// returned errors wrap them with the key or the field at fault.
var (
	// ErrInvalidKey is returned for an empty key, a key longer than
	// Options.MaxKeyLength (DefaultMaxKeyLength unless set), or a key
	// starting with the reserved prefix "__strata:".
	ErrInvalidKey = errors.New("hybrid: invalid key")
	// ErrClosed is returned by every operation on a cache after Close.
	ErrClosed = errors.New("hybrid: closed")
	// ErrFactoryTimeout is returned when FactoryHardTimeout elapsed and no
	// stale value could be served instead.
	ErrFactoryTimeout = errors.New("hybrid: factory timeout")
	// ErrTypeMismatch is returned when a key is read as a type other than the
	// one stored under it. It is never answered with a silent zero value.
	ErrTypeMismatch = errors.New("hybrid: type mismatch")
	// ErrNilFactory is returned by GetOrSet when the factory is nil.
	ErrNilFactory = errors.New("hybrid: nil factory")
	// ErrInvalidOptions is returned for options that cannot be honoured, such
	// as a negative duration or a threshold outside (0, 1).
	ErrInvalidOptions = errors.New("hybrid: invalid options")
	// ErrFactoryPanic is returned to the callers that waited on a factory run
	// that panicked. The caller that started the run gets the panic itself.
	ErrFactoryPanic = errors.New("hybrid: factory panicked")
	// ErrValueTooLarge is returned when a serialized value exceeds
	// Options.MaxValueSize, before anything is written. It is the only
	// value-size error: the Redis tier's own protocol guard returns the same
	// sentinel.
	ErrValueTooLarge = redisstore.ErrValueTooLarge
	// ErrNotFound is returned by GetOrSet when the factory said, now or
	// earlier within EntryOptions.NotFoundDuration, that the key has no
	// value (FactoryContext.NotFound). TryGet reports such a key as a miss.
	ErrNotFound = errors.New("hybrid: not found")
	// ErrLoadCycle is returned by GetOrSet (and GetOrSetMany, for the key
	// at fault) called with the context of a factory, or one derived from
	// it, for a key that this very load is loading: the key of the
	// factory, or of a factory further up a chain of loads (the factory of
	// A reads B, whose factory reads A). Waiting would wait for itself.
	// A factory that reads through another context (context.Background())
	// cannot be told apart, and waits.
	ErrLoadCycle = errors.New("hybrid: load cycle")
)
