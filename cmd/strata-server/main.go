// Command strata-server serves named strata caches over HTTP, for services
// in any language: a native API (/v1/caches/{cache}/keys/{key}), dache's
// interface as a compatibility mode (/dache/{key}), health and readiness
// checks and Prometheus metrics. See docs/server.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strata-cache/strata"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

// parseLevel reads a log level name; empty means info.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log level (LOG_LEVEL, log_level): debug, info, warn or error expected", errConfig)
	}
	return l, nil
}

// run is the whole server: it returns the exit code, 0 after a graceful
// shutdown (SIGTERM, SIGINT or ctx done, then shutdown_delay), 2 for a
// configuration it refuses, 1 for another failure.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("strata-server", flag.ContinueOnError)
	// The flag package's own messages quote the argument ("bad flag
	// syntax: ---token=s3cret"): ours name none, as configuration errors
	// show no value (an argument may be a secret typed in the wrong place).
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", getenv("STRATA_CONFIG"), "configuration file (YAML); default $STRATA_CONFIG")
	usage := func() {
		fs.SetOutput(stderr)
		fs.Usage()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return 0 // -h: the usage was asked for
		}
		_, _ = fmt.Fprintf(stderr, "%v: an unknown flag, or a flag without its value (the only flag is -config FILE)\n", errConfig)
		usage()
		return 2
	}
	if fs.NArg() > 0 {
		// Most likely a configuration file without -config: serving the
		// defaults (no token, every interface) instead would be a trap.
		// The argument is not repeated, as no configuration value is.
		_, _ = fmt.Fprintf(stderr, "%v: unexpected argument (%d after the flags; the file is -config FILE or STRATA_CONFIG)\n", errConfig, fs.NArg())
		return 2
	}
	cfg, err := loadConfig(*configPath, getenv)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	level, _ := parseLevel(cfg.LogLevel)
	var h slog.Handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.logFormat == "text" {
		h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)
	// go-redis has one logger for the whole process, which prints plain
	// text to stderr: route it into ours before any client exists. run is
	// the process (main calls it once), so this is the one call.
	strata.RouteRedisLogs(log)

	// SIGTERM and SIGINT are caught from here on, the start-up check of
	// the tiers included (up to readyTimeout with a tier that does not
	// answer): a signal then ends the start cleanly instead of killing the
	// process with the caches half open.
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := newServer(cfg, log, reg)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	defer srv.Close()

	// A tier that does not answer at start is not fatal (the caches serve
	// from memory and /readyz says why), but it is worth a loud line.
	pctx, cancel := context.WithTimeout(sctx, readyTimeout)
	for _, c := range srv.caches {
		if c.hasL2 || c.hasBackplane {
			if err := c.c.Ping(pctx); err != nil {
				log.Warn("distributed tier not answering at start", slog.String("cache", c.name), slog.Any("err", err))
			}
		}
	}
	cancel()
	if sctx.Err() != nil {
		log.Info("stopped before serving: a signal came during the start")
		return 0 // the caches close (deferred srv.Close)
	}

	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "strata-server: listen: %v\n", err)
		return 1
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	names := srv.provider.Names()
	log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("engine", cfg.Engine),
		slog.String("caches", strings.Join(names, ",")), slog.Bool("dache", srv.dache != nil),
		slog.Bool("tls", tlsConfig != nil), slog.Bool("mtls", cfg.TLSClientCAFile != ""))

	hs := &http.Server{
		Handler:           srv.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Duration(cfg.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.WriteTimeout),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serve", slog.Any("err", err))
		return 1
	case <-sctx.Done():
	}
	srv.stopping.Store(true) // /readyz answers 503 from now on
	// Answers say "Connection: close" from now on: a client on a kept-alive
	// connection opens a new one for its next request, which a load
	// balancer sends elsewhere once /readyz has taken this instance out.
	hs.SetKeepAlivesEnabled(false)
	// The next SIGTERM or SIGINT ends the shutdown delay, or else the wait
	// for in-flight requests, at once. Each listener starts before the one
	// it follows stops, so that no signal falls to the default action in
	// between.
	force, fstop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer fstop()
	stop()
	cutBy := "second signal"
	if d := time.Duration(cfg.ShutdownDelay); d > 0 {
		log.Info("draining", slog.Duration("delay", d))
		if !shutdownDelay(force, d) {
			// The second signal ended the delay: the third cuts the wait
			// for in-flight requests.
			third, tstop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer tstop()
			fstop()
			force, cutBy = third, "third signal"
			log.Info("shutdown delay ended by a second signal")
		}
	}
	log.Info("shutting down", slog.Duration("timeout", time.Duration(cfg.ShutdownTimeout)))
	dctx, dcancel := context.WithTimeout(force, time.Duration(cfg.ShutdownTimeout))
	defer dcancel()
	code := 0
	if err := hs.Shutdown(dctx); err != nil {
		if force.Err() != nil {
			err = errors.New(cutBy)
		}
		log.Error("shutdown: in-flight requests cut", slog.Any("err", err))
		_ = hs.Close() // close their connections before the caches
		code = 1
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", slog.Any("err", err))
	}
	if err := srv.Close(); err != nil {
		log.Error("closing the caches", slog.Any("err", err))
		code = 1
	}
	log.Info("stopped")
	return code
}

// shutdownDelay waits d, the listener open and every endpoint serving but
// /readyz, so that a load balancer polling /readyz takes the instance out
// of rotation before the shutdown closes the listener. It reports false
// if next (done at the second SIGTERM or SIGINT) ended the wait first.
func shutdownDelay(next context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-next.Done():
		return false
	}
}

// etcdClientTLS returns the TLS configuration of the etcd client: the CA
// and client certificate files of cfg, the system's roots for https://
// endpoints without them, nil for http:// ones.
func etcdClientTLS(cfg *Config) (*tls.Config, error) {
	https := false
	for _, ep := range cfg.EtcdEndpoints {
		https = https || strings.HasPrefix(ep, "https://")
	}
	if !https && cfg.EtcdCAFile == "" && cfg.EtcdCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.EtcdCAFile != "" {
		pem, err := os.ReadFile(cfg.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: etcd CA: %w", errConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: etcd CA %s: no PEM certificate in it", errConfig, cfg.EtcdCAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.EtcdCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.EtcdCertFile, cfg.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: etcd client certificate: %w", errConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// serverTLS returns the TLS configuration of cfg, or nil for plain HTTP.
func serverTLS(cfg *Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS certificate: %w", errConfig, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS client CA: %w", errConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLS client CA %s: no PEM certificate in it", errConfig, cfg.TLSClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
