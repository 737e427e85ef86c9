package main

import (
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Conditional requests (RFC 9110 13): a read evaluates If-Match against
// the value's ETag and If-None-Match (304); a write carrying any
// precondition is refused. Nothing carries a Last-Modified, so
// If-Unmodified-Since can be evaluated nowhere: it is refused (501) unless
// If-Match, which takes precedence over it (13.2.2), is there.

// etag is a strong validator of a value: its 64-bit xxhash.
func etag(v []byte) string {
	var b [18]byte
	b[0] = '"'
	var h [8]byte
	sum := xxhash.Sum64(v)
	for i := range h {
		h[i] = byte(sum >> (56 - 8*i))
	}
	hex.Encode(b[1:17], h[:])
	b[17] = '"'
	return string(b[:])
}

// etagMatch reports whether an If-None-Match header matches tag (the weak
// comparison, as RFC 9110 13.1.2 has it).
func etagMatch(header, tag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		p := strings.TrimSpace(part)
		p = strings.TrimPrefix(p, "W/")
		if p == "*" || p == tag {
			return true
		}
	}
	return false
}

// ifMatchHolds reports whether the If-Match field lines vals hold for the
// current representation whose ETag is tag: "*", or tag in the list,
// compared strongly (a weak W/"..." matches nothing, RFC 9110 13.1.1). A
// list that does not parse, or an empty one, holds for nothing, as in
// net/http's ServeContent.
func ifMatchHolds(vals []string, tag string) bool {
	for _, v := range vals {
		for {
			v = strings.TrimLeft(v, " \t")
			if v == "" {
				break
			}
			if v[0] == ',' {
				v = v[1:]
				continue
			}
			if v[0] == '*' {
				return true
			}
			et, rest, ok := scanETag(v)
			if !ok {
				break
			}
			if et == tag && !strings.HasPrefix(et, "W/") {
				return true
			}
			v = rest
		}
	}
	return false
}

// scanETag reads the entity-tag at the start of s (RFC 9110 8.8.3: an
// optional W/, then a quoted string of etagc), returning it with its
// quotes and the rest of s.
func scanETag(s string) (tag, rest string, ok bool) {
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s) <= start || s[start] != '"' {
		return "", "", false
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// readPrecondition answers the preconditions of a read (GET, HEAD) that
// are not evaluated after it; it answers the error itself. It returns
// whether the read goes on, and the If-Match field lines to evaluate
// against its result (nil if none; an If-Match without a value is an
// empty list, which nothing matches). If-Unmodified-Since without
// If-Match is 501: there is no Last-Modified to compare it with, and
// ignoring it, as RFC 9110 13.1.4 would have a server without
// modification dates do, would answer unconditionally a client that
// asked for a condition. withETag is false for an answer without an ETag
// (dache's), where If-Match cannot be evaluated either.
func readPrecondition(w http.ResponseWriter, r *http.Request, withETag bool) (ifMatch []string, ok bool) {
	im, hasIfMatch := r.Header["If-Match"]
	_, hasIUS := r.Header["If-Unmodified-Since"]
	switch {
	case hasIfMatch && !withETag:
		writeError(w, http.StatusNotImplemented, "not_implemented",
			"If-Match: this answer has no ETag to compare it with")
		return nil, false
	case hasIfMatch:
		if im == nil {
			im = []string{}
		}
		return im, true
	case hasIUS:
		writeError(w, http.StatusNotImplemented, "not_implemented",
			"If-Unmodified-Since: answers carry no Last-Modified to compare it with (use If-Match with the ETag)")
		return nil, false
	}
	return nil, true
}

// preconditionFailed answers a read whose If-Match does not hold: the key
// holds no value, or one whose ETag is not listed.
func preconditionFailed(w http.ResponseWriter) {
	writeError(w, http.StatusPreconditionFailed, "precondition_failed",
		"If-Match: the key holds no value with one of these ETags")
}

// preconditions are the request headers that make a write conditional
// (RFC 9110 13.1).
var preconditions = []string{"If-Match", "If-None-Match", "If-Unmodified-Since"}

// unconditional refuses a write that carries a precondition; it answers
// the error itself. The server cannot compare and write atomically (the
// library has no compare-and-set, and several servers share one Redis),
// and RFC 9110 13.1.1 forbids performing a method whose condition is
// false, so a conditional write is refused with 501, changing nothing: it
// used to be performed as if unconditional, so PUT with If-Match of an
// old ETag (optimistic concurrency) or If-None-Match: * (create only)
// overwrote the value another client had just written.
func unconditional(w http.ResponseWriter, r *http.Request) bool {
	for _, h := range preconditions {
		if _, ok := r.Header[h]; ok {
			writeError(w, http.StatusNotImplemented, "not_implemented",
				h+": conditional writes are not supported (the server cannot compare and write atomically); nothing was changed")
			return false
		}
	}
	return true
}
