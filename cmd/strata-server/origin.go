package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// maxOriginBody bounds a value read from an origin.
const maxOriginBody = 16 << 20

// origin is the upstream of a cache in origin mode: a miss of key k calls
// GET {url}/{k} as the cache's factory.
type origin struct {
	url     string
	headers map[string]string
	client  *http.Client
}

func newOrigin(oc OriginConfig) *origin {
	timeout := time.Duration(oc.Timeout)
	if timeout == 0 {
		timeout = defaultOriginTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &origin{
		url:     strings.TrimSuffix(oc.URL, "/"),
		headers: oc.Headers,
		client:  &http.Client{Timeout: timeout, Transport: tr},
	}
}

func (o *origin) close() { o.client.CloseIdleConnections() }

// originError is an origin that failed: unreachable, or a status other
// than 200, 304 and 404.
type originError struct{ msg string }

func (e *originError) Error() string { return e.msg }

// originCall tells the request whether its own factory ran, and how it
// ended, so that a value fail-safe served instead is marked stale.
type originCall struct {
	ran, ok atomic.Bool
}

// originGet reads key through the cache with the origin as the factory.
func originGet[T ~[]byte](ctx context.Context, c *cache, key string) (v []byte, found, stale bool, err error) {
	call := &originCall{}
	f := func(ctx context.Context, fc *hybrid.FactoryContext[T]) (T, error) {
		call.ran.Store(true)
		b, err := c.origin.fetch(ctx, key, fc.ETag(), c.json)
		if err != nil {
			return nil, err
		}
		if b.notModified {
			v, err := fc.NotModified()
			if err == nil {
				call.ok.Store(true)
			}
			return v, err
		}
		if b.etag != "" {
			fc.SetETag(b.etag)
		}
		if b.maxAge > 0 {
			fc.SetDuration(b.maxAge)
		}
		call.ok.Store(true)
		return T(b.body), nil
	}
	got, err := hybrid.GetOrSet(ctx, c.c, key, f)
	if err != nil {
		return nil, false, false, err
	}
	return []byte(got), true, call.ran.Load() && !call.ok.Load(), nil
}

type fetched struct {
	body        []byte
	etag        string
	maxAge      time.Duration
	notModified bool
}

func (o *origin) fetch(ctx context.Context, key, etag string, wantJSON bool) (fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url+"/"+url.PathEscape(key), nil)
	if err != nil {
		return fetched{}, &originError{msg: "origin: building the request: " + err.Error()}
	}
	for k, v := range o.headers {
		req.Header.Set(k, v)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return fetched{}, &originError{msg: "origin unreachable: " + redactURLErr(err)}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if etag != "" {
			return fetched{notModified: true}, nil
		}
		return fetched{}, &originError{msg: "origin answered 304 to a request without If-None-Match"}
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fetched{}, fmt.Errorf("%w", errOriginNotFound)
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fetched{}, &originError{msg: "origin answered " + resp.Status}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOriginBody+1))
	if err != nil {
		return fetched{}, &originError{msg: "origin: reading the body: " + err.Error()}
	}
	if len(body) > maxOriginBody {
		return fetched{}, &originError{msg: fmt.Sprintf("origin: value larger than %d bytes", maxOriginBody)}
	}
	if wantJSON && !json.Valid(body) {
		return fetched{}, &originError{msg: "origin: the value is not valid JSON (this cache holds JSON values)"}
	}
	f := fetched{body: body, etag: resp.Header.Get("Etag")}
	for part := range strings.SplitSeq(resp.Header.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(name, "max-age") {
			if d, ok := maxAge(val); ok && d > 0 {
				f.maxAge = d
			}
		}
	}
	return f, nil
}

// redactURLErr keeps the origin URL's query and credentials (which may
// carry a token) and its path (which holds the key, and ends up in a 502
// body and the logs, where redact_keys must keep keys out) out of an
// error: it names the origin's scheme and host only.
func redactURLErr(err error) string {
	if ue, ok := err.(*url.Error); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u = &url.URL{Scheme: u.Scheme, Host: u.Host}
			return fmt.Sprintf("%s %s: %v", ue.Op, u.String(), ue.Err)
		}
	}
	return err.Error()
}
