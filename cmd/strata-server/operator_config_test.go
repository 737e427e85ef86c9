package main

// Configuration as an operator meets it: what the process does with an
// argument it does not take, STRATA_HOST without PORT, a LOG_FORMAT typo
// and a token that no request can carry (docs/server.md, "Running" and
// "Environment").

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPositionalArgumentRefused: `strata-server strata.yaml` (the -config
// flag forgotten) exits 2 naming the argument; it used to ignore it and
// serve the defaults (memory only, no token, every interface). -h prints
// the usage and exits 0.
func TestPositionalArgumentRefused(t *testing.T) {
	cfg := writeConfig(t, "token: s3cret\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{cfg}, 2, "unexpected argument"},
		{[]string{"-config", cfg, "extra"}, 2, "unexpected argument"},
		{[]string{"-h"}, 0, "-config"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binary(t), c.args...)
		cmd.Env = []string{"STRATA_LISTEN=127.0.0.1:0", "LOG_REQUESTS=false"}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if timedOut {
			t.Fatalf("%v: still running after 20s (the argument was ignored and the server started)\n%s", c.args, out)
		}
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q", c.args, code, out, c.code, c.want)
		}
	}
}

// TestStrataHostWithoutPort: STRATA_HOST alone binds that host on the
// port of listen (8080 by default); it was ignored without PORT, so that
// STRATA_HOST=127.0.0.1 still listened on every interface.
func TestStrataHostWithoutPort(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  map[string]string
		want string
	}{
		{"", map[string]string{"STRATA_HOST": "127.0.0.1"}, "127.0.0.1:8080"},
		{"listen: \":9000\"\n", map[string]string{"STRATA_HOST": "127.0.0.1"}, "127.0.0.1:9000"},
		{"listen: \"0.0.0.0:9000\"\n", map[string]string{"STRATA_HOST": "::1"}, "[::1]:9000"},
		{"", map[string]string{"STRATA_HOST": "127.0.0.1", "PORT": "7000"}, "127.0.0.1:7000"},
		{"", map[string]string{"STRATA_HOST": "127.0.0.1", "STRATA_LISTEN": "127.0.0.2:7001"}, "127.0.0.2:7001"},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		cfg, err := loadConfig(path, func(k string) string { return c.env[k] })
		if err != nil {
			t.Fatalf("%q %v: %v", c.yaml, c.env, err)
		}
		if cfg.Listen != c.want {
			t.Errorf("%q %v: listen %q, want %q", c.yaml, c.env, cfg.Listen, c.want)
		}
	}
}

// TestLogFormatChecked: LOG_FORMAT is json or text; another value (a
// typo, TEXT) is refused, not silently JSON.
func TestLogFormatChecked(t *testing.T) {
	for _, v := range []string{"", "json", "text"} {
		if _, err := loadConfig("", func(k string) string { return map[string]string{"LOG_FORMAT": v}[k] }); err != nil {
			t.Errorf("LOG_FORMAT=%q: %v", v, err)
		}
	}
	for _, v := range []string{"txt", "TEXT", "logfmt"} {
		_, err := loadConfig("", func(k string) string { return map[string]string{"LOG_FORMAT": v}[k] })
		if err == nil || !errors.Is(err, errConfig) || !strings.Contains(err.Error(), "LOG_FORMAT") {
			t.Errorf("LOG_FORMAT=%q: %v; want a configuration error naming LOG_FORMAT", v, err)
		}
	}
}

// TestTokenWithSpaceRefused: a token with white space or a control
// character at either end (a secret file's trailing newline) can never be
// sent (net/http trims header values), so every request would be 401: it
// is refused at start, and the error does not show it.
func TestTokenWithSpaceRefused(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  map[string]string
	}{
		{"", map[string]string{"STRATA_TOKEN": "s3cret-tok\n"}},
		{"", map[string]string{"STRATA_TOKEN": " s3cret-tok"}},
		{"token: \"s3cret-tok\\t\"\n", nil},
		{"caches:\n  a:\n    token: \"s3cret-tok \"\n", nil},
		{"defaults:\n  token: \"s3cret\\r\\ntok\"\n", nil},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		_, err := loadConfig(path, func(k string) string { return c.env[k] })
		if err == nil || !strings.Contains(err.Error(), "token") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q %q: %v; want an error about the token that does not show it", c.yaml, c.env, err)
		}
	}
	if _, err := loadConfig("", func(k string) string { return map[string]string{"STRATA_TOKEN": "a-b.c_d~e+f/g="}[k] }); err != nil {
		t.Errorf("a bearer token of RFC 6750's characters: %v", err)
	}
}

// TestListenAddressChecked: a listen address without a port ("8080", a
// common slip for ":8080") is a configuration error (exit 2), found
// before anything starts; it was only found by net.Listen (exit 1, as for
// a port in use).
func TestListenAddressChecked(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  map[string]string
	}{
		{"listen: \"8080\"\n", nil},
		{"", map[string]string{"STRATA_LISTEN": "localhost"}},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		_, err := loadConfig(path, func(k string) string { return c.env[k] })
		if err == nil || !errors.Is(err, errConfig) || !strings.Contains(err.Error(), "listen") {
			t.Errorf("%q %v: %v; want a configuration error about listen", c.yaml, c.env, err)
		}
	}
}
