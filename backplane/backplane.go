package backplane

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Kind is the kind of change a [Message] announces.
type Kind uint8

// The kinds of change. The numeric values are part of the wire format and never change.
const (
	// KindSet announces that a key was written: receivers holding an older copy must
	// refresh it (re-read L2) or mark it stale.
	KindSet Kind = 1
	// KindRemove announces that a key was removed: receivers drop their copy.
	KindRemove Kind = 2
	// KindExpire announces that a key was expired: receivers mark their copy stale
	// (it stays available as a fail-safe fallback).
	KindExpire Kind = 3
	// KindClear announces that a whole cache was cleared. Key is empty.
	KindClear Kind = 4
)

// String returns the lowercase name of k ("set", "remove", "expire", "clear"), or
// "kind(N)" for a value that is not a known kind.
func (k Kind) String() string {
	switch k {
	case KindSet:
		return "set"
	case KindRemove:
		return "remove"
	case KindExpire:
		return "expire"
	case KindClear:
		return "clear"
	default:
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool { return k >= KindSet && k <= KindClear }

// Message is one change notification travelling on a backplane channel.
type Message struct {
	// Kind is the kind of change.
	Kind Kind
	// Cache is the name of the cache the change belongs to.
	Cache string
	// Key is the cache key. It may hold any bytes, including invalid UTF-8; the binary
	// format carries it unchanged.
	Key string
	// Source is the instance id of the sender. Receivers ignore their own messages by
	// comparing it with their own id; a backplane delivers a sender's messages to the
	// sender too.
	Source string
	// Timestamp is the time of the change in Unix nanoseconds. Receivers use it to let
	// the newest change win.
	Timestamp int64
	// Value is, optionally, what a KindSet change wrote: the entry as the distributed
	// tier holds it (an encoded envelope, hybrid's own format), so that receivers can
	// replace their copy without reading it back (hybrid.Options.BackplaneValueMaxSize).
	// Empty for other kinds and for large values.
	Value string
}

// Handler receives what arrives on a backplane. A backplane calls its handler from one
// goroutine at a time (calls are sequential), never while holding one of its own locks.
// A handler that blocks delays later deliveries; with [Redis] it can make the bounded
// receive queue overflow, which is reported as a gap.
type Handler interface {
	// HandleMessage is called for every message received, including the ones this
	// process published itself (filter by [Message.Source]).
	HandleMessage(m Message)
	// HandleGap reports that messages may have been lost: the subscription was
	// re-established after a disconnect, or the receive queue overflowed. The first
	// successful subscription is not a gap. Several gaps that happen before the handler
	// is called are reported once.
	HandleGap()
}

// Backplane sends change notifications to the other instances of a cache and delivers
// theirs. Delivery is at-most-once: see the package documentation.
type Backplane interface {
	// Publish sends m to every subscriber of the channel, including the sender. It
	// returns an error if the message could not be handed to the transport (no retry
	// is attempted), and [ErrClosed] after Close.
	Publish(ctx context.Context, m Message) error
	// Subscribe starts delivering messages to h. It may be called at most once per
	// Backplane; a second call returns [ErrSubscribed].
	Subscribe(h Handler) error
	// Close stops delivery and waits for every goroutine the backplane started. After
	// Close returns, h is not called again. Close is idempotent.
	Close() error
}

// Errors returned by this package, matched with [errors.Is].
var (
	// ErrClosed is returned by Publish and Subscribe after Close.
	ErrClosed = errors.New("backplane: closed")
	// ErrSubscribed is returned by a second call to Subscribe.
	ErrSubscribed = errors.New("backplane: already subscribed")
	// ErrCorrupt is returned by [DecodeMessage] for bytes that are not a well-formed
	// message.
	ErrCorrupt = errors.New("backplane: corrupt message")
	// ErrVersion is returned by [DecodeMessage] for a message of a format version this
	// package does not know (sent by a newer release).
	ErrVersion = errors.New("backplane: unsupported message version")
	// ErrInvalidMessage is returned by Publish for a message that cannot be sent (an
	// unknown Kind).
	ErrInvalidMessage = errors.New("backplane: invalid message")
	// ErrSubscribeTimeout is returned by [Redis.Subscribe] when the first subscription
	// is not confirmed in time. Delivery stays started; see [Redis.Subscribe].
	ErrSubscribeTimeout = errors.New("backplane: subscribe timeout")
)

// Stats are counters of a backplane since it was created, for metrics.
type Stats struct {
	// Published counts messages published successfully.
	Published uint64
	// Received counts payloads received from the transport, including the corrupt and
	// the dropped ones.
	Received uint64
	// Dropped counts messages dropped because the receive queue was full.
	Dropped uint64
	// Corrupt counts payloads that could not be decoded (never delivered).
	Corrupt uint64
	// Gaps counts calls of [Handler.HandleGap] (coalesced gaps).
	Gaps uint64
	// Resubscribes counts subscriptions re-established after a disconnect.
	Resubscribes uint64
}

func validate(m Message) error {
	if !m.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidMessage, m.Kind)
	}
	return nil
}

var errNilHandler = errors.New("backplane: nil handler")
