package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/strata-cache/strata/hybrid"
)

// tagsHeader carries the tags of a PUT, comma-separated.
const tagsHeader = "Strata-Tags"

// staleHeader marks a value served stale (fail-safe or allow_stale).
const staleHeader = "Strata-Stale"

// read returns the value of key: from the cache, or from the origin on a
// miss in origin mode. stale reports a value served past its freshness.
func (c *cache) read(ctx context.Context, key string, allowStale bool) (v []byte, found, stale bool, err error) {
	v, found, stale, _, err = c.readInfo(ctx, key, allowStale)
	return v, found, stale, err
}

// readInfo is read that also says when the value was created (zero when
// unknown: origin mode).
func (c *cache) readInfo(ctx context.Context, key string, allowStale bool) (v []byte, found, stale bool, created time.Time, err error) {
	if c.origin != nil {
		if err := c.validOriginKey(key); err != nil {
			return nil, false, false, time.Time{}, err
		}
		if c.json {
			v, found, stale, err = originGet[json.RawMessage](ctx, c, key)
		} else {
			v, found, stale, err = originGet[[]byte](ctx, c, key)
		}
		return v, found, stale, time.Time{}, err
	}
	var info hybrid.EntryInfo
	if c.json {
		var raw json.RawMessage
		raw, info, found, err = hybrid.TryGetInfo[json.RawMessage](ctx, c.c, key, staleOpts(allowStale)...)
		v = raw
		if err == nil && found {
			if err = storedJSON(key, v); err != nil {
				return nil, false, false, time.Time{}, err
			}
		}
	} else {
		v, info, found, err = hybrid.TryGetInfo[[]byte](ctx, c.c, key, staleOpts(allowStale)...)
	}
	return v, found, found && info.Stale, info.Created, err
}

func staleOpts(allowStale bool) []hybrid.Option {
	if !allowStale {
		return nil
	}
	return []hybrid.Option{hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true })}
}

func (c *cache) tryGet(ctx context.Context, key string, allowStale bool) ([]byte, bool, error) {
	var opts []hybrid.Option
	if allowStale {
		opts = append(opts, hybrid.WithOptions(func(o *hybrid.EntryOptions) { o.AllowStaleOnRead = true }))
	}
	if c.json {
		v, ok, err := hybrid.TryGet[json.RawMessage](ctx, c.c, key, opts...)
		if err == nil && ok {
			if err := storedJSON(key, v); err != nil {
				return nil, false, err
			}
		}
		return v, ok, err
	}
	return hybrid.TryGet[[]byte](ctx, c.c, key, opts...)
}

// errStoredNotJSON is a value of a JSON cache that is not JSON: written by a
// client of the library, not through the server, which checks every body.
// Served as it is, it made a GET answer invalid JSON and a batch-get a 200
// with an empty body.
var errStoredNotJSON = errors.New("the stored value is not valid JSON")

// storedJSON checks a value read from a JSON cache.
func storedJSON(key string, v []byte) error {
	if !json.Valid(v) {
		return fmt.Errorf("key %q: %w", key, errStoredNotJSON)
	}
	return nil
}

// set stores v, as the cache's Go type.
func (c *cache) set(ctx context.Context, key string, v []byte, opts ...hybrid.Option) error {
	if c.json {
		return hybrid.Set(ctx, c.c, key, json.RawMessage(v), opts...)
	}
	return hybrid.Set(ctx, c.c, key, v, opts...)
}

// validOriginKey is nil if key is a key of the origin cache c: one the
// cache accepts and not "." or "..": GET {url}/.. is another resource of
// the origin (a client, a proxy or the origin resolves the dot segment,
// escaped or not), never a value of this cache.
func (c *cache) validOriginKey(key string) error {
	if key == "." || key == ".." {
		return fmt.Errorf("%w: %q would be a dot segment of the origin's path", hybrid.ErrInvalidKey, key)
	}
	return c.c.ValidateKey(key)
}

// query parses the query string of r; it answers the error itself. A
// query that does not parse (an invalid escape such as %zz, a ';' between
// parameters) is a 400: r.URL.Query() drops such a pair silently, so
// ?ttl=5m;x=1 stored with the cache's duration and
// ?allow_fail_safe=1;x=1 cleared without fail-safe.
func (s *server) query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if r.URL.RawQuery == "" {
		return nil, true
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed query string: "+err.Error())
		return nil, false
	}
	return q, true
}

// queryValue is the value of the query parameter name, "" when absent; a
// parameter given more than once is an error (which one the caller meant
// is not ours to guess).
func queryValue(q url.Values, name string) (string, error) {
	vs := q[name]
	if len(vs) > 1 {
		return "", fmt.Errorf("query parameter %s given %d times", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// boolQuery reads the boolean query parameter name: false when absent,
// true when given without a value (?allow_stale, or ?allow_stale=: a bare
// flag means "on", as Elasticsearch's ?pretty does; it used to be false,
// the opposite of what the caller asked for), else strconv.ParseBool's
// reading of the value (1, true, 0, false, ...).
func boolQuery(q url.Values, name string) (bool, error) {
	v, err := queryValue(q, name)
	if err != nil {
		return false, err
	}
	if _, present := q[name]; !present {
		return false, nil
	}
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query parameter %s=%q: 1, true, 0 or false expected (or %s alone: true)", name, v, name)
	}
	return b, nil
}

func (s *server) getKey(w http.ResponseWriter, r *http.Request, c *cache) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	allowStale, err := boolQuery(q, "allow_stale")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ifMatch, ok := readPrecondition(w, r, true)
	if !ok {
		return
	}
	key := r.PathValue("key")
	v, found, stale, created, err := c.readInfo(r.Context(), key, allowStale)
	if err != nil {
		if ifMatch != nil && errors.Is(err, errOriginNotFound) {
			preconditionFailed(w) // no current representation
			return
		}
		s.cacheError(w, c, err)
		return
	}
	if !found {
		s.miss(w, r, c, ifMatch != nil)
		return
	}
	if ifMatch != nil && !ifMatchHolds(ifMatch, etag(v)) {
		preconditionFailed(w)
		return
	}
	if !created.IsZero() {
		// Age: seconds since the value was created (RFC 9111 5.1).
		w.Header()["Age"] = []string{strconv.FormatInt(max(0, int64(time.Since(created)/time.Second)), 10)}
	}
	writeValue(w, r, c, v, stale)
}

// miss answers a read that found nothing: 404, or 412 for a read under
// If-Match (no current representation matches it), or 503 when a strict
// cache cannot ask its distributed tier (absent or not, we cannot tell).
func (s *server) miss(w http.ResponseWriter, r *http.Request, c *cache, ifMatch bool) {
	switch {
	case c.strict && c.l2Open(r.Context()):
		writeError(w, http.StatusServiceUnavailable, "tier_unavailable",
			"not in this node's memory, and the distributed tier is unavailable (see /readyz)")
	case ifMatch:
		preconditionFailed(w)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such key")
	}
}

func writeValue(w http.ResponseWriter, r *http.Request, c *cache, v []byte, stale bool) {
	h := w.Header()
	tag := etag(v)
	h["Etag"] = []string{tag}
	if stale {
		h[staleHeader] = []string{"true"}
		h["Warning"] = []string{`110 - "Response is Stale"`}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = []string{c.contentType}
	h["Content-Length"] = []string{strconv.Itoa(len(v))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(v)
	}
}

// ttlOf reads the TTL of a PUT: ?ttl= (a Go duration or seconds) wins
// over Cache-Control: max-age. Zero means the cache's duration. A ttl
// parameter without a value (?ttl, ?ttl=) is an error: the client sent a
// TTL that is not one (it used to be taken as no TTL at all, so the entry
// got the max-age or the cache's duration without a word).
func ttlOf(r *http.Request, q url.Values) (time.Duration, error) {
	v, err := queryValue(q, "ttl")
	if err != nil {
		return 0, err
	}
	if _, present := q["ttl"]; present {
		d, err := parseTTL(v)
		if err != nil {
			return 0, fmt.Errorf("ttl=%q: %w", v, err)
		}
		return d, nil
	}
	// Every max-age directive is read: a second one (in the same line or
	// another) is an error, as a second ?ttl is, where the first used to
	// win and a malformed second one (max-age=10, max-age=-1) went
	// unnoticed. White space around '=' is tolerated rather than the
	// directive being skipped.
	var ttl time.Duration
	n := 0
	for _, cc := range r.Header.Values("Cache-Control") {
		for part := range strings.SplitSeq(cc, ",") {
			name, val, _ := strings.Cut(part, "=")
			if !strings.EqualFold(strings.TrimSpace(name), "max-age") {
				continue
			}
			if n++; n > 1 {
				return 0, errors.New("Cache-Control: max-age given more than once")
			}
			val = strings.TrimSpace(val)
			d, ok := maxAge(val)
			if !ok || d <= 0 {
				return 0, fmt.Errorf("Cache-Control max-age=%q: a positive number of seconds expected", val)
			}
			ttl = d
		}
	}
	return ttl, nil
}

// parseTTL reads a TTL: a Go duration or a number of seconds, positive.
// A TTL longer than dacheForever (10 years) is dacheForever, as a dache
// expiry is; so is a number of seconds too large for an int64, and a
// well-formed duration too long for a time.Duration.
func parseTTL(v string) (time.Duration, error) {
	if d, ok := maxAge(v); ok && !strings.Contains(v, `"`) {
		if d <= 0 {
			return 0, errors.New("a positive number of seconds expected")
		}
		return d, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n <= 0 {
		return 0, errors.New("a positive number of seconds expected")
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil && !durationSyntax.MatchString(v):
		return 0, errors.New("a duration such as 30s or a number of seconds expected")
	case err != nil && strings.HasPrefix(v, "-"):
		return 0, errors.New("the TTL must be positive")
	case err != nil: // well-formed and positive: too long for a time.Duration
		return dacheForever, nil
	case d <= 0:
		return 0, errors.New("the TTL must be positive")
	}
	return min(d, dacheForever), nil
}

// durationSyntax matches what time.ParseDuration reads, whatever the
// magnitude: a string that matches and still fails to parse overflows.
var durationSyntax = regexp.MustCompile(`^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$`)

// maxAge parses delta-seconds (RFC 9111 1.2.2), as in Cache-Control:
// max-age (quotes allowed). A value beyond dacheForever is dacheForever,
// and so is one beyond what an int64 holds: the RFC has a cache treat an
// overflowing delta-seconds as the greatest value it can represent. ok is
// false for anything but digits.
func maxAge(val string) (d time.Duration, ok bool) {
	val = strings.Trim(val, `"`)
	if val == "" {
		return 0, false
	}
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n > int64(dacheForever/time.Second) { // digits only: err is ErrRange
		return dacheForever, true
	}
	return time.Duration(n) * time.Second, true
}

// tagsOf reads the Strata-Tags header.
func tagsOf(r *http.Request) ([]string, error) {
	vals := r.Header.Values(tagsHeader)
	if len(vals) == 0 {
		return nil, nil
	}
	var tags []string
	for _, v := range vals {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if err := validTag(t); err != nil {
				return nil, fmt.Errorf("%s: %w", tagsHeader, err)
			}
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// validTag reports a tag the library refuses (empty, longer than
// hybrid.MaxTagLength), for a 400 bad_tags wherever tags are given: the
// library's own error is an ErrInvalidOptions, which is bad_request.
func validTag(t string) error {
	if t == "" {
		return errors.New("empty tag")
	}
	if len(t) > hybrid.MaxTagLength {
		return fmt.Errorf("tag longer than %d bytes", hybrid.MaxTagLength)
	}
	return nil
}

// readBody reads the bounded body; it answers the error itself. A body
// with a content coding (Content-Encoding: gzip, ...) is refused with 415
// (RFC 9110 15.5.16): the server does not decode it, and storing the
// encoded bytes would serve them later as the value itself. A body that is
// a part of one (Content-Range) is refused with 400, as RFC 9110 14.5
// requires of a PUT: storing the part would replace the whole value.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if _, ok := r.Header["Content-Range"]; ok {
		writeError(w, http.StatusBadRequest, "bad_request",
			"Content-Range: partial writes are not supported; send the whole value")
		return nil, false
	}
	for _, v := range r.Header.Values("Content-Encoding") {
		for coding := range strings.SplitSeq(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				w.Header().Set("Accept-Encoding", "identity")
				writeError(w, http.StatusUnsupportedMediaType, "unsupported_encoding",
					fmt.Sprintf("Content-Encoding %q is not supported: send the body unencoded", coding))
				return nil, false
			}
		}
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_body", "reading the body: "+err.Error())
		return nil, false
	}
	return b, true
}

func (s *server) putKey(w http.ResponseWriter, r *http.Request, c *cache) {
	if !unconditional(w, r) {
		return
	}
	key := r.PathValue("key")
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	ttl, err := ttlOf(r, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_ttl", err.Error())
		return
	}
	tags, err := tagsOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_tags", err.Error())
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if c.json {
		err := validJSONText(body)
		if err == nil && !json.Valid(body) {
			err = errors.New("the body is not valid JSON")
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_body", err.Error()+" (this cache holds JSON values)")
			return
		}
	}
	var opts []hybrid.Option
	if ttl > 0 {
		opts = append(opts, hybrid.WithDuration(ttl))
	}
	if tags != nil {
		opts = append(opts, hybrid.WithTags(tags...))
	}
	err = s.strictWrite(r.Context(), c, key, func() error { return c.set(r.Context(), key, body, opts...) })
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.Header().Set("Etag", etag(body))
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) deleteKey(w http.ResponseWriter, r *http.Request, c *cache) {
	if !unconditional(w, r) {
		return
	}
	key := r.PathValue("key")
	err := s.strictWrite(r.Context(), c, key, func() error { return c.c.Remove(r.Context(), key) })
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) expireKey(w http.ResponseWriter, r *http.Request, c *cache) {
	if !unconditional(w, r) {
		return
	}
	key := r.PathValue("key")
	err := s.strictWrite(r.Context(), c, key, func() error { return c.c.Expire(r.Context(), key) })
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeJSON decodes the whole body into v, refusing trailing data and
// fields other than fields (exactly: encoding/json alone takes "Keys" for
// "keys"); it answers the error itself.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, v any, fields ...string) bool {
	body, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	err := decodeOne(body, v)
	if err == nil {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m) // one JSON object, or null: checked above
		err = unknownField(m, fields...)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}

// unknownField reports the first field of m that is not one of fields,
// compared exactly.
func unknownField(m map[string]json.RawMessage, fields ...string) error {
	for name := range m {
		if !slices.Contains(fields, name) {
			return fmt.Errorf("unknown field %q (the fields are %s)", name, strings.Join(fields, ", "))
		}
	}
	return nil
}

// decodeOne decodes body, which must be exactly one JSON value, into v,
// refusing unknown fields and a member name given twice in the top-level
// object. Anything after the value but white space is an error
// (json.Decoder.More does not see a stray '}' or ']').
func decodeOne(body []byte, v any) error {
	if err := validJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return uniqueNames(body)
}

// validJSONText reports a body that is not UTF-8, which JSON text
// exchanged between systems must be (RFC 8259 8.1). encoding/json takes
// such bytes and json.Valid passes them: a batch-get key with a stray
// 0xff byte was read as the key U+FFFD without a word, and a dache or
// JSON-cache value kept the bytes and was served later as JSON that is
// not JSON.
func validJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("the body is not UTF-8 (JSON text must be, RFC 8259 8.1)")
	}
	return nil
}

// uniqueNames reports a member name that the top-level object of body,
// valid JSON, gives twice (after unescaping: "value" and "valu\u0065" are
// one name). encoding/json keeps the last one without a word, so
// {"value":1,"value":2} stored 2; which one the client meant is not ours
// to guess (encoding/json/v2 refuses duplicates too). Nested objects are
// values, stored as sent.
func uniqueNames(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := t.(string)
		if seen[name] {
			return fmt.Errorf("field %q given twice", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// removeByTagRequest is the body of remove-by-tag. Mode is "expire" (the
// default: the entries stay fail-safe fallbacks) or "delete" (gone).
type removeByTagRequest struct {
	Tags []string `json:"tags"`
	Mode string   `json:"mode"`
}

func (s *server) removeByTag(w http.ResponseWriter, r *http.Request, c *cache) {
	var req removeByTagRequest
	if !s.decodeJSON(w, r, &req, "tags", "mode") {
		return
	}
	if len(req.Tags) == 0 {
		writeError(w, http.StatusBadRequest, "bad_body", `"tags" must list at least one tag`)
		return
	}
	for i, t := range req.Tags {
		if err := validTag(t); err != nil {
			writeError(w, http.StatusBadRequest, "bad_tags", fmt.Sprintf(`"tags"[%d]: %v`, i, err))
			return
		}
	}
	var mode hybrid.TagRemoval
	switch req.Mode {
	case "", "expire":
		mode = hybrid.ExpireTagged
	case "delete":
		mode = hybrid.DeleteTagged
	default:
		writeError(w, http.StatusBadRequest, "bad_body", `"mode" must be "expire" or "delete"`)
		return
	}
	if err := c.c.RemoveByTagWith(r.Context(), mode, req.Tags...); err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) clear(w http.ResponseWriter, r *http.Request, c *cache) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	allow, err := boolQuery(q, "allow_fail_safe")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := c.c.Clear(r.Context(), allow); err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type batchGetRequest struct {
	Keys []string `json:"keys"`
}

// batchGetResponse holds the values found (base64 strings for a bytes
// cache, the JSON values themselves for a json cache) and the keys not
// found.
type batchGetResponse struct {
	Values  map[string]any `json:"values"`
	Missing []string       `json:"missing"`
}

// batchGet reads many keys. Without an origin it is the library's
// TryGetMany: the keys memory does not answer are read from the
// distributed tier in one round trip (per hybrid.MaxBatchKeys keys). With
// an origin each key is read as GET reads it (a load per key, stampede
// protection per key, the origin called for the misses).
func (s *server) batchGet(w http.ResponseWriter, r *http.Request, c *cache) {
	var req batchGetRequest
	if !s.decodeJSON(w, r, &req, "keys") {
		return
	}
	if len(req.Keys) == 0 {
		writeError(w, http.StatusBadRequest, "bad_body", `"keys" must list at least one key`)
		return
	}
	keys := make([]string, 0, len(req.Keys))
	seen := make(map[string]struct{}, len(req.Keys))
	for _, key := range req.Keys {
		if _, dup := seen[key]; !dup {
			seen[key] = struct{}{}
			keys = append(keys, key)
		}
	}
	if len(keys) > s.cfg.MaxBatchKeys { // distinct keys: a duplicate is answered once
		writeError(w, http.StatusBadRequest, "bad_body", fmt.Sprintf("at most %d distinct keys per batch", s.cfg.MaxBatchKeys))
		return
	}
	resp := batchGetResponse{Values: map[string]any{}, Missing: []string{}}
	var notJSON error // the first value of a JSON cache that is not JSON
	add := func(key string, v []byte, found bool) {
		switch {
		case !found:
			resp.Missing = append(resp.Missing, key)
		case c.json:
			if err := storedJSON(key, v); err != nil && notJSON == nil {
				notJSON = err
			}
			resp.Values[key] = json.RawMessage(v)
		default:
			resp.Values[key] = v
		}
	}
	if c.origin != nil {
		// Every key is checked before the origin is called for any:
		// a request with a bad key changes nothing.
		for _, key := range keys {
			if err := c.validOriginKey(key); err != nil {
				s.cacheError(w, c, fmt.Errorf("key %q: %w", key, err))
				return
			}
		}
		for _, key := range keys {
			v, found, _, err := c.read(r.Context(), key, false)
			if err != nil && !errors.Is(err, errOriginNotFound) {
				s.cacheError(w, c, fmt.Errorf("key %q: %w", key, err))
				return
			}
			add(key, v, found && err == nil)
		}
		if notJSON != nil {
			s.cacheError(w, c, notJSON)
			return
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), hybrid.MaxBatchKeys)]
		keys = keys[len(chunk):]
		var err error
		if c.json {
			err = batchRead[json.RawMessage](r.Context(), c, chunk, add)
		} else {
			err = batchRead[[]byte](r.Context(), c, chunk, add)
		}
		if err != nil {
			s.cacheError(w, c, err)
			return
		}
	}
	if notJSON != nil {
		s.cacheError(w, c, notJSON)
		return
	}
	if len(resp.Missing) > 0 && c.strict && c.l2Open(r.Context()) {
		// As GET's miss: absent or not, these keys cannot be told apart
		// from keys that Redis holds and this node cannot read.
		writeError(w, http.StatusServiceUnavailable, "tier_unavailable",
			fmt.Sprintf("%d of the keys are not in this node's memory, and the distributed tier is unavailable (see /readyz)", len(resp.Missing)))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// batchRead reads keys with TryGetMany and hands each result to add; the
// first key whose read failed (an invalid key, a value of another type)
// is the error, naming the key.
func batchRead[T ~[]byte](ctx context.Context, c *cache, keys []string, add func(key string, v []byte, found bool)) error {
	res, err := hybrid.TryGetMany[T](ctx, c.c, keys)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("key %q: %w", keys[i], r.Err)
		}
	}
	for i, r := range res {
		add(keys[i], r.Value, r.Found)
	}
	return nil
}
