package redistest

import (
	"bytes"
	"strings"
	"sync"
)

// maxLogBytes bounds what a logBuffer keeps: only the tail matters in failure messages.
const maxLogBytes = 256 << 10

// logBuffer collects a process's stdout and stderr; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p, dropping the oldest bytes beyond maxLogBytes.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - maxLogBytes; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

// String returns everything kept so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset empties the buffer.
func (b *logBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// tail returns the last n lines, indented, for a failure message.
func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}
