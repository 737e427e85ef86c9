package hybrid

import (
	"context"
	"errors"
	"time"
)

// Factory loads the value of a key on a cache miss. Its context is detached
// from the caller's cancellation (the load is shared by every caller of the
// key) and is cancelled when the cache closes, or at a timeout when
// DisableBackgroundCompletion is set. Factories must honour it, and pass
// it on when they read the cache: with it, GetOrSet of a key this load is
// loading returns ErrLoadCycle instead of waiting for itself.
//
// WARNING: concurrent GetOrSet calls of a key share one factory run, so
// only one of their factories runs and the others' callers get its result.
// Every factory used with a key must compute the same value.
type Factory[T any] func(ctx context.Context, fc *FactoryContext[T]) (T, error)

// FactoryContext is handed to a factory: it tells what the cache holds for
// the key (a stale value and its metadata) and lets the factory change the
// options of the entry it produces (adaptive caching).
type FactoryContext[T any] struct {
	key          string
	opts         EntryOptions
	stale        T
	hasStale     bool
	staleETag    string
	staleLastMod int64
	etag         string
	lastMod      int64
	notModified  bool
	notFound     bool
}

// ErrNoStaleValue is returned by FactoryContext.NotModified when the cache
// holds no stale value to keep.
var ErrNoStaleValue = errors.New("hybrid: NotModified without a stale value")

// Key returns the key being loaded.
func (fc *FactoryContext[T]) Key() string { return fc.key }

// Stale returns the stale value the cache still holds for the key, if any
// (an expired fail-safe entry, or the current value during an eager refresh).
func (fc *FactoryContext[T]) Stale() (T, bool) { return fc.stale, fc.hasStale }

// SetDuration changes the logical lifetime of the entry being produced.
// A negative duration makes the load fail with ErrInvalidOptions.
func (fc *FactoryContext[T]) SetDuration(d time.Duration) { fc.opts.Duration = d }

// SetFailSafe turns fail-safe on or off for the entry being produced.
func (fc *FactoryContext[T]) SetFailSafe(enabled bool) { fc.opts.FailSafe = enabled }

// SetTags sets the tags of the entry being produced.
func (fc *FactoryContext[T]) SetTags(tags ...string) {
	fc.opts.Tags = append([]string(nil), tags...)
}

// ETag returns the ETag stored with the stale entry, or "".
func (fc *FactoryContext[T]) ETag() string { return fc.staleETag }

// LastModified returns the last-modified time stored with the stale entry,
// or the zero time.
func (fc *FactoryContext[T]) LastModified() time.Time { return unixTime(fc.staleLastMod) }

// SetETag stores an ETag with the value being produced.
func (fc *FactoryContext[T]) SetETag(etag string) { fc.etag = etag }

// SetLastModified stores a last-modified time with the value being produced.
func (fc *FactoryContext[T]) SetLastModified(t time.Time) {
	fc.lastMod = 0
	if !t.IsZero() {
		fc.lastMod = t.UnixNano()
	}
}

// NotModified is for conditional refresh: return its results from the
// factory to keep the stale value, stored again as fresh with a new
// lifetime. Without a stale value it returns an error.
func (fc *FactoryContext[T]) NotModified() (T, error) {
	if !fc.hasStale {
		var zero T
		return zero, ErrNoStaleValue
	}
	fc.notModified = true
	return fc.stale, nil
}

// NotFound is for a key the source has no value for (a record that does
// not exist): return its results from the factory. The callers get
// ErrNotFound, and with EntryOptions.NotFoundDuration positive the answer
// is cached for that long, in memory and in the distributed tier (and
// announced like any write), so that a missing id does not reach the
// source on every request. A later Set of the key replaces it.
func (fc *FactoryContext[T]) NotFound() (T, error) {
	fc.notFound = true
	var zero T
	return zero, nil
}

// meta returns the ETag and last-modified time to store with the result.
func (fc *FactoryContext[T]) meta() meta {
	m := meta{etag: fc.etag, lastMod: fc.lastMod}
	if fc.notModified {
		if m.etag == "" {
			m.etag = fc.staleETag
		}
		if m.lastMod == 0 {
			m.lastMod = fc.staleLastMod
		}
	}
	return m
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
