package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// dacheGet answers GET /dache/{key}: 200 {"value": ...} or 404. Its
// answer has no ETag, so If-Match (and If-Unmodified-Since) is 501.
func (s *server) dacheGet(w http.ResponseWriter, r *http.Request, c *cache) {
	if _, ok := readPrecondition(w, r, false); !ok {
		return
	}
	v, found, err := c.tryGet(r.Context(), r.PathValue("key"), false)
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	if !found {
		s.miss(w, r, c, false)
		return
	}
	b := make([]byte, 0, len(v)+11)
	b = append(b, `{"value":`...)
	b = append(b, v...)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// dachePost answers POST /dache/{key} {"value": ..., "expiry": unix-seconds}: 204.
func (s *server) dachePost(w http.ResponseWriter, r *http.Request, c *cache) {
	if !unconditional(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	// A map, not a struct: encoding/json matches a struct's field names
	// case-insensitively, and only "value" and "expiry" are fields.
	var req map[string]json.RawMessage
	if err := decodeOne(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `the body must be {"value": <json>, "expiry": <unix seconds>}: `+err.Error())
		return
	}
	if err := unknownField(req, "value", "expiry"); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	value, ok := req["value"]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_body", `"value" is required`)
		return
	}
	var opts []hybrid.Option
	if expiry, ok := req["expiry"]; ok && string(expiry) != "null" {
		d, err := dacheLifetime(expiry, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_expiry", err.Error())
			return
		}
		opts = append(opts, hybrid.WithDuration(d))
	}
	key := r.PathValue("key")
	err := s.strictWrite(r.Context(), c, key, func() error { return c.set(r.Context(), key, value, opts...) })
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// dacheLifetime is the lifetime of a dache entry whose "expiry" is the
// JSON value expiry: a JSON number (not a string) that is a whole number
// of seconds since the Unix epoch, after now. An expiry more than
// dacheForever (10 years) away, including one beyond what an int64 holds,
// is dacheForever.
func dacheLifetime(expiry json.RawMessage, now time.Time) (time.Duration, error) {
	digits := strings.TrimPrefix(string(expiry), "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, errors.New(`"expiry" must be a Unix time in whole seconds (a JSON number)`)
	}
	past := errors.New(`"expiry" is in the past`)
	sec, err := strconv.ParseInt(string(expiry), 10, 64)
	switch {
	case err != nil && digits != string(expiry): // below MinInt64
		return 0, past
	case err != nil: // above MaxInt64
		return dacheForever, nil
	case sec <= now.Unix():
		return 0, past
	case sec-now.Unix() > int64(dacheForever/time.Second):
		return dacheForever, nil // and time.Unix(sec, 0) could overflow
	}
	return time.Unix(sec, 0).Sub(now), nil
}

// dacheDelete answers DELETE /dache/{key}: 204.
func (s *server) dacheDelete(w http.ResponseWriter, r *http.Request, c *cache) {
	s.deleteKey(w, r, c)
}
