package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/web"
)

// The development default secret is long enough for HS256 (docs/PROTOCOL.md §2).
func TestDevSecretStrength(t *testing.T) {
	if devstack.DevSecret != "local-development-secret-do-not-deploy" || len(devstack.DevSecret) < 32 {
		t.Fatalf("DevSecret %q", devstack.DevSecret)
	}
}

// A JWT_SECRET shorter than 32 bytes, or a JWT_JWKS_URL that is plain http
// off loopback, fails the start (the functions' cold start), naming the
// variable; the listener opened for the start is closed again.
func TestStartRefusesWeakKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, tc := range map[string]struct {
		env    map[string]string
		params map[string]string
		want   string
	}{
		"short secret":      {env: map[string]string{"JWT_SECRET": "short"}, want: "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key), got 5"},
		"v1 default":        {env: map[string]string{"JWT_SECRET": "local-dev-secret"}, want: "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key), got 16"},
		"short parameter":   {params: map[string]string{"JwtSecret": "31-bytes-is-one-byte-too-short"}, want: "JWT_SECRET must be at least 32 bytes"},
		"http JWKS":         {env: map[string]string{"JWT_SECRET": "", "JWT_JWKS_URL": "http://idp.example.com/jwks.json"}, want: "JWT_JWKS_URL"},
		"http JWKS and dev": {env: map[string]string{"JWT_JWKS_URL": "http://10.1.2.3/jwks.json"}, want: "JWT_JWKS_URL"},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			env := tc.env
			if env == nil {
				env = map[string]string{} // not the process's
			}
			s, err := devstack.Start(ctx, devstack.Options{Addr: addr, Env: env, Parameters: tc.params, Logger: newLogger()})
			if err == nil {
				s.Shutdown(ctx)
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ConnectFunction") {
				t.Fatalf("error %q, want one naming ConnectFunction and %q", err, tc.want)
			}
			// The port is free again.
			l, err = net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("after the failed start, %s is still taken: %v", addr, err)
			}
			l.Close()
		})
	}
}

// GET /dev/token answers only while ConnectFunction verifies with the
// development default secret (docs/PROTOCOL.md §7), over a real stack serving the
// demo page wired as `notify local` wires it; a JWKS URL is accepted at
// start without being fetched.
func TestDevTokenOnlyWithTheDevelopmentSecret(t *testing.T) {
	for name, tc := range map[string]struct {
		env    map[string]string
		params map[string]string
		dev    bool
	}{
		"default":                      {dev: true},
		"the default, given":           {env: map[string]string{"JWT_SECRET": devstack.DevSecret}, dev: true},
		"another secret":               {env: map[string]string{"JWT_SECRET": "from-the-environment-and-32-bytes-or-more"}},
		"another secret, by parameter": {params: map[string]string{"JwtSecret": "from-a-parameter-and-32-bytes-or-more"}},
		"a JWKS URL alone": {env: map[string]string{"JWT_SECRET": "",
			"JWT_JWKS_URL": "https://idp.example.com/.well-known/jwks.json"}},
		// The development secret still verifies alongside the key set.
		"a JWKS URL and the default": {env: map[string]string{"JWT_JWKS_URL": "https://idp.example.com/.well-known/jwks.json"}, dev: true},
	} {
		t.Run(name, func(t *testing.T) {
			var running atomic.Pointer[devstack.Stack]
			s := startStack(t, backends[0], tc.env, func(o *devstack.Options) {
				o.Parameters = tc.params
				o.Static = devTokenHandler(&running)
			})
			running.Store(s.Stack)
			if got := s.DevSecretInUse(); got != tc.dev {
				t.Fatalf("DevSecretInUse = %v, want %v", got, tc.dev)
			}

			resp, err := http.Get("http://" + s.Addr() + "/dev/token?sub=u1&groups=team:a")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !tc.dev {
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("GET /dev/token: %d %s, want 404", resp.StatusCode, body)
				}
				// The demo page itself is still served.
				if resp, err := http.Get("http://" + s.Addr() + "/"); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /: %v %v", resp, err)
				} else {
					resp.Body.Close()
				}
				return
			}
			var tok struct{ Token string }
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
				t.Fatalf("GET /dev/token: %d %s, want 200 and a token", resp.StatusCode, body)
			}
			// The token opens a connection.
			c, status, msg := s.dial(t, tok.Token, nil)
			if c == nil {
				t.Fatalf("the /dev/token token was refused: %d %s", status, msg)
			}
		})
	}
}

// devTokenHandler is web.Handler wired as cmd/notify/local.go wires it, for
// the stack running stores once started.
func devTokenHandler(running *atomic.Pointer[devstack.Stack]) http.Handler {
	return web.Handler(func(sub string, groups []string) (string, error) {
		s := running.Load()
		if s == nil {
			return "", fmt.Errorf("the local stack is still starting: %w", web.ErrNotReady)
		}
		if !s.DevSecretInUse() {
			return "", fmt.Errorf("JWT_SECRET is not the development default: %w", web.ErrDisabled)
		}
		return s.DevToken(sub, groups, time.Hour)
	})
}
