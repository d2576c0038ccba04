package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

const wait = 30 * time.Second

var (
	binDir   string
	buildBin sync.Once
	binErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "notify-cli-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildNotify builds the command (once per test binary) with go build.
func buildNotify(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "notify")
	buildBin.Do(func() {
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bin
}

// cleanEnv is the process environment without anything that would change
// what the commands do, plus no metadata lookups.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "JWT_"), strings.HasPrefix(k, "AWS_"), k == "ALLOWED_ORIGINS", k == "ADDR",
			k == "NOTIFY_TOKEN", strings.HasSuffix(k, "_TABLE"), k == "RETENTION_DAYS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "AWS_EC2_METADATA_DISABLED=true")
}

// notify runs the command to completion.
func notify(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runNotify(t, bin, nil, nil, args...)
}

// runNotify runs the command to completion with extra environment variables
// and stdin.
func runNotify(t *testing.T, bin string, env []string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("notify %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestHelpAndToken(t *testing.T) {
	bin := buildNotify(t)
	out, _, code := notify(t, bin, "help")
	if code != 0 {
		t.Fatalf("notify help: exit %d", code)
	}
	for _, c := range []string{"local", "token", "publish", "listen", "disconnect"} {
		if !regexp.MustCompile(`(?m)^  ` + c + ` +\S`).MatchString(out) {
			t.Errorf("notify help does not list %s:\n%s", c, out)
		}
	}
	for cmd, flags := range map[string][]string{
		"local":      {"addr", "template", "idle-timeout", "max-duration", "post-delay", "dynamodb-endpoint"},
		"token":      {"sub", "groups", "ttl"},
		"publish":    {"user", "group", "broadcast", "type", "title", "body", "data", "idempotency-key", "function-name", "endpoint-url"},
		"listen":     {"token", "url", "origin"},
		"disconnect": {"user", "group", "broadcast", "reason", "function-name", "endpoint-url"},
	} {
		out, _, code := notify(t, bin, "help", cmd)
		if code != 0 {
			t.Fatalf("notify help %s: exit %d", cmd, code)
		}
		for _, f := range flags {
			if !regexp.MustCompile(`(?m)^  --` + f + `\b.*\n    \t\S`).MatchString(out) {
				t.Errorf("notify help %s: no --%s with a help line:\n%s", cmd, f, out)
			}
		}
	}
	if _, errOut, code := notify(t, bin, "nope"); code != 2 || !strings.Contains(errOut, `"nope"`) {
		t.Errorf("unknown command: exit %d, %s", code, errOut)
	}

	token, _, code := notify(t, bin, "token", "--sub", "42", "--groups", "a,b", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("notify token: exit %d", code)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimSpace(token), claims, func(*jwt.Token) (any, error) {
		return []byte("local-development-secret-do-not-deploy"), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	if claims["sub"] != "42" || len(claims["groups"].([]any)) != 2 {
		t.Errorf("claims %v", claims)
	}
	if _, errOut, code := notify(t, bin, "token"); code != 2 || !strings.Contains(errOut, "--sub") {
		t.Errorf("token without --sub: exit %d, %s", code, errOut)
	}
	if _, errOut, code := notify(t, bin, "token", "--sub", "bad id"); code != 1 || !strings.Contains(errOut, "bad id") {
		t.Errorf("token with a bad sub: exit %d, %s", code, errOut)
	}
	if _, errOut, code := notify(t, bin, "token", "--sub", "42", "--ttl", "soon"); code != 2 || !strings.Contains(errOut, "-ttl") {
		t.Errorf("token with a bad --ttl: exit %d, %s", code, errOut)
	}
}

// background is a command running until it is signalled.
type background struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	done   chan error
}

func start(t *testing.T, bin string, args ...string) *background {
	t.Helper()
	return startWith(t, bin, nil, args...)
}

// startWith is start with extra environment variables.
func startWith(t *testing.T, bin string, env []string, args ...string) *background {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &background{cmd: cmd, lines: make(chan string, 100), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
		b.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return b
}

func (b *background) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-b.lines:
		if !ok {
			t.Fatalf("%s exited: %s", b.cmd.Args, b.stderr)
		}
		return l
	case <-time.After(wait):
		t.Fatalf("%s printed nothing", b.cmd.Args)
	}
	return ""
}

// interrupt sends SIGINT and returns the exit code.
func (b *background) interrupt(t *testing.T) int {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range b.lines { // drain
	}
	select {
	case err := <-b.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(wait):
		t.Fatalf("%s did not exit on SIGINT", b.cmd.Args)
	}
	return -1
}

// lockedBuffer collects a command's standard error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestLocalPublishListen(t *testing.T) {
	bin := buildNotify(t)
	local := start(t, bin, "local", "--addr", "127.0.0.1:0")
	wsURL := local.line(t)
	if !regexp.MustCompile(`^ws://127\.0\.0\.1:\d+/$`).MatchString(wsURL) {
		t.Fatalf("first line %q, want ws://HOST:PORT/", wsURL)
	}
	endpoint := "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/")
	var banner []string
	for l := ""; !strings.Contains(l, "Ctrl-C"); {
		l = local.line(t)
		banner = append(banner, l)
	}
	for i, want := range []string{"Invoke endpoint:     " + endpoint, "Management endpoint: " + endpoint + "/@connections/", "Storage:             memory"} {
		if !slices.ContainsFunc(banner, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("no line %d %q in\n%s", i, want, strings.Join(banner, "\n"))
		}
	}
	if !slices.ContainsFunc(banner, func(l string) bool { return strings.HasPrefix(l, "Development token:   ey") }) {
		t.Errorf("no development token in\n%s", strings.Join(banner, "\n"))
	}

	token, _, _ := notify(t, bin, "token", "--sub", "42")
	token = strings.TrimSpace(token)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL+"?token="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()

	listen := start(t, bin, "listen", "--url", wsURL, "--token", token)
	if synced := listen.line(t); !strings.Contains(synced, `"type":"synced"`) {
		t.Fatalf("listen's first frame %q, want the synced answer", synced)
	}

	out, errOut, code := notify(t, bin, "publish", "--endpoint-url", endpoint, "--user", "42", "--user", "43",
		"--type", "workorder.assigned", "--title", "WO-1042 assigned to you", "--data", `{"workOrderId":"WO-1042"}`)
	if code != 0 {
		t.Fatalf("notify publish: exit %d: %s", code, errOut)
	}
	var res struct {
		ID           string
		Connections  int
		Delivered    int
		OfflineUsers []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("publish printed %q: %v", out, err)
	}
	if res.Connections != 2 || res.Delivered != 2 || len(res.OfflineUsers) != 1 || res.OfflineUsers[0] != "43" {
		t.Fatalf("publish result %+v", res)
	}

	_, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.Contains(string(data), res.ID) || !strings.Contains(string(data), "WO-1042 assigned to you") {
		t.Fatalf("frame %s, want notification %s", data, res.ID)
	}
	if l := listen.line(t); !strings.Contains(l, res.ID) {
		t.Fatalf("listen printed %q, want notification %s", l, res.ID)
	}
	// The stack's log carries the EMF lines Lambda would write (PROTOCOL.md §9).
	emf := regexp.MustCompile(`(?m)^\{"_aws":\{.*"Namespace":"WorkOrderNotify".*"Function":"PublishFunction".*"Deliveries":2`)
	for deadline := time.Now().Add(wait); !emf.MatchString(local.stderr.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no PublishFunction EMF line with Deliveries 2 in the stack's log:\n%s", local.stderr)
		}
	}

	// A function error: its type and message, exit 1.
	_, errOut, code = notify(t, bin, "publish", "--endpoint-url", endpoint, "--user", "42", "--type", "x", "--data", `[1]`)
	if code != 1 || !strings.Contains(errOut, "ValidationError") || !strings.Contains(errOut, "data") {
		t.Errorf("invalid publish: exit %d, %s", code, errOut)
	}
	if _, errOut, code := notify(t, bin, "publish", "--endpoint-url", endpoint, "--type", "x"); code != 2 || !strings.Contains(errOut, "--user") {
		t.Errorf("publish without target: exit %d, %s", code, errOut)
	}
	// A refused handshake: the status and its message, exit 1.
	_, errOut, code = notify(t, bin, "listen", "--url", wsURL, "--token", "not-a-jwt")
	if code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("listen with a bad token: exit %d, %s", code, errOut)
	}

	if code := listen.interrupt(t); code != 0 {
		t.Errorf("listen exited %d on SIGINT: %s", code, listen.stderr)
	}
	if code := local.interrupt(t); code != 0 {
		t.Errorf("local exited %d on SIGINT: %s", code, local.stderr)
	}
	// The socket was closed cleanly, as API Gateway closes on shutdown.
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after SIGINT: %v, want a 1001 close", err)
	}
}

func TestDisconnectCommand(t *testing.T) {
	bin := buildNotify(t)
	local := start(t, bin, "local", "--addr", "127.0.0.1:0")
	wsURL := local.line(t)
	endpoint := "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/")
	token, _, _ := notify(t, bin, "token", "--sub", "42")
	token = strings.TrimSpace(token)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL+"?token="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	// A token issued in the revocation's own second stays valid (PROTOCOL.md
	// §2): let the clock move past the token's iat first.
	time.Sleep(1100 * time.Millisecond)

	out, errOut, code := notify(t, bin, "disconnect", "--endpoint-url", endpoint, "--user", "42", "--reason", "signed out")
	if code != 0 {
		t.Fatalf("notify disconnect: exit %d: %s", code, errOut)
	}
	if got := strings.TrimSpace(out); got != `{"connections":1,"disconnected":1,"gone":0,"failed":0}` {
		t.Errorf("disconnect printed %s", got)
	}
	_, data, err := conn.Read(ctx)
	if err != nil || string(data) != `{"type":"disconnected","code":"revoked","reason":"signed out"}` {
		t.Errorf("frame %s, %v; want the revoked disconnected frame", data, err)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) == -1 {
		t.Errorf("after the disconnected frame: %v, want the socket closed", err)
	}
	// The token is older than the revocation: refused.
	if _, resp, err := websocket.Dial(ctx, wsURL+"?token="+token, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("old token after disconnect: %v, want 401", err)
	}
	if _, errOut, code := notify(t, bin, "disconnect", "--endpoint-url", endpoint); code != 2 || !strings.Contains(errOut, "--user") {
		t.Errorf("disconnect without target: exit %d, %s", code, errOut)
	}
	if code := local.interrupt(t); code != 0 {
		t.Errorf("local exited %d on SIGINT: %s", code, local.stderr)
	}
}
