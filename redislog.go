package strata

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteRedisLogs sends go-redis's own log lines (for example "redis:
// connection pool: failed to dial after 1 attempts: ...", which go-redis
// otherwise prints to stderr with the standard log package) to l, at Warn
// level, as the record "redis client" with the line in the attribute
// "detail". A nil l means slog.Default().
//
// go-redis has one logger for the whole process, so this is an explicit
// call, never a side effect of NewProvider: call it once at start-up, from
// main. Passwords of redis:// URLs in the lines are replaced by "xxxxx".
func RouteRedisLogs(l *slog.Logger) {
	if l == nil {
		l = slog.Default()
	}
	redis.SetLogger(redisLogger{l})
}

// redisLogger adapts a *slog.Logger to go-redis's logging interface.
type redisLogger struct{ l *slog.Logger }

// Printf logs one go-redis line.
func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if pw := urlPassword(line); pw != "" {
		line = redactURLError(line, fmt.Errorf("%s", line)).Error()
	}
	r.l.WarnContext(ctx, "redis client", slog.String("detail", line))
}
