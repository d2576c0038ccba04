package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/localgw"
	"github.com/workorders/notify/web"
)

// shutdownTimeout bounds the clean close of every socket on Ctrl-C.
const shutdownTimeout = 30 * time.Second

func localFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var (
		opts     devstack.Options
		params   multiFlag
		logLevel slog.Level
		tokenTTL time.Duration
	)
	fs.StringVar(&opts.Addr, "addr", orDefault(env, devstack.EnvAddr, devstack.DefaultAddr),
		"`host:port` to listen on; port 0 picks a free one (env ADDR)")
	fs.StringVar(&opts.TemplatePath, "template", "",
		"SAM `file` to run (default ./"+devstack.DefaultTemplate+", else the nearest one up to the module root)")
	fs.DurationVar(&opts.IdleTimeout, "idle-timeout", localgw.DefaultIdleTimeout,
		"close a socket after this long without a data message, as API Gateway does")
	fs.DurationVar(&opts.MaxDuration, "max-duration", localgw.DefaultMaxDuration,
		"close every socket this old, as API Gateway does")
	fs.DurationVar(&opts.PostDelay, "post-delay", 0,
		"delay added to every Management API answer, to model AWS's network round trip")
	fs.StringVar(&opts.DynamoDBEndpoint, "dynamodb-endpoint", env(devstack.EnvDynamoDBEndpoint),
		"store in DynamoDB at this `URL` (creating missing tables) instead of in memory (env AWS_ENDPOINT_URL_DYNAMODB)")
	fs.Var(&params, "param",
		"template parameter override `Name=Value`, e.g. AllowedOrigins=https://app.example.com (repeatable; wins over the environment)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level` on standard error: debug, info, warn or error")
	fs.DurationVar(&tokenTTL, "token-ttl", devstack.DefaultTokenTTL, "validity of the development token printed on start")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		if opts.IdleTimeout <= 0 || opts.MaxDuration <= 0 {
			return usagef("--idle-timeout and --max-duration must be positive")
		}
		if opts.PostDelay < 0 {
			return usagef("--post-delay %s: must not be negative", opts.PostDelay)
		}
		if tokenTTL <= 0 {
			return usagef("--token-ttl %s: must be positive", tokenTTL)
		}
		opts.Parameters = map[string]string{}
		for _, p := range params.values {
			name, value, ok := strings.Cut(p, "=")
			if !ok || name == "" {
				return usagef("--param %q: want Name=Value", p)
			}
			opts.Parameters[name] = value
		}
		noNetworkCredentials()
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
		// The EMF lines as Lambda writes them, so a developer sees what
		// CloudWatch would graph (docs/PROTOCOL.md §9).
		opts.Metrics = &lineWriter{w: stderr}

		// The demo page (web/) and its development tokens, minted by the
		// stack once it runs, and only while it verifies with the
		// development default secret (docs/PROTOCOL.md §7): with the
		// environment's own JWT_SECRET, or a JWKS URL alone, /dev/token
		// answers 404.
		var running atomic.Pointer[devstack.Stack]
		opts.Static = web.Handler(func(sub string, groups []string) (string, error) {
			s := running.Load()
			if s == nil {
				return "", fmt.Errorf("the local stack is still starting: %w", web.ErrNotReady)
			}
			if !s.DevSecretInUse() {
				return "", fmt.Errorf("JWT_SECRET is not the development default: %w", web.ErrDisabled)
			}
			return s.DevToken(sub, groups, tokenTTL)
		})

		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		stack, err := devstack.Start(ctx, opts)
		if err != nil {
			return err
		}
		running.Store(stack)

		fmt.Fprintln(stdout, stack.URL())
		fmt.Fprintf(stdout, "Invoke endpoint:     %s   (aws lambda invoke --endpoint-url %s --function-name %s ...)\n",
			stack.InvokeEndpoint(), stack.InvokeEndpoint(), app.PublishFunction)
		fmt.Fprintf(stdout, "Management endpoint: %s/@connections/{connectionId}\n", stack.ManagementEndpoint())
		fmt.Fprintf(stdout, "Demo page:           http://%s/   (a notification center on notify.js)\n", stack.Addr())
		fmt.Fprintf(stdout, "Template:            %s\n", stack.TemplatePath())
		fmt.Fprintf(stdout, "Storage:             %s\n", stack.Storage())
		if token, err := stack.DevToken("demo", nil, tokenTTL); err != nil {
			fmt.Fprintf(stdout, "Development token:   none (%v)\n", err)
		} else {
			fmt.Fprintf(stdout, "Development token:   %s   (sub demo, valid %s)\n", token, tokenTTL)
			fmt.Fprintf(stdout, "Try:                 notify listen --url %s --token %s\n", stack.URL(), token)
		}
		fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
		if f, ok := stdout.(interface{ Sync() error }); ok {
			_ = f.Sync()
		}

		<-ctx.Done()
		stop() // a second Ctrl-C kills the process
		fmt.Fprintln(stderr, "shutting down: closing every socket")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := stack.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	}
}

// lineWriter serialises writes, so that lines written by functions running
// at once never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
