package realclients

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/testenv"
)

// wait bounds every wait for something that should happen.
const wait = 30 * time.Second

func TestMain(m *testing.M) {
	// Nothing in this binary looks for credentials on the network either.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// missing skips the test with why and how, or fails it under CI=true.
func missing(t *testing.T, why, hint string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; %s (CI=true: a missing client fails)", why, hint)
	}
	t.Skipf("%s; %s", why, hint)
}

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// childEnv is the environment of every client process: the process's
// without any AWS_ variable, plus dummy credentials, the region under both
// names (boto3 and AWS CLI v1 read only AWS_DEFAULT_REGION), no metadata
// lookups and no shared configuration files.
func childEnv(dir string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID=dummy",
		"AWS_SECRET_ACCESS_KEY=dummy",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
		"AWS_PAGER=",
	)
	return append(env, extra...)
}

// run runs name with args in dir under childEnv and returns its standard
// output; a non-zero exit fails the test with both outputs.
func run(t *testing.T, dir string, extraEnv []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(dir, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// stack is a running local stack in memory and its captured logs.
type stack struct {
	*devstack.Stack
	logs *testenv.Logs
}

// startStack starts the stack of template.yaml on 127.0.0.1:0, in memory,
// with the local defaults (JWT_SECRET, ALLOWED_ORIGINS=*).
func startStack(t *testing.T) *stack {
	t.Helper()
	logs := testenv.NewLogs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{
		Addr:   "127.0.0.1:0",
		Env:    map[string]string{},
		Logger: slog.New(logs),
	})
	if err != nil {
		t.Fatalf("devstack.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &stack{Stack: s, logs: logs}
}

// wsURL is the WebSocket URL with a fresh token of sub (and groups).
func (s *stack) wsURL(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	tok, err := s.DevToken(sub, groups, time.Hour)
	if err != nil {
		t.Fatalf("DevToken: %v", err)
	}
	return s.URL() + "?token=" + url.QueryEscape(tok)
}

// socket is a Go WebSocket client of the stack; a goroutine reads its
// frames.
type socket struct {
	frames chan frame
	done   chan error
	conn   *websocket.Conn
}

type frame struct {
	typ  websocket.MessageType
	data []byte
}

// connect opens a socket for sub and returns it with its connection id.
func (s *stack) connect(t *testing.T, sub string, groups ...string) (*socket, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, s.wsURL(t, sub, groups...), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", sub, err)
	}
	conn.SetReadLimit(1 << 20)
	c := &socket{frames: make(chan frame, 64), done: make(chan error, 1), conn: conn}
	go func() {
		for {
			typ, data, err := conn.Read(context.Background())
			if err != nil {
				c.done <- err
				close(c.frames)
				return
			}
			c.frames <- frame{typ, data}
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c, s.logs.ConnectionID(t, sub)
}

// next returns the next frame.
func (c *socket) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("socket closed while waiting for a frame: %v", <-c.done)
		}
		return f
	case <-time.After(wait):
		t.Fatal("no frame arrived")
	}
	return frame{}
}

// closed waits for the server to close the socket and returns the close
// status; frames still queued are returned too.
func (c *socket) closed(t *testing.T) (websocket.StatusCode, []frame) {
	t.Helper()
	var rest []frame
	for {
		select {
		case f, ok := <-c.frames:
			if ok {
				rest = append(rest, f)
				continue
			}
			return websocket.CloseStatus(<-c.done), rest
		case <-time.After(wait):
			t.Fatal("the socket stayed open")
		}
	}
}

// readmeBlocks returns the fenced code blocks of lang in README.md's section
// headed `## section` (up to the next `## ` heading), each without its
// fences.
func readmeBlocks(t *testing.T, section, lang string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	in, fenced := false, false
	var cur []string
	var curLang string
	for _, line := range strings.Split(string(data), "\n") {
		if !fenced && strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == section
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "```") {
			if !fenced {
				fenced, curLang, cur = true, strings.TrimSpace(strings.TrimPrefix(line, "```")), nil
			} else {
				fenced = false
				if curLang == lang {
					blocks = append(blocks, strings.Join(cur, "\n")+"\n")
				}
			}
			continue
		}
		if fenced {
			cur = append(cur, line)
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("README.md: no %s blocks in section %q", lang, section)
	}
	return blocks
}
