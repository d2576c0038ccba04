package samtemplate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/samtemplate"
)

func load(t *testing.T) (*samtemplate.Template, string) {
	t.Helper()
	root := samtemplate.RepoRoot(t)
	tm, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tm, root
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// Each function's environment is exactly what its code reads
// (internal/app.FunctionEnv): nothing missing, nothing it does not read.
func TestEnvironmentMatchesFunctionEnv(t *testing.T) {
	tm, _ := load(t)
	if got, want := keys(tm.Functions), keys(app.FunctionEnv); !slices.Equal(got, want) {
		t.Fatalf("template functions %v, app.FunctionEnv %v", got, want)
	}
	for fn, vars := range app.FunctionEnv {
		if got, want := keys(tm.Functions[fn].Environment), sorted(vars); !slices.Equal(got, want) {
			t.Errorf("%s environment = %v, want exactly %v", fn, got, want)
		}
	}
}

func TestResolveEnv(t *testing.T) {
	tm, _ := load(t)
	params := map[string]string{"AllowedOrigins": "https://app.example.com", "JwtSecret": "a-deploy-secret-of-32-bytes-or-more"}
	refs := map[string]string{
		"ConnectionsTable":   "notify-connections",
		"NotificationsTable": "notify-notifications",
		"WebSocketApi":       "local",
		"FanoutFunction":     "notify-fanout",
		"AWS::Region":        "eu-west-1",
	}
	want := map[string]map[string]string{
		"ConnectFunction": {
			"JWT_SECRET": "a-deploy-secret-of-32-bytes-or-more", "JWT_JWKS_URL": "", "JWT_ISSUER": "", "JWT_AUDIENCE": "",
			"JWT_GROUPS_CLAIM": "groups", "ALLOWED_ORIGINS": "https://app.example.com",
			"CONNECTIONS_TABLE":        "notify-connections",
			"MANAGEMENT_API_ENDPOINT":  "https://local.execute-api.eu-west-1.amazonaws.com/prod",
			"MAX_CONNECTIONS_PER_USER": "20",
			"METRICS_NAMESPACE":        "WorkOrderNotify",
		},
		"DisconnectFunction": {"CONNECTIONS_TABLE": "notify-connections", "METRICS_NAMESPACE": "WorkOrderNotify"},
		"DefaultFunction": {
			"CONNECTIONS_TABLE": "notify-connections", "NOTIFICATIONS_TABLE": "notify-notifications",
			"RETENTION_DAYS":          "30",
			"MANAGEMENT_API_ENDPOINT": "https://local.execute-api.eu-west-1.amazonaws.com/prod",
			"METRICS_NAMESPACE":       "WorkOrderNotify",
		},
		"PublishFunction": {
			"CONNECTIONS_TABLE": "notify-connections", "NOTIFICATIONS_TABLE": "notify-notifications",
			"RETENTION_DAYS":          "30",
			"MANAGEMENT_API_ENDPOINT": "https://local.execute-api.eu-west-1.amazonaws.com/prod",
			"PUBLISH_CONCURRENCY":     "64",
			"METRICS_NAMESPACE":       "WorkOrderNotify",
			"FANOUT_FUNCTION":         "notify-fanout",
			"FANOUT_THRESHOLD":        "1000", "FANOUT_BATCH_SIZE": "500", "FANOUT_SHARDS": "10",
			"FANOUT_POSTS_PER_SECOND": "10000",
		},
		"FanoutFunction": {
			"CONNECTIONS_TABLE":       "notify-connections",
			"MANAGEMENT_API_ENDPOINT": "https://local.execute-api.eu-west-1.amazonaws.com/prod",
			"PUBLISH_CONCURRENCY":     "64",
			"METRICS_NAMESPACE":       "WorkOrderNotify",
		},
	}
	for fn, w := range want {
		got, err := tm.ResolveEnv(fn, params, refs)
		if err != nil {
			t.Errorf("ResolveEnv(%s): %v", fn, err)
			continue
		}
		if !mapsEqual(got, w) {
			t.Errorf("ResolveEnv(%s)\n got %v\nwant %v", fn, got, w)
		}
	}

	// Parameters override defaults; the region defaults off AWS.
	got, err := tm.ResolveEnv("PublishFunction",
		map[string]string{"AllowedOrigins": "*", "StageName": "local", "RetentionDays": "7", "MetricsNamespace": "Staging/Notify"},
		map[string]string{"ConnectionsTable": "c", "NotificationsTable": "n", "WebSocketApi": "local", "FanoutFunction": "f"})
	if err != nil {
		t.Fatal(err)
	}
	if got["MANAGEMENT_API_ENDPOINT"] != "https://local.execute-api.us-east-1.amazonaws.com/local" || got["RETENTION_DAYS"] != "7" ||
		got["METRICS_NAMESPACE"] != "Staging/Notify" {
		t.Errorf("with overrides: %v", got)
	}

	for _, c := range []struct {
		name    string
		fn      string
		params  map[string]string
		refs    map[string]string
		wantErr string
	}{
		{"parameter without default", "ConnectFunction", nil, refs, "AllowedOrigins"},
		{"missing resource", "ConnectFunction", params, map[string]string{}, "ConnectionsTable"},
		{"missing API id", "PublishFunction", params, map[string]string{"ConnectionsTable": "c", "NotificationsTable": "n", "FanoutFunction": "f"}, "WebSocketApi"},
		{"unknown function", "NoSuchFunction", params, refs, "NoSuchFunction"},
		{"unknown parameter", "ConnectFunction", map[string]string{"AllowedOrigin": "*"}, refs, "AllowedOrigin"},
	} {
		if _, err := tm.ResolveEnv(c.fn, c.params, c.refs); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.wantErr)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// decodeStrict decodes path into v, refusing fields v's type does not know.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
}

const requestTimeLayout = "02/Jan/2006:15:04:05 -0700"

// checkWebsocketEvent checks what every API Gateway WebSocket event carries.
func checkWebsocketEvent(t *testing.T, tm *samtemplate.Template, name string, e events.APIGatewayWebsocketProxyRequest, routeKey, eventType string) {
	t.Helper()
	rc := e.RequestContext
	if rc.RouteKey != routeKey || rc.EventType != eventType {
		t.Errorf("%s: routeKey %q eventType %q, want %q %q", name, rc.RouteKey, rc.EventType, routeKey, eventType)
	}
	if _, ok := tm.Routes[rc.RouteKey]; !ok {
		t.Errorf("%s: route %q is not in template.yaml", name, rc.RouteKey)
	}
	if rc.ConnectionID != "LzXGBc7tIAMCJYQ=" || rc.Stage != "prod" || rc.MessageDirection != "IN" {
		t.Errorf("%s: connectionId %q stage %q messageDirection %q", name, rc.ConnectionID, rc.Stage, rc.MessageDirection)
	}
	if rc.APIID == "" || rc.DomainName != rc.APIID+".execute-api.us-east-1.amazonaws.com" {
		t.Errorf("%s: apiId %q domainName %q", name, rc.APIID, rc.DomainName)
	}
	if rc.RequestID == "" || rc.RequestID != rc.ExtendedRequestID {
		t.Errorf("%s: requestId %q extendedRequestId %q, want equal and set", name, rc.RequestID, rc.ExtendedRequestID)
	}
	if rc.Identity.SourceIP == "" || rc.Identity.UserAgent == "" {
		t.Errorf("%s: identity %+v", name, rc.Identity)
	}
	// Epoch milliseconds, consistent with requestTime.
	rt, err := time.Parse(requestTimeLayout, rc.RequestTime)
	if err != nil {
		t.Errorf("%s: requestTime %q: %v", name, rc.RequestTime, err)
	} else if rt.Unix() != rc.RequestTimeEpoch/1000 {
		t.Errorf("%s: requestTime %q is not requestTimeEpoch %d", name, rc.RequestTime, rc.RequestTimeEpoch)
	}
	if rc.ConnectedAt < 1_000_000_000_000 || rc.RequestTimeEpoch < rc.ConnectedAt {
		t.Errorf("%s: connectedAt %d requestTimeEpoch %d (epoch ms, request after connect)", name, rc.ConnectedAt, rc.RequestTimeEpoch)
	}
	for h, v := range e.Headers {
		if mv := e.MultiValueHeaders[h]; len(mv) != 1 || mv[0] != v {
			t.Errorf("%s: header %s = %q but multiValueHeaders has %q", name, h, v, mv)
		}
	}
	if len(e.Headers) != len(e.MultiValueHeaders) {
		t.Errorf("%s: %d headers, %d multiValueHeaders", name, len(e.Headers), len(e.MultiValueHeaders))
	}
	// Not the REST-only fields of aws-lambda-go's synthetic fixture.
	if e.HTTPMethod != "" || e.Path != "" || e.Resource != "" || rc.HTTPMethod != "" || rc.ResourcePath != "" {
		t.Errorf("%s: carries REST API fields", name)
	}
}

func TestConnectEvent(t *testing.T) {
	tm, root := load(t)
	var e events.APIGatewayWebsocketProxyRequest
	decodeStrict(t, filepath.Join(root, "events", "connect.json"), &e)
	checkWebsocketEvent(t, tm, "connect.json", e, "$connect", "CONNECT")

	h := e.Headers
	if h["Origin"] != "https://app.example.com" || h["Host"] != e.RequestContext.DomainName ||
		h["Sec-WebSocket-Key"] == "" || h["Sec-WebSocket-Version"] != "13" || h["X-Forwarded-For"] != e.RequestContext.Identity.SourceIP {
		t.Errorf("connect.json headers %v", h)
	}
	if e.Body != "" || e.RequestContext.MessageID != nil {
		t.Error("connect.json: a CONNECT event has no body and no messageId")
	}
	token := e.QueryStringParameters["token"]
	if mv := e.MultiValueQueryStringParameters["token"]; len(mv) != 1 || mv[0] != token {
		t.Errorf("multiValueQueryStringParameters.token = %v", mv)
	}

	// The token verifies as ConnectFunction will with JWT_SECRET=local-development-secret-do-not-deploy.
	claims := struct {
		jwt.RegisteredClaims
		Groups []string `json:"groups"`
	}{}
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte("local-development-secret-do-not-deploy"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(60*time.Second))
	if err != nil {
		t.Fatalf("connect.json token: %v", err)
	}
	if claims.Subject != "42" || !slices.Equal(claims.Groups, []string{"team:plant-3", "role:dispatcher"}) {
		t.Errorf("token claims sub %q groups %v", claims.Subject, claims.Groups)
	}
	if claims.ExpiresAt.Year() != 2100 {
		t.Errorf("token exp %v, want year 2100", claims.ExpiresAt)
	}
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte("another-secret-that-is-32-bytes-long"), nil },
		jwt.WithValidMethods([]string{"HS256"})); err == nil {
		t.Error("token verifies with another secret")
	}
}

func TestDisconnectEvent(t *testing.T) {
	tm, root := load(t)
	var e events.APIGatewayWebsocketProxyRequest
	decodeStrict(t, filepath.Join(root, "events", "disconnect.json"), &e)
	checkWebsocketEvent(t, tm, "disconnect.json", e, "$disconnect", "DISCONNECT")
	rc := e.RequestContext
	if rc.DisconnectStatusCode != 1001 || rc.DisconnectReason == nil || *rc.DisconnectReason != "" {
		t.Errorf("disconnectStatusCode %d disconnectReason %v, want 1001 and \"\"", rc.DisconnectStatusCode, rc.DisconnectReason)
	}
	if e.Headers["Host"] == "" || e.Body != "" {
		t.Errorf("disconnect.json: headers %v body %q", e.Headers, e.Body)
	}
}

func TestDefaultEvent(t *testing.T) {
	tm, root := load(t)
	var e events.APIGatewayWebsocketProxyRequest
	decodeStrict(t, filepath.Join(root, "events", "default.json"), &e)
	checkWebsocketEvent(t, tm, "default.json", e, "$default", "MESSAGE")
	if id, _ := e.RequestContext.MessageID.(string); id == "" {
		t.Errorf("messageId %v", e.RequestContext.MessageID)
	}
	if e.IsBase64Encoded {
		t.Error("isBase64Encoded")
	}
	var frame map[string]any
	if err := json.Unmarshal([]byte(e.Body), &frame); err != nil {
		t.Fatalf("body %q: %v", e.Body, err)
	}
	if frame["action"] != "ping" || frame["ref"] != "r1" || len(frame) != 2 {
		t.Errorf("body %v", frame)
	}
	// With $request.body.action selection, "ping" has no route of its own:
	// API Gateway hands it to $default, as this event says.
	if _, own := tm.Routes["ping"]; own || tm.RouteSelectionExpression != "$request.body.action" {
		t.Errorf("routes %v, selection %q", tm.Routes, tm.RouteSelectionExpression)
	}
}

// publishRequest is PROTOCOL.md §4's request.
type publishRequest struct {
	Users          []string `json:"users"`
	Groups         []string `json:"groups"`
	Broadcast      bool     `json:"broadcast"`
	IdempotencyKey string   `json:"idempotencyKey"`
	Notification   struct {
		Type  string         `json:"type"`
		Title string         `json:"title"`
		Body  string         `json:"body"`
		Data  map[string]any `json:"data"`
	} `json:"notification"`
}

func TestPublishEvent(t *testing.T) {
	_, root := load(t)
	var p publishRequest
	decodeStrict(t, filepath.Join(root, "events", "publish.json"), &p)
	if !slices.Equal(p.Users, []string{"42"}) || !slices.Equal(p.Groups, []string{"team:plant-3"}) || p.Broadcast {
		t.Errorf("targets users %v groups %v broadcast %v", p.Users, p.Groups, p.Broadcast)
	}
	n := p.Notification
	if n.Type == "" || len(n.Type) > 100 || len([]rune(n.Title)) > 200 || len([]rune(n.Body)) > 2000 || n.Data == nil {
		t.Errorf("notification %+v", n)
	}
	if l := len(p.IdempotencyKey); l < 1 || l > 128 {
		t.Errorf("idempotencyKey %q", p.IdempotencyKey)
	}
}

// events/fanout.json is a FanoutFunction batch (PROTOCOL.md §4, "Large
// publishes") for connect.json's connection, as DecodeFanoutBatch takes it.
func TestFanoutEvent(t *testing.T) {
	_, root := load(t)
	raw, err := os.ReadFile(filepath.Join(root, "events", "fanout.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := notify.DecodeFanoutBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	var conn events.APIGatewayWebsocketProxyRequest
	decodeStrict(t, filepath.Join(root, "events", "connect.json"), &conn)
	if len(b.Connections) != 1 || b.Connections[0].ID != conn.RequestContext.ConnectionID {
		t.Errorf("fanout.json connections %+v, want connect.json's %s", b.Connections, conn.RequestContext.ConnectionID)
	}
	var frame notify.NotificationFrame
	decodeStrict(t, filepath.Join(root, "events", "fanout.json"), &struct {
		Frame          *notify.NotificationFrame `json:"frame"`
		PostsPerSecond int                       `json:"postsPerSecond"`
		Connections    []notify.FanoutConnection `json:"connections"`
	}{Frame: &frame})
	if frame.Type != "notification" || frame.Notification == nil || frame.Notification.ID == "" {
		t.Errorf("fanout.json frame %+v, want a notification frame", frame)
	}
}

// events/signout.json is a disconnect request (PROTOCOL.md §4): a user's
// sign-out, decoded strictly.
func TestSignoutEvent(t *testing.T) {
	_, root := load(t)
	var req struct {
		Users      []string `json:"users"`
		Disconnect struct {
			Reason string `json:"reason"`
		} `json:"disconnect"`
	}
	decodeStrict(t, filepath.Join(root, "events", "signout.json"), &req)
	if !slices.Equal(req.Users, []string{"42"}) || req.Disconnect.Reason == "" || len([]rune(req.Disconnect.Reason)) > 200 {
		t.Errorf("signout.json = %+v", req)
	}
}

// events/env.json (sam local invoke --env-vars) sets exactly what each
// function reads, with local values.
func TestEnvJSON(t *testing.T) {
	tm, root := load(t)
	var env map[string]map[string]string
	decodeStrict(t, filepath.Join(root, "events", "env.json"), &env)
	if got, want := keys(env), keys(tm.Functions); !slices.Equal(got, want) {
		t.Errorf("env.json functions %v, template %v", got, want)
	}
	for fn, vars := range env {
		if got, want := keys(vars), sorted(app.FunctionEnv[fn]); !slices.Equal(got, want) {
			t.Errorf("env.json %s = %v, want exactly %v", fn, got, want)
		}
		for k, v := range map[string]string{
			app.EnvJWTSecret:             "local-development-secret-do-not-deploy",
			app.EnvAllowedOrigins:        "https://app.example.com",
			app.EnvManagementEndpoint:    "http://127.0.0.1:3001",
			app.EnvMaxConnectionsPerUser: "20", // the template's default
		} {
			if got, ok := vars[k]; ok && got != v {
				t.Errorf("env.json %s %s = %q, want %q", fn, k, got, v)
			}
		}
		for _, k := range []string{app.EnvConnectionsTable, app.EnvNotificationsTable} {
			if got, ok := vars[k]; ok && got == "" {
				t.Errorf("env.json %s %s is empty", fn, k)
			}
		}
		// Every function writes its metrics under the template's default
		// namespace, the one the alarms and the dashboard read
		// (METRICS_NAMESPACE: app.EnvMetricsNamespace, once internal/app
		// names it).
		def := tm.Parameters["MetricsNamespace"].Default
		if def == nil || vars["METRICS_NAMESPACE"] != *def {
			t.Errorf("env.json %s METRICS_NAMESPACE = %q, want the template's MetricsNamespace default", fn, vars["METRICS_NAMESPACE"])
		}
	}
}

// Every file in events/ is one this test knows, so none goes stale unchecked.
func TestEventsFolderIsChecked(t *testing.T) {
	_, root := load(t)
	entries, err := os.ReadDir(filepath.Join(root, "events"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"connect.json", "default.json", "disconnect.json", "env.json", "fanout.json", "publish.json", "signout.json"}
	if !slices.Equal(names, want) {
		t.Errorf("events/ = %v, want %v (add a test for a new event)", names, want)
	}
}

func TestSamconfig(t *testing.T) {
	_, root := load(t)
	data, err := os.ReadFile(filepath.Join(root, "samconfig.toml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, re := range []string{
		`(?m)^version = 0\.1$`,
		`(?m)^\[default\.deploy\.parameters\]$`,
		`(?m)^stack_name = "[^"]+"$`,
		`(?m)^resolve_s3 = true$`,
		`(?m)^capabilities = "CAPABILITY_IAM"$`,
		`(?m)^confirm_changeset = true$`,
		`(?m)^\[default\.build\.parameters\]$`,
		`(?m)^cached = true$`,
		`(?m)^parallel = true$`,
		`(?m)^parameter_overrides = ".*AllowedOrigins=.*"$`,
		`(?m)^parameter_overrides = ".*(JwtSecret|JwtJwksUrl)=.*"$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("samconfig.toml does not match %s", re)
		}
	}
}

func TestCIRunsMakeTest(t *testing.T) {
	_, root := load(t)
	path := filepath.Join(root, ".ci", "run")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o111 == 0 {
		t.Errorf(".ci/run is not executable (%v)", st.Mode())
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"#!/usr/bin/env bash", "set -euo pipefail", "\nmake test\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf(".ci/run lacks %q", want)
		}
	}
}
