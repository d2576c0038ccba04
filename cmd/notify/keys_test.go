package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// runWith runs the command to completion with extra environment variables.
func runWith(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runNotify(t, bin, env, nil, args...)
}

// `notify local` configures every function when it starts: a JWT_SECRET
// shorter than 32 bytes, or a JWT_JWKS_URL that is plain http off loopback,
// makes it exit non-zero with a message naming the variable (docs/PROTOCOL.md §2).
func TestLocalRefusesWeakKeys(t *testing.T) {
	bin := buildNotify(t)
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"JWT_SECRET=short"}, "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key), got 5"},
		{[]string{"JWT_SECRET=local-dev-secret"}, "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key), got 16"},
		{[]string{"JWT_SECRET=", "JWT_JWKS_URL=http://idp.example.com/.well-known/jwks.json"}, "JWT_JWKS_URL"},
	} {
		out, errOut, code := runWith(t, bin, tc.env, "local", "--addr", "127.0.0.1:0")
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("notify local with %v: exit %d, stderr %q; want non-zero and %q", tc.env, code, errOut, tc.want)
		}
		if strings.Contains(out, "Ctrl-C") {
			t.Errorf("notify local with %v printed that it runs:\n%s", tc.env, out)
		}
	}
}

// GET /dev/token answers while `notify local` uses the development default
// secret, and 404 when the environment gives another JWT_SECRET or a JWKS
// URL without the default secret (docs/PROTOCOL.md §7).
func TestLocalDevTokenOnlyWithTheDevelopmentSecret(t *testing.T) {
	bin := buildNotify(t)
	for _, tc := range []struct {
		name string
		env  []string
		want int
	}{
		{"default", nil, http.StatusOK},
		{"another secret", []string{"JWT_SECRET=a-real-secret-from-the-environment-0123456789"}, http.StatusNotFound},
		{"JWKS URL alone", []string{"JWT_SECRET=", "JWT_JWKS_URL=https://idp.example.com/.well-known/jwks.json"}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := startWith(t, bin, tc.env, "local", "--addr", "127.0.0.1:0")
			wsURL := local.line(t)
			for l := ""; !strings.Contains(l, "Ctrl-C"); {
				l = local.line(t)
			}
			base := "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/")
			resp, err := http.Get(base + "/dev/token?sub=42")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /dev/token: %d %s, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == http.StatusOK {
				var tok struct{ Token string }
				if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
					t.Fatalf("GET /dev/token: %s", body)
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				conn, _, err := websocket.Dial(ctx, wsURL+"?token="+tok.Token, nil)
				if err != nil {
					t.Fatalf("dial with the /dev/token token: %v", err)
				}
				conn.Close(websocket.StatusNormalClosure, "")
			}
			// The demo page is served either way.
			if resp, err := http.Get(base + "/"); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("GET /: %v, %v", resp, err)
			} else {
				resp.Body.Close()
			}
			if code := local.interrupt(t); code != 0 {
				t.Errorf("local exited %d on SIGINT: %s", code, local.stderr)
			}
		})
	}
}
