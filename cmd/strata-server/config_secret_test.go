package main

// Configuration errors show no value: a token or a password written into
// the wrong field (a boolean, a number, a duration), given a type its
// field does not take, or passed in a variable or an argument the server
// refuses, must not be copied to stderr (and from there to a log
// collector). The errors name the field, the line and what was expected
// instead (docs/server.md, "Running"). Needs process_test.go (writeConfig)
// and main_test.go (binary).

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// secret is the value that must not appear: short enough that yaml.v3
// quoted it whole (it quotes up to 10 bytes, or the first 7 and "...").
const secret = "Zq9secret"

// leaks reports whether s shows secret or a part of it (url.Parse quoted
// the part of a password before a '/').
func leaks(s string) bool { return strings.Contains(s, "Zq9") }

func TestConfigErrorsShowNoValue(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  map[string]string
		want []string // in the error, each
	}{
		// The file: type errors name the line, the field and the type.
		{"redact_keys: " + secret + "\n", nil, []string{"line 1", "redact_keys", "true or false expected", "not a string"}},
		{"listen: \":8080\"\nmax_body_bytes: " + secret + "\n", nil, []string{"line 2", "max_body_bytes", "an integer expected"}},
		{"log_requests: " + secret + "\n", nil, []string{"log_requests"}},
		{"caches:\n  a:\n    duration: " + secret + "\n", nil, []string{"line 3", "caches.a.duration", "a duration"}},
		{"shutdown_timeout: [" + secret + "]\n", nil, []string{"shutdown_timeout", "not a list"}},
		{"shutdown_delay: " + secret + "\n", nil, []string{"line 1", "shutdown_delay", "a duration"}},
		{"caches:\n  a: {fail_safe: " + secret + ", duration: -" + secret + "}\n", nil,
			[]string{"caches.a.fail_safe", "caches.a.duration"}},
		{"caches:\n  a: {duration: -5s}\n", nil, []string{"caches.a.duration", "negative duration"}},
		{"defaults:\n  eager_refresh_threshold: " + secret + "\n", nil, []string{"defaults.eager_refresh_threshold", "a number expected"}},
		{"postgres:\n  port: " + secret + "\n", nil, []string{"postgres.port", "an integer expected"}},
		{"etcd_endpoints: [http://e:2379, {x: " + secret + "}]\n", nil, []string{"etcd_endpoints[1]", "a string expected, not a mapping"}},
		{"token: [" + secret + "]\n", nil, []string{"line 1", "token", "a string expected, not a list"}},
		{"caches:\n  a:\n    origin: " + secret + "\n", nil, []string{"caches.a.origin", "a mapping expected"}},
		{"token: !!int " + secret + "\n", nil, nil},
		{secret + "\n", nil, []string{"line 1", "a mapping expected"}},
		{"caches:\n  a:\n    value_type: " + secret + "\n", nil, []string{"value_type", "bytes or json"}},
		{"listen: " + secret + "\n", nil, []string{"listen", "missing port"}},
		{"listen: " + secret + "\n", map[string]string{"STRATA_HOST": "127.0.0.1"}, []string{"STRATA_HOST", "missing port"}},
		{"engine: redis\ncaches:\n  a:\n    redis_url: redis://u:Zq9/secret@127.0.0.1:1\n", map[string]string{"REDIS_URL": "redis://127.0.0.1:1"},
			[]string{`cache "a": redis_url`, "not a URL"}},
		// The environment.
		{"", map[string]string{"PORT": secret}, []string{"PORT"}},
		{"", map[string]string{"LOG_FORMAT": secret}, []string{"LOG_FORMAT"}},
		{"", map[string]string{"LOG_LEVEL": secret}, []string{"LOG_LEVEL"}},
		{"", map[string]string{"LOGGING_REDACT_KEYS": secret}, []string{"LOGGING_REDACT_KEYS"}},
		{"", map[string]string{"LOG_REQUESTS": secret}, []string{"LOG_REQUESTS"}},
		{"", map[string]string{"STRATA_SHUTDOWN_DELAY": secret}, []string{"STRATA_SHUTDOWN_DELAY", "a duration"}},
		{"", map[string]string{"STRATA_SHUTDOWN_DELAY": "-" + secret}, []string{"STRATA_SHUTDOWN_DELAY"}},
		{"", map[string]string{"DURABILITY_ENGINE": secret}, []string{"DURABILITY_ENGINE"}},
		{"", map[string]string{"STRATA_LISTEN": secret}, []string{"STRATA_LISTEN"}},
		{"", map[string]string{"DURABILITY_ENGINE": "postgres", "POSTGRES_HOST": "db", "POSTGRES_PORT": secret}, []string{"POSTGRES_PORT"}},
		{"", map[string]string{"DURABILITY_ENGINE": "etcd", "ETCD_ENDPOINTS": "http://e:2379," + secret}, []string{"ETCD_ENDPOINTS", "endpoint 2 of 2"}},
		{"", map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": "redis://u:Zq9/secret@127.0.0.1:1"}, []string{"REDIS_URL", "not a URL"}},
		{"", map[string]string{"DURABILITY_ENGINE": "redis", "REDIS_URL": "redis://u:Zq9secret%zz@127.0.0.1:1"}, []string{"REDIS_URL", "not a URL"}},
	} {
		path := ""
		if c.yaml != "" {
			path = writeConfig(t, c.yaml)
		}
		_, err := loadConfig(path, func(k string) string { return c.env[k] })
		if err == nil {
			t.Errorf("%q %v: no error", c.yaml, c.env)
			continue
		}
		if !errors.Is(err, errConfig) {
			t.Errorf("%q %v: %v; want a configuration error", c.yaml, c.env, err)
		}
		msg := err.Error()
		if leaks(msg) {
			t.Errorf("%q %v: the error shows the value: %s", c.yaml, c.env, msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%q %v: the error is not one line: %q", c.yaml, c.env, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q %v: %s; want it to say %q", c.yaml, c.env, msg, w)
			}
		}
	}
}

// TestRefusedConfigStderrShowsNoToken: the process refuses a file with the
// token in a boolean field, an argument that is the token and a malformed
// flag that carries it, with exit 2 and without the token on stderr.
func TestRefusedConfigStderrShowsNoToken(t *testing.T) {
	cfg := writeConfig(t, "listen: 127.0.0.1:0\nredact_keys: "+secret+"\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", cfg}, "redact_keys"},
		{[]string{"-config", cfg, secret}, "unexpected argument"},
		{[]string{"---token=" + secret}, "-config"},
		{[]string{"-token=" + secret}, "-config"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binary(t), c.args...)
		cmd.Env = []string{"STRATA_LISTEN=127.0.0.1:0", "LOG_REQUESTS=false"}
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2; output %q", c.args, err, out)
		}
		if leaks(string(out)) || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: output %q; want %q and not the token", c.args, out, c.want)
		}
	}
}
