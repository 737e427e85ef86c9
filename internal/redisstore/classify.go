package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/internal/tlserr"
)

// Kind is the class of an error returned by the store, which tells the
// engine how to react.
type Kind int

const (
	// KindNone is the kind of a nil error.
	KindNone Kind = iota
	// KindTransient means Redis is unreachable, slow, restarting or
	// overloaded: a timeout, a refused, reset or closed connection, a pool
	// timeout, or a server reply LOADING, READONLY, CLUSTERDOWN, TRYAGAIN,
	// MASTERDOWN, BUSY, NOREPLICAS, OOM, MOVED/ASK, or max clients reached.
	// The same call may succeed later: open the circuit breaker and queue
	// writes for replay.
	KindTransient
	// KindConfig means Redis answered and refused because of how things are
	// set up: NOPERM, NOAUTH, WRONGPASS, WRONGTYPE (another Redis type at
	// the key), NOSCRIPT (scripting unavailable even after the EVAL
	// fallback), CROSSSLOT, an unknown or disabled command, cluster support
	// disabled, a client that was closed (redis.ErrClosed), or a TLS
	// handshake that failed on the server's certificate (not trusted, wrong
	// host name, expired) or on a server without TLS. Waiting will not fix
	// it; it needs a person.
	KindConfig
	// KindOther is everything else, including a caller's cancelled
	// context (context.Canceled), which is no fault of Redis, and the
	// store's own input errors (ErrValueTooLarge, ErrNotEnvelope,
	// ErrInvalidTTL).
	KindOther
)

// String returns the kind's name: "none", "transient", "config" or "other".
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindTransient:
		return "transient"
	case KindConfig:
		return "config"
	case KindOther:
		return "other"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// transientCodes and configCodes are the Redis error codes (the first word
// of an error reply) of each kind.
var (
	transientCodes = map[string]bool{
		"LOADING": true, "READONLY": true, "CLUSTERDOWN": true, "TRYAGAIN": true,
		"MASTERDOWN": true, "BUSY": true, "NOREPLICAS": true, "OOM": true,
		"MOVED": true, "ASK": true,
	}
	configCodes = map[string]bool{
		"NOPERM": true, "NOAUTH": true, "WRONGPASS": true, "WRONGTYPE": true,
		"NOSCRIPT": true, "CROSSSLOT": true,
	}
)

// Classify returns the kind of err, an error from the store or from go-redis
// (wrapped or not): KindNone for nil. See the Kind constants for what goes
// where.
func Classify(err error) Kind {
	if err == nil {
		return KindNone
	}
	// The caller gave up: not a fault of Redis. Checked first, because
	// go-redis may wrap a cancellation in other errors.
	if errors.Is(err, context.Canceled) {
		return KindOther
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return classifyReply(rerr.Error())
	}
	switch {
	case errors.Is(err, redis.ErrClosed), tlserr.Untrusted(err):
		return KindConfig
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return KindTransient
	}
	// Any other network error: a timeout, a failed dial (DNS, no route),
	// a TLS handshake cut short.
	var nerr net.Error
	if errors.As(err, &nerr) {
		return KindTransient
	}
	return KindOther
}

// classifyReply classifies a Redis error reply by its code.
func classifyReply(msg string) Kind {
	// A script's error keeps the code of the command that failed inside it
	// on Redis 7; KVRocks and a few proxies put "ERR " in front of the code.
	msg = strings.TrimPrefix(msg, "ERR ")
	code, _, _ := strings.Cut(msg, " ")
	switch {
	case transientCodes[code]:
		return KindTransient
	case configCodes[code]:
		return KindConfig
	case strings.HasPrefix(msg, "max number of clients reached"):
		return KindTransient
	case strings.HasPrefix(msg, "unknown command"), strings.Contains(msg, "command not allowed"),
		strings.Contains(msg, "cluster support disabled"): // a cluster client on a standalone server
		return KindConfig
	}
	return KindOther
}
