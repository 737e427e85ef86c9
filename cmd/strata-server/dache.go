package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// dacheBody is the body of POST /dache/{key}.
type dacheBody struct {
	Value  json.RawMessage `json:"value"`
	Expiry *json.Number    `json:"expiry"`
}

// dacheGet answers GET /dache/{key}: 200 {"value": ...} or 404.
func (s *server) dacheGet(w http.ResponseWriter, r *http.Request, c *cache) {
	v, found, err := c.tryGet(r.Context(), r.PathValue("key"), false)
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	if !found {
		s.miss(w, r, c)
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
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req dacheBody
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `the body must be {"value": <json>, "expiry": <unix seconds>}: `+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_body", "the body has data after the JSON object")
		return
	}
	if req.Value == nil {
		writeError(w, http.StatusBadRequest, "bad_body", `"value" is required`)
		return
	}
	var opts []hybrid.Option
	if req.Expiry != nil {
		sec, err := req.Expiry.Int64()
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_expiry", `"expiry" must be a Unix time in whole seconds`)
			return
		}
		d := time.Until(time.Unix(sec, 0))
		if d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_expiry", `"expiry" is in the past`)
			return
		}
		if d > dacheForever {
			d = dacheForever
		}
		opts = append(opts, hybrid.WithDuration(d))
	}
	key := r.PathValue("key")
	err := s.strictWrite(r.Context(), c, key, func() error { return c.set(r.Context(), key, req.Value, opts...) })
	if err != nil {
		s.cacheError(w, c, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// dacheDelete answers DELETE /dache/{key}: 204.
func (s *server) dacheDelete(w http.ResponseWriter, r *http.Request, c *cache) {
	s.deleteKey(w, r, c)
}
