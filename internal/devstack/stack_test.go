package devstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	mgmttypes "github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
)

// TestStack runs the whole behaviour suite against a stack in memory and
// against one on DynamoDB (dynalite): the two must not drift apart.
func TestStack(t *testing.T) { runSuite(t, suite) }

var suite = []suiteCase{
	{"RefusedBadToken", testRefusedBadToken},
	{"RefusedOrigin", testRefusedOrigin},
	{"UserGroupBroadcast", testUserGroupBroadcast},
	{"ClosedSocketIsGone", testClosedSocketIsGone},
	{"PingPong", testPingPong},
	{"ErrorFrames", testErrorFrames},
	{"MessageTooBig", testMessageTooBig},
	{"IdleTimeout", testIdleTimeout},
	{"EventInvocation", testEventInvocation},
	{"ValidationError", testValidationError},
	{"NotJSONPayload", testNotJSONPayload},
	{"Idempotency", testIdempotency},
	{"SyncAfterOffline", testSyncAfterOffline},
	{"ShutdownDisconnects", testShutdownDisconnects},
}

// offlineCheck publishes to user and expects no connection reached.
func offlineCheck(t *testing.T, s *stack, user string) {
	t.Helper()
	res := s.publish(t, `{"users":["`+user+`"],"notification":{"type":"check"}}`)
	if res.Connections != 0 || res.Delivered != 0 || !slices.Equal(res.OfflineUsers, []string{user}) {
		t.Fatalf("publish to %s: %+v, want no connection and the user offline", user, res)
	}
}

func testRefusedBadToken(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	for name, token := range map[string]string{
		"garbage":     "not-a-jwt",
		"wrongSecret": mustSign(t, devstack.TokenClaims{Secret: "other-secret-that-is-32-bytes-or-more", Subject: "u-bad"}),
		"expired": mustSign(t, devstack.TokenClaims{Secret: devstack.DevSecret, Subject: "u-bad",
			TTL: time.Minute, Now: time.Now().Add(-time.Hour)}),
	} {
		c, status, body := s.dial(t, token, nil)
		if c != nil || status != http.StatusUnauthorized {
			t.Fatalf("%s token: status %d, want 401", name, status)
		}
		if body == "" {
			t.Errorf("%s token: 401 without a message", name)
		}
	}
	// No token at all.
	if c, status, _ := s.dial(t, "", nil); c != nil || status != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", status)
	}
	offlineCheck(t, s, "u-bad")
}

func mustSign(t *testing.T, c devstack.TokenClaims) string {
	t.Helper()
	tok, err := devstack.SignToken(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testRefusedOrigin(t *testing.T, b backend) {
	s := startStack(t, b, map[string]string{"ALLOWED_ORIGINS": "https://app.example.com"}, nil)
	c, status, body := s.dial(t, s.token(t, "u-origin"), http.Header{"Origin": {"https://evil.example.com"}})
	if c != nil || status != http.StatusForbidden {
		t.Fatalf("bad origin: status %d, want 403", status)
	}
	if body == "" {
		t.Error("403 without a message")
	}
	// The origin is checked before the token.
	if c, status, _ := s.dial(t, "not-a-jwt", http.Header{"Origin": {"https://evil.example.com"}}); c != nil || status != http.StatusForbidden {
		t.Fatalf("bad origin and bad token: status %d, want 403", status)
	}
	offlineCheck(t, s, "u-origin")

	if c, status, body := s.dial(t, s.token(t, "u-origin"), http.Header{"Origin": {"https://app.example.com"}}); c == nil {
		t.Fatalf("listed origin refused: %d %s", status, body)
	}
	if res := s.publish(t, `{"users":["u-origin"],"notification":{"type":"check"}}`); res.Connections != 1 {
		t.Fatalf("after a listed origin connected: %+v", res)
	}
}

func testUserGroupBroadcast(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	tab1 := s.connect(t, "u1")
	tab2 := s.connect(t, "u1")
	plant := s.connect(t, "u2", "team:plant-3")
	other := s.connect(t, "u3", "team:plant-4")

	res := s.publish(t, `{"users":["u1","u4","u1"],"notification":{"type":"workorder.assigned","title":"WO-1042","data":{"workOrderId":"WO-1042"}}}`)
	if res.Connections != 2 || res.Delivered != 2 || res.Gone != 0 || res.Failed != 0 || !slices.Equal(res.OfflineUsers, []string{"u4"}) {
		t.Fatalf("publish to users: %+v", res)
	}
	for _, tab := range []*client{tab1, tab2} {
		n := tab.nextOfType(t, "notification")["notification"].(map[string]any)
		if n["id"] != res.ID || n["type"] != "workorder.assigned" || n["title"] != "WO-1042" {
			t.Fatalf("notification %v, want id %s", n, res.ID)
		}
		if data, _ := n["data"].(map[string]any); data["workOrderId"] != "WO-1042" {
			t.Fatalf("notification data %v", n["data"])
		}
	}

	// A group, and a user who is also in it: one frame each.
	res = s.publish(t, `{"users":["u2"],"groups":["team:plant-3"],"notification":{"type":"plant"}}`)
	if res.Connections != 1 || res.Delivered != 1 || len(res.OfflineUsers) != 0 {
		t.Fatalf("publish to a group: %+v", res)
	}
	if n := plant.nextOfType(t, "notification")["notification"].(map[string]any); n["id"] != res.ID {
		t.Fatalf("group notification %v", n)
	}
	// A group name is not a user id.
	res = s.publish(t, `{"groups":["u3"],"notification":{"type":"nobody"}}`)
	if res.Connections != 0 {
		t.Fatalf("publish to group u3: %+v", res)
	}

	res = s.publish(t, `{"broadcast":true,"users":["u9"],"notification":{"type":"all"}}`)
	if res.Connections != 4 || res.Delivered != 4 || !slices.Equal(res.OfflineUsers, []string{"u9"}) {
		t.Fatalf("broadcast: %+v", res)
	}
	for _, c := range []*client{tab1, tab2, plant, other} {
		if n := c.nextOfType(t, "notification")["notification"].(map[string]any); n["id"] != res.ID {
			t.Fatalf("broadcast notification %v", n)
		}
		c.nothingMore(t)
	}
}

func testClosedSocketIsGone(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-gone")
	id := s.logs.ConnectionID(t, "u-gone")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// While open, the Management API reaches it.
	if _, err := s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte(`{"type":"hello"}`),
	}); err != nil {
		t.Fatalf("PostToConnection on an open socket: %v", err)
	}
	c.nextOfType(t, "hello")
	if _, err := s.mgmt.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatalf("GetConnection on an open socket: %v", err)
	}

	if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	// A post answers once queued (PROTOCOL.md §7): one that races the close
	// handshake may still be accepted; once the gateway has seen the close,
	// every post is 410.
	var err error
	eventually(t, "a post after the close answers GoneException (410)", func() bool {
		_, err = s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(id), Data: []byte(`{"type":"late"}`),
		})
		var gone *mgmttypes.GoneException
		return errors.As(err, &gone)
	})
	eventually(t, "the closed connection is no longer counted", func() bool {
		res := s.publish(t, `{"users":["u-gone"],"notification":{"type":"check"}}`)
		return res.Connections == 0 && slices.Equal(res.OfflineUsers, []string{"u-gone"})
	})
}

func testPingPong(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-ping")
	c.send(t, `{"action":"ping","ref":"r-1"}`)
	if m := c.nextOfType(t, "pong"); m["ref"] != "r-1" {
		t.Fatalf("pong %v, want ref r-1", m)
	}
	c.send(t, `{"action":"ping","extra":true}`)
	if m := c.nextOfType(t, "pong"); m["ref"] != nil {
		t.Fatalf("pong %v, want no ref", m)
	}
}

func testErrorFrames(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-err")
	const ulid = "01JD3Y5W8X2K7Q9R4T6V8B0C2D"
	for _, tc := range []struct {
		frame, code, field string
	}{
		{`not json`, "bad_request", ""},
		{`[1,2]`, "bad_request", ""},
		{`"ping"`, "bad_request", ""},
		{`{"ref":"x"}`, "bad_request", "action"},
		{`{"action":5}`, "bad_request", "action"},
		{`{"action":"sync","limit":500}`, "bad_request", "limit"},
		{`{"action":"sync","limit":"10"}`, "bad_request", "limit"},
		{`{"action":"sync","after":"not-a-ulid"}`, "bad_request", "after"},
		{`{"action":"sync","after":"` + ulid + `","cursor":"` + ulid + `"}`, "bad_request", ""},
		{`{"action":"read"}`, "bad_request", ""},
		{`{"action":"dance"}`, "unknown_action", "dance"},
	} {
		c.send(t, tc.frame)
		m := c.nextOfType(t, "error")
		msg, _ := m["message"].(string)
		if m["code"] != tc.code || msg == "" || !strings.Contains(msg, tc.field) {
			t.Errorf("%s: got %v, want code %s and a message naming %q", tc.frame, m, tc.code, tc.field)
		}
	}
	// Errors never close the socket.
	c.send(t, `{"action":"ping","ref":"still-open"}`)
	if m := c.nextOfType(t, "pong"); m["ref"] != "still-open" {
		t.Fatalf("pong %v", m)
	}
	// A binary message does, with 1003, as API Gateway does (PROTOCOL.md §3).
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = c.conn.Write(ctx, websocket.MessageBinary, []byte(`{"action":"ping"}`))
	if code := c.closed(t); code != websocket.StatusUnsupportedData {
		t.Errorf("binary frame: closed with %v, want 1003", code)
	}
}

func testMessageTooBig(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-big")
	big := `{"action":"ping","pad":"` + strings.Repeat("x", 128<<10) + `"}`
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = c.conn.Write(ctx, websocket.MessageText, []byte(big)) // the server may close mid-write
	if status := c.closed(t); status != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want 1009", status)
	}
	eventually(t, "the closed connection is no longer counted", func() bool {
		return s.publish(t, `{"users":["u-big"],"notification":{"type":"check"}}`).Connections == 0
	})
}

func testIdleTimeout(t *testing.T, b backend) {
	s := startStack(t, b, nil, func(o *devstack.Options) { o.IdleTimeout = 300 * time.Millisecond })
	c := s.connect(t, "u-idle")
	if status := c.closed(t); status != websocket.StatusGoingAway {
		t.Fatalf("close status %d, want 1001", status)
	}
	eventually(t, "the idle connection is no longer counted", func() bool {
		return s.publish(t, `{"users":["u-idle"],"notification":{"type":"check"}}`).Connections == 0
	})
}

func testEventInvocation(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-event")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String("PublishFunction"),
		InvocationType: lambdatypes.InvocationTypeEvent,
		Payload:        []byte(`{"users":["u-event"],"notification":{"type":"async.event"}}`),
	})
	if err != nil {
		t.Fatalf("Invoke Event: %v", err)
	}
	if out.StatusCode != http.StatusAccepted {
		t.Fatalf("Event invocation status %d, want 202", out.StatusCode)
	}
	if n := c.nextOfType(t, "notification")["notification"].(map[string]any); n["type"] != "async.event" {
		t.Fatalf("notification %v", n)
	}
}

func testValidationError(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-valid")
	for _, tc := range []struct{ payload, field string }{
		{`{"users":["u-valid"],"notification":{}}`, "type"},
		{`{"user":["u-valid"],"notification":{"type":"x"}}`, "user"},
		{`{"users":[],"notification":{"type":"x"}}`, ""},
		{`{"users":["u-valid"],"notification":{"type":"x","data":[1]}}`, "data"},
	} {
		out := s.invoke(t, tc.payload)
		if out.FunctionError == nil {
			t.Fatalf("%s: no function error: %s", tc.payload, out.Payload)
		}
		var fe struct{ ErrorType, ErrorMessage string }
		if err := json.Unmarshal(out.Payload, &fe); err != nil {
			t.Fatalf("%s: error payload %s: %v", tc.payload, out.Payload, err)
		}
		if fe.ErrorType != "ValidationError" || fe.ErrorMessage == "" || !strings.Contains(fe.ErrorMessage, tc.field) {
			t.Errorf("%s: %+v, want a ValidationError naming %q", tc.payload, fe, tc.field)
		}
	}
	c.nothingMore(t)
}

func testNotJSONPayload(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: []byte(`{"users":`)})
	var invalid *lambdatypes.InvalidRequestContentException
	if !errors.As(err, &invalid) {
		t.Fatalf("Invoke with a payload that is not JSON: %v, want InvalidRequestContentException", err)
	}
	_, err = s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("NoSuchFunction"), Payload: []byte(`{}`)})
	var notFound *lambdatypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("Invoke of an unknown function: %v, want ResourceNotFoundException", err)
	}
}

func testIdempotency(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-idem")
	const payload = `{"users":["u-idem","u-away"],"idempotencyKey":"wo-1042-assigned-v1","notification":{"type":"workorder.assigned"}}`
	first := s.publish(t, payload)
	if first.Duplicate || first.Connections != 1 || first.Delivered != 1 || !slices.Equal(first.OfflineUsers, []string{"u-away"}) {
		t.Fatalf("first publish: %+v", first)
	}
	second := s.publish(t, `{"users":["u-idem"],"idempotencyKey":"wo-1042-assigned-v1","notification":{"type":"other"}}`)
	if !second.Duplicate || second.ID != first.ID || second.Connections != 0 || second.Delivered != 0 || len(second.OfflineUsers) != 0 {
		t.Fatalf("second publish: %+v, want a duplicate of %s with zero counts", second, first.ID)
	}
	if n := c.nextOfType(t, "notification")["notification"].(map[string]any); n["id"] != first.ID {
		t.Fatalf("notification %v", n)
	}
	c.nothingMore(t)
}

func testSyncAfterOffline(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	missed := s.publish(t, `{"users":["u-sync"],"notification":{"type":"while.away","body":"missed"}}`)
	if missed.Connections != 0 || !slices.Equal(missed.OfflineUsers, []string{"u-sync"}) {
		t.Fatalf("publish while offline: %+v", missed)
	}
	c := s.connect(t, "u-sync")
	c.send(t, `{"action":"sync","ref":"s1"}`)
	m := c.nextOfType(t, "synced")
	notes, _ := m["notifications"].([]any)
	if len(notes) != 1 || notes[0].(map[string]any)["id"] != missed.ID || m["cursor"] != missed.ID || m["unread"] != 1.0 {
		t.Fatalf("synced %v, want the missed notification %s", m, missed.ID)
	}
	c.send(t, `{"action":"read","ids":["`+missed.ID+`"]}`)
	if m := c.nextOfType(t, "read"); m["unread"] != 0.0 {
		t.Fatalf("read answer %v", m)
	}
}

func testShutdownDisconnects(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-shutdown")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if status := c.closed(t); status != websocket.StatusGoingAway {
		t.Fatalf("close status %d, want 1001", status)
	}
	// Shutdown waited for $disconnect.
	if s.logs.Count("DisconnectFunction", "disconnected") == 0 {
		t.Fatal("no $disconnect ran for the open socket")
	}
}
