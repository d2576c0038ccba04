package notify

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// WithLogger returns a context carrying l, so that every line the service
// writes for this request carries the request's attributes (requestId,
// connectionId, route).
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// LoggerFrom returns the logger of ctx, or slog.Default().
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
