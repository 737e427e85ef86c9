package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-cache/strata"
	"github.com/strata-cache/strata/etcd"
	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/postgres"
)

// server is the HTTP face of a strata.Provider.
type server struct {
	cfg      *Config
	log      *slog.Logger
	provider *strata.Provider
	caches   map[string]*cache
	dache    *cache // nil when the dache mode is off
	metrics  *metrics
	handler  http.Handler

	// ready is caches once complete, for the event hooks.
	ready    atomic.Pointer[map[string]*cache]
	stopping atomic.Bool // SIGTERM received: /readyz answers 503

	// anyToken reports that a bearer token is configured, the server's or
	// a cache's (the dache cache is one of caches): cache names are then
	// told only to a caller whose token opens them (see serverAuthorized).
	// Set once by newServer.
	anyToken bool
}

// cache is one served cache and the server's settings for it.
type cache struct {
	name         string
	c            *hybrid.Cache
	json         bool // values are json.RawMessage, else []byte
	contentType  string
	strict       bool
	token        string
	tier         string // the distributed tier: redis, etcd, postgres, or "" (memory only)
	hasL2        bool   // a distributed tier
	hasBackplane bool
	origin       *origin
	watch        writeWatch
}

// newServer creates the provider and the caches of cfg. It does not
// contact Redis.
func newServer(cfg *Config, log *slog.Logger, reg *prometheus.Registry) (*server, error) {
	s := &server{cfg: cfg, log: log, caches: map[string]*cache{}, anyToken: cfg.Token != ""}
	s.metrics = newMetrics(reg, s)
	settings := strata.Settings{
		Logger:     log,
		RedactKeys: cfg.RedactKeys,
		Events:     s.metrics.events(),
	}
	switch cfg.Engine {
	case engineRedis:
		settings.Redis = &strata.RedisSettings{URL: cfg.RedisURL}
	case engineEtcd:
		tc, err := etcdClientTLS(cfg)
		if err != nil {
			return nil, err
		}
		settings.Tier = etcd.Settings(etcd.Config{Endpoints: cfg.EtcdEndpoints,
			Username: cfg.EtcdUsername, Password: cfg.EtcdPassword, TLS: tc})
	case enginePostgres:
		settings.Tier = postgres.Settings(postgres.Config{ConnString: cfg.Postgres.connString(),
			Password: cfg.Postgres.Password, Table: cfg.Postgres.Table})
	}
	p, err := strata.NewProvider(settings)
	if err != nil {
		return nil, fmt.Errorf("strata-server: %w", err)
	}
	s.provider = p
	for name, cc := range cfg.cacheNames() {
		hc, err := p.Register(name, func(cs *strata.CacheSettings) { cc.apply(cs) })
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("strata-server: %w", err)
		}
		sc := &cache{
			name:        name,
			c:           hc,
			json:        cc.valueType() == valueJSON,
			contentType: cc.contentType(),
			strict:      cc.strict(),
		}
		switch {
		case cc.RedisURL != nil && *cc.RedisURL != "": // a Redis of its own, whatever the engine
			sc.tier = engineRedis
		case cfg.Engine != engineMemory:
			sc.tier = cfg.Engine
		}
		sc.hasL2 = sc.tier != "" && (cc.DisableL2 == nil || !*cc.DisableL2)
		sc.hasBackplane = sc.tier != "" && (cc.DisableBackplane == nil || !*cc.DisableBackplane)
		if cc.Token != nil {
			sc.token = *cc.Token
		}
		if cc.Origin != nil {
			sc.origin = newOrigin(*cc.Origin)
		}
		s.caches[name] = sc
		s.anyToken = s.anyToken || sc.token != ""
		if cfg.dacheEnabled() && name == cfg.Dache.Cache {
			s.dache = sc
		}
	}
	s.metrics.registerCaches()
	s.handler = s.routes()
	return s, nil
}

// Close closes the caches, the Redis clients and the origins' idle
// connections.
func (s *server) Close() error {
	err := s.provider.Close()
	for _, c := range s.caches {
		if c.origin != nil {
			c.origin.close()
		}
	}
	return err
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /v1/caches", s.listCaches)
	mux.HandleFunc("GET /v1/caches/{cache}/keys/{key...}", s.withCache(s.getKey))
	mux.HandleFunc("PUT /v1/caches/{cache}/keys/{key...}", s.withCache(s.putKey))
	mux.HandleFunc("DELETE /v1/caches/{cache}/keys/{key...}", s.withCache(s.deleteKey))
	mux.HandleFunc("POST /v1/caches/{cache}/expire/{key...}", s.withCache(s.expireKey))
	mux.HandleFunc("POST /v1/caches/{cache}/remove-by-tag", s.withCache(s.removeByTag))
	mux.HandleFunc("POST /v1/caches/{cache}/clear", s.withCache(s.clear))
	mux.HandleFunc("POST /v1/caches/{cache}/batch-get", s.withCache(s.batchGet))
	if s.dache != nil {
		mux.HandleFunc("GET /health", s.healthz)
		mux.HandleFunc("GET /dache/{key...}", s.withDache(s.dacheGet))
		mux.HandleFunc("POST /dache/{key...}", s.withDache(s.dachePost))
		mux.HandleFunc("DELETE /dache/{key...}", s.withDache(s.dacheDelete))
	}
	// A key route without its key (no slash after keys, expire, dache):
	// the empty key, a JSON 400, where ServeMux would redirect (307, an
	// HTML body) to the path with the slash.
	noKey := func(w http.ResponseWriter, _ *http.Request, _ *cache) {
		writeError(w, http.StatusBadRequest, "bad_key", "invalid key: empty (the key is the rest of the path, after a slash)")
	}
	mux.HandleFunc("/v1/caches/{cache}/keys", s.withCache(noKey))
	mux.HandleFunc("/v1/caches/{cache}/expire", s.withCache(noKey))
	if s.dache != nil {
		mux.HandleFunc("/dache", s.withDache(noKey))
	}
	// Other methods on the paths above: a JSON 405 rather than net/http's
	// plain-text one.
	allow := map[string]string{
		"/healthz": "GET, HEAD", "/readyz": "GET, HEAD", "/metrics": "GET, HEAD", "/v1/caches": "GET, HEAD",
		"/v1/caches/{cache}/keys/{key...}":   "GET, HEAD, PUT, DELETE",
		"/v1/caches/{cache}/expire/{key...}": "POST",
		"/v1/caches/{cache}/remove-by-tag":   "POST",
		"/v1/caches/{cache}/clear":           "POST",
		"/v1/caches/{cache}/batch-get":       "POST",
	}
	if s.dache != nil {
		allow["/health"] = "GET, HEAD"
		allow["/dache/{key...}"] = "GET, HEAD, POST, DELETE"
	}
	for path, methods := range allow {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+methods)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s.observe(exactKeys(mux))
}

// exactKeys keeps the key of a key route (/v1/caches/{cache}/keys/,
// /v1/caches/{cache}/expire/, /dache/) exactly as sent: the rest of the
// path, empty and dot segments included. ServeMux cleans a path before it
// matches it and redirects to the cleaned one, so that PUT
// .../keys/https://x.io/p was redirected to, and stored as, the key
// https:/x.io/p (which batch-get and Go clients do not find), and DELETE
// .../keys/a/../b deleted b. It escapes the key's slashes (and a key that
// is "." or "..") in r.URL.RawPath, which ServeMux matches on; r.URL.Path
// and the key the handlers read (PathValue) are unchanged. It changes r in
// place, so that observe sees the route the mux matched (r.Pattern).
func exactKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := exactKeyPath(r.URL.EscapedPath()); ok {
			r.URL.RawPath = p
		}
		next.ServeHTTP(w, r)
	})
}

// exactKeyPath returns the escaped path p with the slashes of its key
// escaped, and whether p is a key route whose key needed it.
func exactKeyPath(p string) (string, bool) {
	var key string
	switch {
	case strings.HasPrefix(p, "/dache/"):
		key = p[len("/dache/"):]
	case strings.HasPrefix(p, "/v1/caches/"):
		name, rest, ok := strings.Cut(p[len("/v1/caches/"):], "/")
		if !ok || name == "" || name == "." || name == ".." {
			return "", false // not a clean cache name: the mux's to judge
		}
		route, k, ok := strings.Cut(rest, "/")
		if !ok || (route != "keys" && route != "expire") {
			return "", false
		}
		key = k
	default:
		return "", false
	}
	if key != "." && key != ".." && !strings.Contains(key, "/") {
		return "", false
	}
	prefix := p[:len(p)-len(key)]
	key = strings.ReplaceAll(key, "/", "%2F")
	if key == "." || key == ".." {
		key = strings.ReplaceAll(key, ".", "%2E")
	}
	return prefix + key, true
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// observe counts, times and logs every request.
func (s *server) observe(next http.Handler) http.Handler {
	logReq := *s.cfg.LogRequests
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.metrics.request(route, methodLabel(r.Method), sw.status, d)
		if logReq {
			path := r.URL.Path
			if s.cfg.RedactKeys {
				path = route // the pattern, without the key
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", path),
				slog.Int("status", sw.status), slog.Int("bytes", sw.bytes),
				slog.Duration("duration", d), slog.String("remote", r.RemoteAddr))
		}
	})
}

// methodLabel is the method label of the HTTP metrics: the method for the
// standard ones, "_OTHER" for any other (OpenTelemetry's
// http.request.method convention), so that a client cannot create series
// at will.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with status and a JSON error.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// writeJSON answers v as JSON with status; a v that does not encode is a
// 500, never the status with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "the response could not be encoded as JSON")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// errTierUnavailable is the error of a strict write the distributed tier
// did not take.
var errTierUnavailable = errors.New("the distributed tier did not take the write")

// errOriginNotFound is the origin's 404: not cached, answered 404.
var errOriginNotFound = errors.New("origin: not found")

// cacheError maps an error of the library (or of the server) to a response.
func (s *server) cacheError(w http.ResponseWriter, c *cache, err error) {
	var tooBig *http.MaxBytesError
	var oe *originError
	switch {
	case errors.Is(err, hybrid.ErrInvalidKey):
		writeError(w, http.StatusBadRequest, "bad_key", trimPrefix(err))
	case errors.Is(err, hybrid.ErrInvalidOptions):
		writeError(w, http.StatusBadRequest, "bad_request", trimPrefix(err))
	case errors.Is(err, hybrid.ErrValueTooLarge), errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the value is too large")
	case errors.Is(err, hybrid.ErrTypeMismatch):
		writeError(w, http.StatusConflict, "type_mismatch", fmt.Sprintf("the key holds a value that is not %s (written by a Go client with another type)", c.goType()))
	case errors.Is(err, errTierUnavailable):
		writeError(w, http.StatusServiceUnavailable, "tier_unavailable", s.errText(err))
	case errors.Is(err, hybrid.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, errOriginNotFound):
		writeError(w, http.StatusNotFound, "not_found", "the origin has no such key")
	case errors.Is(err, hybrid.ErrFactoryTimeout):
		writeError(w, http.StatusGatewayTimeout, "origin_timeout", "the origin did not answer in time")
	case errors.As(err, &oe):
		writeError(w, http.StatusBadGateway, "origin_error", oe.Error())
	case errors.Is(err, errStoredNotJSON):
		s.log.Error("request failed", slog.String("cache", c.name), s.errAttr(err))
		writeError(w, http.StatusInternalServerError, "stored_value_invalid", trimPrefix(err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "canceled", "the request was canceled")
	default:
		s.log.Error("request failed", slog.String("cache", c.name), s.errAttr(err))
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// errAttr is the log attribute of an error of a request, redacted as
// errText.
func (s *server) errAttr(err error) slog.Attr {
	if !s.cfg.RedactKeys {
		return slog.Any("err", err)
	}
	return slog.String("err", s.errText(err))
}

// errText is the text of an error for a log or a response. With
// redact_keys every quoted string of it, where the library, its tiers and
// the server name keys (redisstore: set "dache:user:7": ...), is
// redacted.
func (s *server) errText(err error) string {
	if !s.cfg.RedactKeys {
		return err.Error()
	}
	return quoted.ReplaceAllString(err.Error(), `"[redacted]"`)
}

// quoted matches a Go-quoted string (strconv.Quote, %q).
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// trimPrefix drops the library's package prefix from an error message.
func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "hybrid: ")
}

func (c *cache) goType() string {
	if c.json {
		return "json.RawMessage"
	}
	return "[]byte"
}

// authorized reports whether r carries the server's token or c's, in its
// one Authorization header: a request with two is authorized by neither
// (see oneAuthorization).
func (s *server) authorized(r *http.Request, c *cache) bool {
	if s.cfg.Token == "" && c.token == "" {
		return true
	}
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		return false
	}
	// The scheme is case-insensitive (RFC 9110 11.1), then 1*SP.
	scheme, tok, ok := strings.Cut(auth[0], " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1 {
		return true
	}
	return c.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) == 1
}

// serverAuthorized reports whether r may learn which caches exist: no
// token is configured anywhere, or r carries the server's.
func (s *server) serverAuthorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return !s.anyToken
	}
	return s.authorized(r, &cache{})
}

// oneAuthorization refuses a request with more than one Authorization
// header (400 bad_request); it answers the error itself. The header is
// not a list (RFC 9110 5.3, 11.6.2): two are credentials that contradict
// each other, and the first one used to decide alone, so a proxy or a
// client library that added its own header to the caller's got either
// one accepted. It is checked whether or not a token is configured, so
// that the answer does not tell.
func oneAuthorization(w http.ResponseWriter, r *http.Request) bool {
	if len(r.Header.Values("Authorization")) > 1 {
		writeError(w, http.StatusBadRequest, "bad_request", "more than one Authorization header: send one")
		return false
	}
	return true
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
}

// withCache resolves {cache}, checks the token and bounds the body.
func (s *server) withCache(h func(http.ResponseWriter, *http.Request, *cache)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !oneAuthorization(w, r) {
			return
		}
		name := r.PathValue("cache")
		c, ok := s.caches[name]
		if !ok {
			if !s.serverAuthorized(r) {
				unauthorized(w) // do not tell an anonymous caller which caches exist
				return
			}
			writeError(w, http.StatusNotFound, "unknown_cache", fmt.Sprintf("no cache named %q", name))
			return
		}
		if !s.authorized(r, c) {
			unauthorized(w)
			return
		}
		if !s.wellFormedQuery(w, r) || !s.limitBody(w, r) {
			return
		}
		h(w, r, c)
	}
}

func (s *server) withDache(h func(http.ResponseWriter, *http.Request, *cache)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !oneAuthorization(w, r) {
			return
		}
		if !s.authorized(r, s.dache) {
			unauthorized(w)
			return
		}
		if !s.wellFormedQuery(w, r) || !s.limitBody(w, r) {
			return
		}
		h(w, r, s.dache)
	}
}

// wellFormedQuery refuses, on every cache route, a query string that does
// not parse (400 bad_request): a route that reads no parameter must not
// carry out a request whose query the client got wrong, any more than one
// that reads them does.
func (s *server) wellFormedQuery(w http.ResponseWriter, r *http.Request) bool {
	_, ok := s.query(w, r)
	return ok
}

// limitBody refuses a declared body above the limit and bounds the rest.
func (s *server) limitBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	return true
}

// listCaches lists the caches the caller's token opens: every one with the
// server's token or when no token is configured; with a cache's token,
// the caches it opens; with none of those, 401.
func (s *server) listCaches(w http.ResponseWriter, r *http.Request) {
	if !oneAuthorization(w, r) {
		return
	}
	names := s.provider.Names()
	if !s.serverAuthorized(r) {
		open := names[:0:0]
		for _, n := range names {
			if c, ok := s.caches[n]; ok && s.authorized(r, c) {
				open = append(open, n)
			}
		}
		if len(open) == 0 {
			unauthorized(w)
			return
		}
		names = open
	}
	writeJSON(w, http.StatusOK, map[string][]string{"caches": names})
}

// writeWatch tells a strict write whether the distributed tier failed
// while it ran: the cache's L2Error event for the key, fired on the
// writing goroutine, is counted against the keys being written.
type writeWatch struct {
	mu sync.Mutex
	m  map[string]*watched
}

type watched struct {
	writers int
	fails   uint64
	err     error
}

func (ww *writeWatch) begin(key string) (*watched, uint64) {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	if ww.m == nil {
		ww.m = map[string]*watched{}
	}
	x := ww.m[key]
	if x == nil {
		x = &watched{}
		ww.m[key] = x
	}
	x.writers++
	return x, x.fails
}

// end reports the error of a failure since begin, or nil.
func (ww *writeWatch) end(key string, x *watched, start uint64) error {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	x.writers--
	if x.writers == 0 {
		delete(ww.m, key)
	}
	if x.fails != start {
		return x.err
	}
	return nil
}

// failed is called by the L2Error event.
func (ww *writeWatch) failed(key string, err error) {
	ww.mu.Lock()
	if x := ww.m[key]; x != nil {
		x.fails++
		x.err = err
	}
	ww.mu.Unlock()
}

// probeKey is read from the distributed tier to let the circuit breaker
// find out that the tier is back.
const probeKey = "__strata_server_probe"

// l2Open reports whether the cache skips its distributed tier; while it
// does, it first lets one probe read through (at most one a second goes
// through), so that a tier that is back is used again at once.
func (c *cache) l2Open(ctx context.Context) bool {
	if !c.hasL2 || !c.c.Stats().L2CircuitOpen {
		return false
	}
	_, _, _ = hybrid.TryGet[[]byte](ctx, c.c, probeKey, hybrid.WithOptions(func(o *hybrid.EntryOptions) {
		o.SkipL1Read, o.SkipL1Write = true, true
	}))
	return c.c.Stats().L2CircuitOpen
}

// strictWrite runs write, and in strict mode reports errTierUnavailable
// when the distributed tier did not take it.
func (s *server) strictWrite(ctx context.Context, c *cache, key string, write func() error) error {
	if !c.strict || !c.hasL2 {
		return write()
	}
	if c.l2Open(ctx) {
		return fmt.Errorf("%w: circuit breaker open (see /readyz); nothing was written", errTierUnavailable)
	}
	x, start := c.watch.begin(key)
	err := write()
	l2err := c.watch.end(key, x, start)
	if err != nil {
		return err
	}
	if l2err != nil {
		return fmt.Errorf("%w: %v; this node's memory has the change and the library retries it when the tier is back", errTierUnavailable, l2err)
	}
	if c.c.Stats().L2CircuitOpen {
		return fmt.Errorf("%w: circuit breaker opened during the write; this node's memory has the change and the library retries it when the tier is back", errTierUnavailable)
	}
	return nil
}
