package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
)

// maxFrame is the most one frame from the API may hold (API Gateway's
// 128 KiB), with room to spare.
const maxFrame = 1 << 20

func listenFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var (
		token        string
		rawURL       string
		origin       string
		pingInterval time.Duration
		noSync       bool
	)
	fs.StringVar(&token, "token", env("NOTIFY_TOKEN"), "the connection `JWT` (see notify token), sent as Authorization: Bearer (env NOTIFY_TOKEN)")
	fs.StringVar(&rawURL, "url", "ws://"+devstack.DefaultAddr+"/", "WebSocket API `URL` (ws:// or wss://)")
	fs.StringVar(&origin, "origin", "", "Origin header to send, as a browser at that `origin` would (checked against ALLOWED_ORIGINS)")
	fs.DurationVar(&pingInterval, "ping-interval", 5*time.Minute,
		"send {\"action\":\"ping\"} this often, so that the idle timeout (10 min on AWS) does not close the socket")
	fs.BoolVar(&noSync, "no-sync", false, "do not send {\"action\":\"sync\"} first (which shows what was missed)")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return usagef("--url %q: want ws://HOST:PORT/ or wss://...", rawURL)
		}
		if token == "" && u.Query().Get("token") == "" {
			return usagef("--token is required (try: notify token --sub 42)")
		}
		if pingInterval <= 0 {
			return usagef("--ping-interval %s: must be positive", pingInterval)
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()

		header := http.Header{}
		if token != "" {
			header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			header.Set("Origin", origin)
		}
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, resp, err := websocket.Dial(dialCtx, rawURL, &websocket.DialOptions{HTTPHeader: header})
		cancel()
		if err != nil {
			if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				msg := strings.TrimSpace(string(body))
				if msg == "" {
					msg = http.StatusText(resp.StatusCode)
				}
				return fmt.Errorf("connection refused: HTTP %d: %s", resp.StatusCode, msg)
			}
			return fmt.Errorf("connecting to %s: %w", rawURL, err)
		}
		defer c.CloseNow()
		c.SetReadLimit(maxFrame)
		fmt.Fprintf(stderr, "connected to %s\n", rawURL)

		// Reads never use ctx: coder/websocket closes the connection with
		// 1008 when a Read's context ends, and Ctrl-C should close it with
		// 1000 instead.
		frames := make(chan error, 1)
		go func() {
			for {
				typ, data, err := c.Read(context.Background())
				if err != nil {
					frames <- err
					return
				}
				if typ == websocket.MessageBinary {
					fmt.Fprintf(stdout, "(binary frame, %d bytes)\n", len(data))
					continue
				}
				fmt.Fprintln(stdout, strings.TrimRight(string(data), "\r\n"))
			}
		}()
		send := func(frame string) error {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return c.Write(wctx, websocket.MessageText, []byte(frame))
		}
		if !noSync {
			if err := send(`{"action":"sync"}`); err != nil {
				return fmt.Errorf("sending sync: %w", err)
			}
		}
		ticker := time.NewTicker(pingInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				stop()
				_ = c.Close(websocket.StatusNormalClosure, "")
				return nil
			case err := <-frames:
				if status := websocket.CloseStatus(err); status != -1 {
					var ce websocket.CloseError
					errors.As(err, &ce)
					return fmt.Errorf("the server closed the connection: %d %s", int(status), ce.Reason)
				}
				return fmt.Errorf("connection lost: %w", err)
			case <-ticker.C:
				if err := send(`{"action":"ping"}`); err != nil {
					return fmt.Errorf("sending ping: %w", err)
				}
			}
		}
	}
}
