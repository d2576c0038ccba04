package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/testenv"
)

// wait bounds every wait for something that should happen; tests assert
// outcomes, never how long they took.
const wait = 15 * time.Second

func TestMain(m *testing.M) {
	// The SDK clients below are given static credentials; this keeps anything
	// else in the binary from asking the metadata service.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// backend says where a stack stores: memory, or DynamoDB at an endpoint.
type backend struct {
	name     string
	dynamodb func(tb testing.TB) string // nil in memory
}

var backends = []backend{
	{name: "memory"},
	{name: "dynalite", dynamodb: testenv.Dynalite},
}

// suiteCase is one black-box check, run once per backend.
type suiteCase struct {
	name string
	run  func(t *testing.T, b backend)
}

// runSuite runs every case on every backend, all in parallel: the two
// backends must not drift apart.
func runSuite(t *testing.T, cases []suiteCase) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			started := time.Now()
			t.Cleanup(func() { t.Logf("%s took %s", b.name, time.Since(started).Round(time.Millisecond)) })
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, b)
				})
			}
		})
	}
}

// stack is a running local stack and the SDK clients that talk to it.
type stack struct {
	*devstack.Stack
	lambda *lambda.Client
	mgmt   *apigatewaymanagementapi.Client
	logs   *logCapture
}

// startStack starts a stack on 127.0.0.1:0 with env as its whole
// environment. On DynamoDB, the tables get names unique to this stack.
func startStack(t *testing.T, b backend, env map[string]string, tweak func(*devstack.Options)) *stack {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	logs := newLogCapture()
	opts := devstack.Options{Addr: "127.0.0.1:0", Env: env, Logger: slog.New(logs)}
	if b.dynamodb != nil {
		opts.DynamoDBEndpoint = b.dynamodb(t)
		env["CONNECTIONS_TABLE"] = testenv.UniqueName("devstack-connections")
		env["NOTIFICATIONS_TABLE"] = testenv.UniqueName("devstack-notifications")
	}
	if tweak != nil {
		tweak(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := devstack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	}
	return &stack{
		Stack: s,
		lambda: lambda.NewFromConfig(cfg, func(o *lambda.Options) {
			o.BaseEndpoint = aws.String(s.InvokeEndpoint())
		}),
		mgmt: apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(s.ManagementEndpoint())
		}),
		logs: logs,
	}
}

func (s *stack) token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	tok, err := s.DevToken(sub, groups, time.Hour)
	if err != nil {
		t.Fatalf("DevToken: %v", err)
	}
	return tok
}

// publishResult is PublishFunction's answer (PROTOCOL.md §4); publish
// decodes it strictly, so a field the answer has and the type lacks fails.
type publishResult = notify.PublishResult

// invoke calls PublishFunction synchronously through the SDK.
func (s *stack) invoke(t *testing.T, payload string) *lambda.InvokeOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("Invoke %s: %v", payload, err)
	}
	return out
}

// publish invokes PublishFunction and expects success.
func (s *stack) publish(t *testing.T, payload string) publishResult {
	t.Helper()
	out := s.invoke(t, payload)
	if out.FunctionError != nil {
		t.Fatalf("publish %s: function error %s: %s", payload, *out.FunctionError, out.Payload)
	}
	var res publishResult
	dec := json.NewDecoder(bytes.NewReader(out.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("publish answer %s: %v", out.Payload, err)
	}
	if res.OfflineUsers == nil {
		t.Fatalf("publish answer %s: offlineUsers missing or null", out.Payload)
	}
	return res
}

// eventually retries cond until it holds, failing after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a WebSocket client of the stack; a goroutine reads its frames.
type client struct {
	conn   *websocket.Conn
	frames chan []byte
	done   chan error  // the read error that ended the connection
	logs   *logCapture // the stack's log, where its $disconnect shows
}

// dial connects with the token in the query string (as browsers do) and
// header as extra handshake headers. It returns the handshake's status and
// body when the connection is refused.
func (s *stack) dial(t *testing.T, token string, header http.Header) (*client, int, string) {
	t.Helper()
	u := s.URL()
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, string(body)
	}
	conn.SetReadLimit(1 << 20)
	c := &client{conn: conn, frames: make(chan []byte, 64), done: make(chan error, 1), logs: s.logs}
	go func() {
		for {
			typ, data, err := conn.Read(context.Background())
			if err != nil {
				c.done <- err
				close(c.frames)
				return
			}
			if typ == websocket.MessageText {
				c.frames <- data
			}
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c, http.StatusSwitchingProtocols, ""
}

// connect dials and expects the socket to open.
func (s *stack) connect(t *testing.T, sub string, groups ...string) *client {
	t.Helper()
	c, status, body := s.dial(t, s.token(t, sub, groups...), nil)
	if c == nil {
		t.Fatalf("connect %s: refused %d %s", sub, status, body)
	}
	return c
}

func (c *client) send(t *testing.T, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("send %s: %v", frame, err)
	}
}

// next returns the next frame, decoded.
func (c *client) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case data, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection closed while waiting for a frame: %v", <-c.done)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		return m
	case <-time.After(wait):
		t.Fatal("no frame arrived")
	}
	return nil
}

// nextOfType returns the next frame and fails unless its type is typ.
func (c *client) nextOfType(t *testing.T, typ string) map[string]any {
	t.Helper()
	m := c.next(t)
	if m["type"] != typ {
		t.Fatalf("got frame %v, want type %q", m, typ)
	}
	return m
}

// nothingMore checks that no frame is waiting: the answer to a ping sent
// now is the next frame (the stack answers a socket's messages in order,
// and a publish has posted its frames before it returns).
func (c *client) nothingMore(t *testing.T) {
	t.Helper()
	c.send(t, `{"action":"ping","ref":"barrier"}`)
	if m := c.next(t); m["type"] != "pong" || m["ref"] != "barrier" {
		t.Fatalf("unexpected frame %v", m)
	}
}

// closed waits for the server to close the connection and returns the close
// status.
func (c *client) closed(t *testing.T) websocket.StatusCode {
	t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if ok {
				continue
			}
			return websocket.CloseStatus(<-c.done)
		case <-time.After(wait):
			t.Fatal("the connection stayed open")
		}
	}
}

// logCapture keeps the stack's log records (testenv.Logs).
type logCapture = testenv.Logs

func newLogCapture() *logCapture { return testenv.NewLogs() }

func newLogger() *slog.Logger { return slog.New(newLogCapture()) }
