package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/testenv"
)

const sampleConnection = "LzXGBc7tIAMCJYQ="

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// managementAPI is an HTTP server speaking the Management API's POST
// /@connections/{id}: it records what each connection was sent.
type managementAPI struct {
	*httptest.Server
	mu     sync.Mutex
	sent   map[string][]string
	closed map[string]bool
}

func newManagementAPI(t *testing.T) *managementAPI {
	m := &managementAPI{sent: map[string][]string{}, closed: map[string]bool{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/@connections/")
		if ok && r.Method == http.MethodDelete {
			m.mu.Lock()
			m.closed[id] = true
			m.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost || !ok {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.sent[id] = append(m.sent[id], string(body))
		m.mu.Unlock()
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *managementAPI) frames(id string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.sent[id]...)
}

func staticConfig() *aws.Config {
	return &aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
	}
}

// sampleEnv is events/env.json (what `sam local invoke --env-vars` gets),
// with the Management API pointed at the test's server.
func sampleEnv(t *testing.T, function, endpoint string) map[string]string {
	t.Helper()
	var all map[string]map[string]string
	readJSON(t, "env.json", &all)
	env := all[function]
	if env == nil {
		t.Fatalf("events/env.json has no %s", function)
	}
	if _, ok := env[app.EnvManagementEndpoint]; ok {
		env[app.EnvManagementEndpoint] = endpoint
	}
	return env
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(readEvent(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type harness struct {
	store   *memory.Store
	mgmt    *managementAPI
	logs    *bytes.Buffer
	mu      sync.Mutex
	metrics lines // the functions' EMF lines (Deps.Metrics)
}

func newHarness(t *testing.T) *harness {
	return &harness{store: memory.New(), mgmt: newManagementAPI(t), logs: &bytes.Buffer{}}
}

// lines is an io.Writer that keeps what it is given, one Write per line.
type lines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (h *harness) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.Write(p)
}

func (h *harness) handler(t *testing.T, function string, env map[string]string) lambda.Handler {
	t.Helper()
	if env == nil {
		env = sampleEnv(t, function, h.mgmt.URL)
	}
	handler, err := app.NewHandler(context.Background(), function, env, app.Deps{
		Connections: h.store, Inbox: h.store, AWSConfig: staticConfig(), Logger: slog.New(slog.NewJSONHandler(h, nil)),
		Metrics: &h.metrics,
	})
	if err != nil {
		t.Fatalf("NewHandler(%s): %v", function, err)
	}
	return handler
}

func invoke(t *testing.T, h lambda.Handler, payload []byte) ([]byte, error) {
	t.Helper()
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-" + t.Name()})
	return h.Invoke(ctx, payload)
}

func invokeStatus(t *testing.T, h lambda.Handler, payload []byte) int {
	t.Helper()
	out, err := invoke(t, h, payload)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return resp.StatusCode
}

// TestSampleEvents runs every events/ sample through its function, as `sam
// local invoke -e events/X.json --env-vars events/env.json` would.
func TestSampleEvents(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	connectEvent := readEvent(t, "connect.json")
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(connectEvent, &ev); err != nil || ev.RequestContext.EventType != "CONNECT" {
		t.Fatalf("connect.json is not a CONNECT event: %v", err)
	}
	if got := invokeStatus(t, h.handler(t, app.ConnectFunction, nil), connectEvent); got != http.StatusOK {
		t.Fatalf("connect.json answered %d, want 200", got)
	}
	c, err := h.store.GetConnection(ctx, sampleConnection)
	if err != nil {
		t.Fatalf("connection not stored: %v", err)
	}
	// Stores keep each group once, in no promised order.
	if c.UserID != "42" || strings.Join(slices.Sorted(slices.Values(c.Groups)), ",") != "role:dispatcher,team:plant-3" {
		t.Errorf("stored %+v, want user 42 with the token's groups", c)
	}

	if got := invokeStatus(t, h.handler(t, app.DefaultFunction, nil), readEvent(t, "default.json")); got != http.StatusOK {
		t.Fatalf("default.json answered %d", got)
	}
	if f := h.mgmt.frames(sampleConnection); len(f) != 1 || f[0] != `{"type":"pong","ref":"r1"}` {
		t.Errorf("ping answer through the Management API = %q", f)
	}

	// The sample connection's connectedAt is in the past, so it is older
	// than the 10 s grace either way; publish reaches it by user and group.
	out, err := invoke(t, h.handler(t, app.PublishFunction, nil), readEvent(t, "publish.json"))
	if err != nil {
		t.Fatalf("publish.json: %v", err)
	}
	var res notify.PublishResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Connections != 1 || res.Delivered != 1 || len(res.OfflineUsers) != 0 {
		t.Errorf("publish result %s, want the sample connection reached once", out)
	}
	frames := h.mgmt.frames(sampleConnection)
	if len(frames) != 2 || !strings.Contains(frames[1], `"type":"notification"`) || !strings.Contains(frames[1], `"id":"`+res.ID+`"`) {
		t.Errorf("notification frame = %q", frames)
	}

	// The sign-out sample: a disconnect request through PublishFunction.
	out, err = invoke(t, h.handler(t, app.PublishFunction, nil), readEvent(t, "signout.json"))
	if err != nil {
		t.Fatalf("signout.json: %v", err)
	}
	if string(out) != `{"connections":1,"disconnected":1,"gone":0,"failed":0}` {
		t.Errorf("signout.json answered %s", out)
	}
	frames = h.mgmt.frames(sampleConnection)
	h.mgmt.mu.Lock()
	closed := h.mgmt.closed[sampleConnection]
	h.mgmt.mu.Unlock()
	if len(frames) != 3 || frames[2] != `{"type":"disconnected","code":"revoked","reason":"signed out"}` || !closed {
		t.Errorf("sign-out: frames %q, closed %v; want the revoked frame, then DELETE", frames, closed)
	}
	if at, err := h.store.RevokedAt(ctx, "42"); err != nil || at.IsZero() {
		t.Errorf("user 42 not revoked: %v, %v", at, err)
	}

	if got := invokeStatus(t, h.handler(t, app.DisconnectFunction, nil), readEvent(t, "disconnect.json")); got != http.StatusOK {
		t.Fatalf("disconnect.json answered %d", got)
	}
	if _, err := h.store.GetConnection(ctx, sampleConnection); notify.ErrorCode(err) != notify.ENOTFOUND {
		t.Errorf("connection still stored after $disconnect: %v", err)
	}

	// Every line is JSON and carries the request id; route lines carry the
	// connection id and the route.
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["requestId"] == nil || rec["function"] == nil {
			t.Errorf("log line without requestId/function: %s", line)
		}
		if rec["function"] != app.PublishFunction && (rec["connectionId"] != sampleConnection || rec["route"] == nil) {
			t.Errorf("route log line without connectionId/route: %s", line)
		}
	}
}

func TestConnectRefusals(t *testing.T) {
	base := readEvent(t, "connect.json")
	cases := []struct {
		name   string
		mutate func(ev *events.APIGatewayWebsocketProxyRequest)
		status int
		reason string
	}{
		{"foreign origin", func(ev *events.APIGatewayWebsocketProxyRequest) { ev.Headers["Origin"] = "https://evil.example" }, 403, "origin"},
		{"no origin, token in query", func(ev *events.APIGatewayWebsocketProxyRequest) { delete(ev.Headers, "Origin") }, 403, "Origin"},
		{"origin checked before token", func(ev *events.APIGatewayWebsocketProxyRequest) {
			ev.Headers["Origin"] = "https://evil.example"
			ev.QueryStringParameters = nil
		}, 403, "origin"},
		{"no token", func(ev *events.APIGatewayWebsocketProxyRequest) { ev.QueryStringParameters = nil }, 401, "missing token"},
		{"garbage token", func(ev *events.APIGatewayWebsocketProxyRequest) { ev.QueryStringParameters["token"] = "abc.def" }, 401, "token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var ev events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(base, &ev); err != nil {
				t.Fatal(err)
			}
			tc.mutate(&ev)
			payload, _ := json.Marshal(ev)
			out, err := invoke(t, h.handler(t, app.ConnectFunction, nil), payload)
			if err != nil {
				t.Fatal(err)
			}
			var resp events.APIGatewayProxyResponse
			_ = json.Unmarshal(out, &resp)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tc.status, resp.Body)
			}
			if !strings.Contains(resp.Body, tc.reason) {
				t.Errorf("body %q does not say why (%q)", resp.Body, tc.reason)
			}
			if _, err := h.store.GetConnection(context.Background(), sampleConnection); notify.ErrorCode(err) != notify.ENOTFOUND {
				t.Errorf("a refused connection was stored")
			}
			if !strings.Contains(h.logs.String(), `"msg":"connection refused"`) || !strings.Contains(h.logs.String(), `"reason":`) {
				t.Errorf("no log line saying why: %s", h.logs.String())
			}
		})
	}
}

type brokenStore struct{ *memory.Store }

func (brokenStore) SaveConnection(context.Context, notify.Connection) error {
	return errors.New("dynamodb unavailable")
}

func TestConnectStorageFailureIs500(t *testing.T) {
	h := newHarness(t)
	handler, err := app.NewHandler(context.Background(), app.ConnectFunction, sampleEnv(t, app.ConnectFunction, ""),
		app.Deps{Connections: brokenStore{h.store}, AWSConfig: staticConfig(), Logger: slog.New(slog.NewJSONHandler(h, nil)), Metrics: &h.metrics})
	if err != nil {
		t.Fatal(err)
	}
	if got := invokeStatus(t, handler, readEvent(t, "connect.json")); got != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", got)
	}
	if m := h.metricsOf(t, app.ConnectFunction); len(m) != 1 || m[0].Strings["Reason"] != "storage" || m[0].Values["ConnectsRefused"] != 1 {
		t.Errorf("metrics %+v, want one refusal for storage", m)
	}
}

func TestPublishValidationError(t *testing.T) {
	h := newHarness(t)
	_, err := invoke(t, h.handler(t, app.PublishFunction, nil), []byte(`{"user":["42"],"notification":{"type":"t"}}`))
	var ie messages.InvokeResponse_Error
	if !errors.As(err, &ie) || ie.Type != "ValidationError" || !strings.Contains(ie.Message, `"user"`) {
		t.Fatalf("err = %#v, want a ValidationError naming the field", err)
	}
	if len(h.mgmt.sent) != 0 {
		t.Error("an invalid publish sent something")
	}
}

func TestMissingConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		function string
		env      map[string]string
		want     string
	}{
		{app.ConnectFunction, map[string]string{app.EnvJWTSecret: "a-secret-of-32-bytes-or-more-xxxx", app.EnvConnectionsTable: "t"}, app.EnvAllowedOrigins},
		{app.ConnectFunction, map[string]string{app.EnvAllowedOrigins: "*", app.EnvConnectionsTable: "t"}, app.EnvJWTSecret},
		{app.ConnectFunction, map[string]string{app.EnvAllowedOrigins: "*", app.EnvJWTSecret: "a-secret-of-32-bytes-or-more-xxxx"}, app.EnvConnectionsTable},
		{app.DisconnectFunction, map[string]string{}, app.EnvConnectionsTable},
		{app.DefaultFunction, map[string]string{}, app.EnvConnectionsTable},
		{app.DefaultFunction, map[string]string{app.EnvConnectionsTable: "t"}, app.EnvNotificationsTable},
		{app.DefaultFunction, map[string]string{app.EnvConnectionsTable: "t", app.EnvNotificationsTable: "n", app.EnvRetentionDays: "0"}, app.EnvRetentionDays},
		{app.PublishFunction, map[string]string{app.EnvConnectionsTable: "t"}, app.EnvManagementEndpoint},
		{app.PublishFunction, map[string]string{app.EnvConnectionsTable: "t", app.EnvManagementEndpoint: "http://x", app.EnvPublishConcurrency: "lots"}, app.EnvPublishConcurrency},
	}
	for _, tc := range cases {
		_, err := app.NewHandler(context.Background(), tc.function, tc.env, app.Deps{AWSConfig: staticConfig()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %v: err = %v, want one naming %s", tc.function, tc.env, err, tc.want)
		}
	}
	if _, err := app.NewHandler(context.Background(), "NoSuchFunction", nil, app.Deps{}); err == nil {
		t.Error("an unknown function was built")
	}

	// The sharded fan-out's configuration.
	publish := func(extra map[string]string) map[string]string {
		env := map[string]string{app.EnvConnectionsTable: "t", app.EnvNotificationsTable: "n",
			app.EnvManagementEndpoint: "http://x", app.EnvFanoutFunction: "FanoutFunction"}
		maps.Copy(env, extra)
		return env
	}
	withClient := app.Deps{AWSConfig: staticConfig(), NewFanout: func(aws.Config, string, int) notify.Fanout { return nil }}
	for _, tc := range []struct {
		env  map[string]string
		deps app.Deps
		want string
	}{
		{publish(nil), app.Deps{AWSConfig: staticConfig()}, app.EnvFanoutFunction}, // a binary without the client
		{publish(map[string]string{app.EnvFanoutShards: "0"}), withClient, app.EnvFanoutShards},
		{publish(map[string]string{app.EnvFanoutBatchSize: "6000"}), withClient, app.EnvFanoutBatchSize},
		// 5,000 connections at 10 posts/s: every batch would time out.
		{publish(map[string]string{app.EnvFanoutBatchSize: "5000", app.EnvFanoutPostsPerSecond: "100"}), withClient, app.EnvFanoutPostsPerSecond},
	} {
		_, err := app.NewHandler(context.Background(), app.PublishFunction, tc.env, tc.deps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PublishFunction with %v: err = %v, want one naming %s", tc.env, err, tc.want)
		}
	}
	if _, err := app.NewHandler(context.Background(), app.PublishFunction, publish(nil), withClient); err != nil {
		t.Errorf("PublishFunction with the fan-out's defaults: %v", err)
	}
	if _, err := app.NewHandler(context.Background(), app.FanoutFunction, map[string]string{app.EnvConnectionsTable: "t"}, app.Deps{AWSConfig: staticConfig()}); err == nil ||
		!strings.Contains(err.Error(), app.EnvManagementEndpoint) {
		t.Errorf("FanoutFunction without %s: %v", app.EnvManagementEndpoint, err)
	}
}

// A binary message reaches DefaultFunction base64-encoded; it is answered
// with a bad_request frame through the Management API, and nothing else.
func TestDefaultRefusesBinaryMessages(t *testing.T) {
	h := newHarness(t)
	var ev events.APIGatewayWebsocketProxyRequest
	readJSON(t, "default.json", &ev)
	ev.Body, ev.IsBase64Encoded = "eyJhY3Rpb24iOiJwaW5nIn0=", true // {"action":"ping"}
	payload, _ := json.Marshal(ev)
	if got := invokeStatus(t, h.handler(t, app.DefaultFunction, nil), payload); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	f := h.mgmt.frames(sampleConnection)
	if len(f) != 1 || !strings.Contains(f[0], `"code":"bad_request"`) || !strings.Contains(f[0], "binary") {
		t.Errorf("answer %q, want one bad_request frame about binary frames", f)
	}
	// Whatever the bytes say, a binary frame has no action.
	if m := h.metricsOf(t, app.DefaultFunction); len(m) != 1 || m[0].Strings["Action"] != "invalid" || m[0].Values["FrameErrors"] != 1 {
		t.Errorf("metrics %+v, want Action invalid, FrameErrors 1", m)
	}
}
