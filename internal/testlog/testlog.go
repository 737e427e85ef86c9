// Package testlog is a log sink for tests: a buffer that a slog handler
// writes to from many goroutines while the test reads it.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it; it is safe for concurrent use.
// The zero value is an empty buffer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
