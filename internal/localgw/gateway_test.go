package localgw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	mgmttypes "github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/localgw"
)

// wait bounds every wait for something the gateway does in the background. It only keeps a
// broken test from hanging; no test asserts how long anything takes.
const wait = 10 * time.Second

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// stack is a gateway with hand-written functions that record what they receive.
type stack struct {
	gw     *localgw.Gateway
	mgmt   *apigatewaymanagementapi.Client
	lambda *awslambda.Client

	connects    chan json.RawMessage
	messages    chan json.RawMessage
	disconnects chan json.RawMessage
	selfPost    chan error // what a $connect that posts to itself got
	published   chan lambdacontext.LambdaContext
}

func awsConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
	}
}

func newStack(t *testing.T, tweak func(*localgw.Config)) *stack {
	t.Helper()
	s := &stack{
		connects:    make(chan json.RawMessage, 100),
		messages:    make(chan json.RawMessage, 100),
		disconnects: make(chan json.RawMessage, 100),
		selfPost:    make(chan error, 10),
		published:   make(chan lambdacontext.LambdaContext, 100),
	}
	post := func(ctx context.Context, id string, data []byte) error {
		_, err := s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(id), Data: data,
		})
		return err
	}

	connect := func(ctx context.Context, raw json.RawMessage) (events.APIGatewayProxyResponse, error) {
		s.connects <- raw
		var ev events.APIGatewayWebsocketProxyRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		if origin := ev.Headers["Origin"]; origin != "" && origin != "https://app.example.com" {
			return events.APIGatewayProxyResponse{StatusCode: 403, Body: "origin refused"}, nil
		}
		switch ev.QueryStringParameters["token"] {
		case "", "bad":
			return events.APIGatewayProxyResponse{StatusCode: 401, Body: "unauthorized"}, nil
		case "crash":
			return events.APIGatewayProxyResponse{}, errors.New("storage down")
		}
		if ev.QueryStringParameters["postself"] != "" {
			s.selfPost <- post(ctx, ev.RequestContext.ConnectionID, []byte("too early"))
		}
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}
	// $default echoes through the Management API, as DefaultFunction answers.
	echo := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) error {
		raw, _ := json.Marshal(ev)
		s.messages <- raw
		body := ev.Body
		if ev.IsBase64Encoded {
			b, _ := base64.StdEncoding.DecodeString(ev.Body)
			body = "binary:" + string(b)
		}
		if body == "fail" {
			return errors.New("echo failed")
		}
		if len(body) > 1000 {
			body = fmt.Sprintf("%d bytes", len(body))
		}
		return post(ctx, ev.RequestContext.ConnectionID, []byte("echo:"+body))
	}
	ping := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) error {
		raw, _ := json.Marshal(ev)
		s.messages <- raw
		return post(ctx, ev.RequestContext.ConnectionID, []byte(`{"type":"pong"}`))
	}
	disconnect := func(ctx context.Context, raw json.RawMessage) error {
		s.disconnects <- raw
		return nil
	}
	type publishRequest struct {
		To       string `json:"to"`
		Text     string `json:"text"`
		Fail     string `json:"fail"`
		Validate bool   `json:"validate"`
	}
	publish := func(ctx context.Context, req publishRequest) (map[string]int, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		s.published <- *lc
		if req.Validate {
			return nil, messages.InvokeResponse_Error{Type: "ValidationError", Message: "notification.type: required"}
		}
		if req.Fail != "" {
			return nil, errors.New(req.Fail)
		}
		if req.To == "" {
			return map[string]int{"delivered": 0}, nil
		}
		if err := post(ctx, req.To, []byte(req.Text)); err != nil {
			return nil, err
		}
		return map[string]int{"delivered": 1}, nil
	}

	cfg := localgw.Config{
		Addr:                     "127.0.0.1:0",
		RouteSelectionExpression: "$request.body.action",
		Routes: map[string]string{
			"$connect":    "ConnectFunction",
			"$disconnect": "DisconnectFunction",
			"$default":    "DefaultFunction",
			"ping":        "PingFunction",
		},
		Functions: map[string]lambda.Handler{
			"ConnectFunction":    lambda.NewHandler(connect),
			"DisconnectFunction": lambda.NewHandler(disconnect),
			"DefaultFunction":    lambda.NewHandler(echo),
			"PingFunction":       lambda.NewHandler(ping),
			"PublishFunction":    lambda.NewHandler(publish),
			"EchoFunction":       lambda.NewHandler(func(s string) (string, error) { return s, nil }),
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if tweak != nil {
		tweak(&cfg)
	}
	gw, err := localgw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	s.gw = gw
	endpoint := "http://" + gw.Addr()
	s.mgmt = apigatewaymanagementapi.NewFromConfig(awsConfig(), func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
	s.lambda = awslambda.NewFromConfig(awsConfig(), func(o *awslambda.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// dial connects with a token, and returns the socket and the connection id $connect saw.
func (s *stack) dial(t *testing.T, query string) (*websocket.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.gw.URL()+"?"+query, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	ev := decodeEvent(t, receive(t, s.connects, "CONNECT event"))
	return c, ev.RequestContext.ConnectionID
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

func decodeEvent(t *testing.T, raw json.RawMessage) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	return ev
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// readClose reads until the server closes the socket and returns the close status.
func readClose(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("socket ended without a close frame: %v", err)
		}
		return ce
	}
}

func isGone(err error) bool {
	var gone *mgmttypes.GoneException
	return errors.As(err, &gone)
}

func (s *stack) getConnection(id string) (*apigatewaymanagementapi.GetConnectionOutput, error) {
	return s.mgmt.GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
}

func TestRefusedUpgrades(t *testing.T) {
	s := newStack(t, nil)
	cases := []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{"bad token", "token=bad", nil, 401},
		{"no token", "", nil, 401},
		{"bad origin", "token=good", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"function error", "token=crash", nil, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, s.gw.URL()+"?"+tc.query, &websocket.DialOptions{HTTPHeader: tc.header})
			if err == nil {
				c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("got %v (%v), want status %d", resp, err, tc.status)
			}
			ev := decodeEvent(t, receive(t, s.connects, "CONNECT event"))
			if _, err := s.getConnection(ev.RequestContext.ConnectionID); !isGone(err) {
				t.Fatalf("GetConnection on a refused connection: %v, want GoneException", err)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.disconnects); n != 0 {
		t.Fatalf("%d $disconnect invocations for refused connections", n)
	}
}

// keySet lists the JSON keys of an event, as dotted paths, without descending into the maps
// that hold request data (headers and query parameters).
func keySet(t *testing.T, raw []byte) []string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			if val == nil {
				continue
			}
			keys = append(keys, prefix+k)
			if sub, ok := val.(map[string]any); ok && (k == "requestContext" || k == "identity") {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", v)
	sort.Strings(keys)
	return keys
}

func compareKeys(t *testing.T, sample string, got []byte) {
	t.Helper()
	want, err := os.ReadFile("testdata/" + sample)
	if err != nil {
		t.Fatal(err)
	}
	if w, g := keySet(t, want), keySet(t, got); !slices.Equal(w, g) {
		t.Errorf("%s: keys differ from AWS's\n got %v\nwant %v\nevent %s", sample, g, w, got)
	}
}

func TestEventShapes(t *testing.T) {
	s := newStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.gw.URL()+"?token=good", &websocket.DialOptions{
		HTTPHeader: http.Header{"User-Agent": {"localgw-test/1.0"}, "Origin": {"https://app.example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	rawConnect := receive(t, s.connects, "CONNECT event")
	compareKeys(t, "connect.json", rawConnect)
	connect := decodeEvent(t, rawConnect)
	rc := connect.RequestContext
	if rc.RouteKey != "$connect" || rc.EventType != "CONNECT" || rc.Stage != "local" || rc.APIID != "local" ||
		rc.DomainName != s.gw.Addr() || rc.MessageDirection != "IN" || rc.RequestID != rc.ExtendedRequestID ||
		rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.UserAgent != "localgw-test/1.0" || rc.ConnectionID == "" {
		t.Errorf("CONNECT requestContext: %+v", rc)
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.RequestTime); err != nil {
		t.Errorf("requestTime %q: %v", rc.RequestTime, err)
	}
	if rc.ConnectedAt <= 0 || rc.RequestTimeEpoch < rc.ConnectedAt {
		t.Errorf("connectedAt %d, requestTimeEpoch %d", rc.ConnectedAt, rc.RequestTimeEpoch)
	}
	if connect.QueryStringParameters["token"] != "good" || !slices.Equal(connect.MultiValueQueryStringParameters["token"], []string{"good"}) {
		t.Errorf("query parameters: %v %v", connect.QueryStringParameters, connect.MultiValueQueryStringParameters)
	}
	if connect.Headers["Origin"] != "https://app.example.com" || connect.Headers["Host"] != s.gw.Addr() ||
		connect.MultiValueHeaders["Sec-Websocket-Version"] == nil && connect.MultiValueHeaders["Sec-WebSocket-Version"] == nil {
		t.Errorf("headers: %v", connect.Headers)
	}

	if err := c.Write(ctx, websocket.MessageText, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != `echo:{"a":1}` {
		t.Fatalf("echo: %q", got)
	}
	rawMessage := receive(t, s.messages, "MESSAGE event")
	compareKeys(t, "message.json", rawMessage)
	msg := decodeEvent(t, rawMessage)
	if msg.RequestContext.EventType != "MESSAGE" || msg.RequestContext.RouteKey != "$default" || msg.Body != `{"a":1}` ||
		msg.IsBase64Encoded || msg.RequestContext.MessageID == nil || msg.RequestContext.ConnectionID != rc.ConnectionID ||
		msg.RequestContext.ConnectedAt != rc.ConnectedAt {
		t.Errorf("MESSAGE event: %s", rawMessage)
	}

	if err := c.Close(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	rawDisconnect := receive(t, s.disconnects, "DISCONNECT event")
	compareKeys(t, "disconnect.json", rawDisconnect)
	disc := decodeEvent(t, rawDisconnect)
	if disc.RequestContext.EventType != "DISCONNECT" || disc.RequestContext.RouteKey != "$disconnect" ||
		disc.RequestContext.DisconnectStatusCode != 4001 || disc.RequestContext.DisconnectReason == nil ||
		*disc.RequestContext.DisconnectReason != "bye" || disc.RequestContext.ConnectionID != rc.ConnectionID ||
		disc.Headers["Host"] != s.gw.Addr() {
		t.Errorf("DISCONNECT event: %s", rawDisconnect)
	}
	if _, err := s.getConnection(rc.ConnectionID); !isGone(err) {
		t.Errorf("GetConnection after close: %v, want GoneException", err)
	}
}

func TestRouteSelection(t *testing.T) {
	s := newStack(t, nil)
	c, _ := s.dial(t, "token=good")
	ctx := context.Background()

	cases := []struct {
		typ   websocket.MessageType
		frame string
		route string
		reply string
	}{
		{websocket.MessageText, `{"action":"ping","ref":"1"}`, "ping", `{"type":"pong"}`},
		{websocket.MessageText, `{"action":"sync"}`, "$default", `echo:{"action":"sync"}`},
		{websocket.MessageText, `{"action":5}`, "$default", `echo:{"action":5}`},
		{websocket.MessageText, `not json`, "$default", `echo:not json`},
		{websocket.MessageText, `{"action":"$connect"}`, "$default", `echo:{"action":"$connect"}`},
	}
	for _, tc := range cases {
		if err := c.Write(ctx, tc.typ, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); got != tc.reply {
			t.Errorf("%q: reply %q, want %q", tc.frame, got, tc.reply)
		}
		ev := decodeEvent(t, receive(t, s.messages, "MESSAGE event"))
		if ev.RequestContext.RouteKey != tc.route {
			t.Errorf("%q: route %q, want %q", tc.frame, ev.RequestContext.RouteKey, tc.route)
		}
		if ev.IsBase64Encoded {
			t.Errorf("%q: isBase64Encoded", tc.frame)
		}
	}

	// A failing integration answers with API Gateway's own error frame; the socket stays open.
	if err := c.Write(ctx, websocket.MessageText, []byte("fail")); err != nil {
		t.Fatal(err)
	}
	receive(t, s.messages, "MESSAGE event")
	var gwErr map[string]string
	if err := json.Unmarshal([]byte(read(t, c)), &gwErr); err != nil || gwErr["message"] != "Internal server error" {
		t.Errorf("integration failure frame: %v %v", gwErr, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "echo:still open" {
		t.Errorf("after a failure: %q", got)
	}
}

func TestNoDefaultRoute(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) { delete(cfg.Routes, "$default") })
	c, id := s.dial(t, "token=good")
	if err := c.Write(context.Background(), websocket.MessageText, []byte(`{"action":"unknown"}`)); err != nil {
		t.Fatal(err)
	}
	var frame map[string]string
	if err := json.Unmarshal([]byte(read(t, c)), &frame); err != nil || frame["message"] != "Forbidden" || frame["connectionId"] != id {
		t.Errorf("unrouted message frame: %v %v", frame, err)
	}
}

func TestManagementAPI(t *testing.T) {
	s := newStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.gw.URL()+"?token=good", &websocket.DialOptions{
		HTTPHeader: http.Header{"User-Agent": {"agent/2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	id := decodeEvent(t, receive(t, s.connects, "CONNECT event")).RequestContext.ConnectionID

	// POST delivers one text frame.
	if _, err := s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte(`{"type":"notification"}`),
	}); err != nil {
		t.Fatal(err)
	}
	typ, b, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(b) != `{"type":"notification"}` {
		t.Fatalf("posted frame: %v %q %v", typ, b, err)
	}

	// A stage-prefixed endpoint (https://API.execute-api.REGION.amazonaws.com/STAGE) works too.
	staged := apigatewaymanagementapi.NewFromConfig(awsConfig(), func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String("http://" + s.gw.Addr() + "/local")
	})
	if _, err := staged.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("staged"),
	}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "staged" {
		t.Fatalf("staged post: %q", got)
	}

	// Over 128 KiB: 413.
	_, err = s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: bytes.Repeat([]byte("x"), 128<<10+1),
	})
	var tooLarge *mgmttypes.PayloadTooLargeException
	if !errors.As(err, &tooLarge) {
		t.Fatalf("oversized post: %v, want PayloadTooLargeException", err)
	}

	// GET: the SDK deserializes every field.
	info, err := s.getConnection(id)
	if err != nil {
		t.Fatal(err)
	}
	if info.ConnectedAt == nil || info.LastActiveAt == nil || info.Identity == nil ||
		aws.ToString(info.Identity.SourceIp) != "127.0.0.1" || aws.ToString(info.Identity.UserAgent) != "agent/2" {
		t.Fatalf("GetConnection: %+v %+v", info, info.Identity)
	}
	if info.LastActiveAt.Before(*info.ConnectedAt) || time.Since(*info.ConnectedAt) > time.Minute {
		t.Errorf("connectedAt %v, lastActiveAt %v", info.ConnectedAt, info.LastActiveAt)
	}

	// Unknown ids are gone, for every method.
	if _, err := s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String("NoSuchConn1234="), Data: []byte("x"),
	}); !isGone(err) {
		t.Errorf("post to unknown id: %v", err)
	}

	// DELETE closes the socket, fires $disconnect with a status code, and the id is gone.
	if _, err := s.mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if ce := readClose(t, c); ce.Code != websocket.StatusNormalClosure {
		t.Errorf("DELETE closed with %v", ce)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != 1000 {
		t.Errorf("DISCONNECT after DELETE: %+v", disc.RequestContext)
	}
	if _, err := s.getConnection(id); !isGone(err) {
		t.Errorf("GetConnection after DELETE: %v", err)
	}
	if _, err := s.mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); !isGone(err) {
		t.Errorf("second DELETE: %v", err)
	}
}

func TestManagementPathEscaping(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	for _, p := range []string{"/@connections/" + url.PathEscape(id), "/%40connections/" + strings.ReplaceAll(id, "=", "%3D")} {
		resp, err := http.Post("http://"+s.gw.Addr()+p, "application/octet-stream", strings.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d", p, resp.StatusCode)
		}
		if got := read(t, c); got != p {
			t.Fatalf("POST %s delivered %q", p, got)
		}
	}
	resp, err := http.Post("http://"+s.gw.Addr()+"/@connections/unknown", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 410 || resp.Header.Get("x-amzn-ErrorType") != "GoneException" || body["message"] == nil {
		t.Errorf("unknown id: %d %v %v", resp.StatusCode, resp.Header, body)
	}
}

func TestPostDuringConnectIsGone(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good&postself=1")
	if err := receive(t, s.selfPost, "post from $connect"); !isGone(err) {
		t.Fatalf("post during $connect: %v, want GoneException", err)
	}
	// Once $connect answered, the same id is reachable.
	if _, err := s.mgmt.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("now"),
	}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "now" {
		t.Fatalf("got %q", got)
	}
}

// API Gateway accepts no binary frames from clients: a binary message of any
// size closes the socket with 1003 and reaches no function.
func TestBinaryMessageCloses1003(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	_ = c.Write(context.Background(), websocket.MessageBinary, []byte(`{"action":"ping"}`))
	if ce := readClose(t, c); ce.Code != websocket.StatusUnsupportedData {
		t.Errorf("closed with %v, want 1003", ce)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != int64(websocket.StatusUnsupportedData) {
		t.Errorf("$disconnect %+v, want connection %s with 1003", disc.RequestContext, id)
	}
	select {
	case m := <-s.messages:
		t.Errorf("a binary message reached a function: %s", m)
	default:
	}
}

func TestMessageTooBig(t *testing.T) {
	for _, tc := range []struct {
		typ  websocket.MessageType
		code websocket.StatusCode
	}{
		{websocket.MessageText, websocket.StatusMessageTooBig},
		{websocket.MessageBinary, websocket.StatusUnsupportedData},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			s := newStack(t, nil)
			c, id := s.dial(t, "token=good")
			// Exactly the limit still passes.
			limit := bytes.Repeat([]byte("a"), 128<<10)
			if err := c.Write(context.Background(), websocket.MessageText, limit); err != nil {
				t.Fatal(err)
			}
			if got, want := read(t, c), fmt.Sprintf("echo:%d bytes", len(limit)); got != want {
				t.Fatalf("echo of a 128 KiB message: %q, want %q", got, want)
			}
			receive(t, s.messages, "MESSAGE event")

			// Writing may fail once the server closed: what matters is the close it sent.
			_ = c.Write(context.Background(), tc.typ, append(limit, 'b'))
			if ce := readClose(t, c); ce.Code != tc.code {
				t.Errorf("closed with %v, want %v", ce, tc.code)
			}
			disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
			if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != int64(tc.code) {
				t.Errorf("DISCONNECT: %+v", disc.RequestContext)
			}
			if len(s.messages) != 0 {
				t.Errorf("the oversized message reached a function")
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) { cfg.IdleTimeout = 300 * time.Millisecond })
	c, id := s.dial(t, "token=good")
	if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway {
		t.Errorf("idle close: %v", ce)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("DISCONNECT: %+v", disc.RequestContext)
	}
	if _, err := s.getConnection(id); !isGone(err) {
		t.Errorf("GetConnection after idle close: %v", err)
	}
}

func TestMaxDuration(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) { cfg.MaxDuration = 300 * time.Millisecond }) // idle: 10 min
	c, id := s.dial(t, "token=good")
	if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway {
		t.Errorf("max duration close: %v", ce)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("DISCONNECT: %+v", disc.RequestContext)
	}
}

func TestClientDrop(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	c.CloseNow() // no close frame
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != id || disc.RequestContext.DisconnectStatusCode != 1006 {
		t.Errorf("DISCONNECT after a drop: %+v", disc.RequestContext)
	}
}

func TestShutdownDisconnectsEverySocket(t *testing.T) {
	s := newStack(t, nil)
	type closed struct {
		id   string
		code websocket.StatusCode
	}
	closes := make(chan closed, 3)
	ids := map[string]bool{}
	for range 3 {
		c, id := s.dial(t, "token=good")
		ids[id] = true
		go func() { // clients read, as browsers do, so they answer the close handshake
			_, _, err := c.Read(context.Background())
			closes <- closed{id, websocket.CloseStatus(err)}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returned after every $disconnect ran.
	if len(s.disconnects) != len(ids) {
		t.Fatalf("%d $disconnect invocations for %d sockets", len(s.disconnects), len(ids))
	}
	for range ids {
		disc := decodeEvent(t, <-s.disconnects)
		if !ids[disc.RequestContext.ConnectionID] || disc.RequestContext.DisconnectStatusCode != 1001 {
			t.Errorf("DISCONNECT: %+v", disc.RequestContext)
		}
		if c := receive(t, closes, "client close"); c.code != websocket.StatusGoingAway {
			t.Errorf("%s closed with %v", c.id, c.code)
		}
	}
	if _, _, err := websocket.Dial(ctx, s.gw.URL()+"?token=good", nil); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
}

func TestInvokeRequestResponse(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	ctx := context.Background()
	payload, _ := json.Marshal(map[string]string{"to": id, "text": "hello"})
	for _, name := range []string{
		"PublishFunction",
		"arn:aws:lambda:us-east-1:000000000000:function:PublishFunction",
		"arn:aws:lambda:us-east-1:000000000000:function:PublishFunction:$LATEST",
	} {
		out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(name), Payload: payload})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.StatusCode != 200 || out.FunctionError != nil || string(out.Payload) != `{"delivered":1}` ||
			aws.ToString(out.ExecutedVersion) != "$LATEST" {
			t.Errorf("%s: %d %v %s %v", name, out.StatusCode, out.FunctionError, out.Payload, out.ExecutedVersion)
		}
		if got := read(t, c); got != "hello" {
			t.Errorf("delivered %q", got)
		}
		lc := receive(t, s.published, "invocation")
		if lc.AwsRequestID == "" || lc.InvokedFunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:PublishFunction" {
			t.Errorf("lambda context: %+v", lc)
		}
	}
}

func TestInvokeEventAndDryRun(t *testing.T) {
	s := newStack(t, nil)
	ctx := context.Background()
	out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String("PublishFunction"), Payload: []byte(`{}`), InvocationType: lambdatypes.InvocationTypeEvent,
	})
	if err != nil || out.StatusCode != 202 || len(out.Payload) != 0 {
		t.Fatalf("Event: %v %+v", err, out)
	}
	receive(t, s.published, "Event invocation")

	out, err = s.lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String("PublishFunction"), Payload: []byte(`{}`), InvocationType: lambdatypes.InvocationTypeDryRun,
	})
	if err != nil || out.StatusCode != 204 {
		t.Fatalf("DryRun: %v %+v", err, out)
	}
	if len(s.published) != 0 {
		t.Error("DryRun ran the function")
	}
}

func TestInvokeShutdownWaitsForEvents(t *testing.T) {
	release := make(chan struct{})
	done := make(chan struct{})
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.Functions["SlowFunction"] = lambda.NewHandler(func() error {
			<-release
			close(done)
			return nil
		})
	})
	out, err := s.lambda.Invoke(context.Background(), &awslambda.InvokeInput{
		FunctionName: aws.String("SlowFunction"), InvocationType: lambdatypes.InvocationTypeEvent,
	})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("Event: %v %+v", err, out)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.gw.Shutdown(context.Background()) }()
	close(release)
	if err := receive(t, shut, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("Shutdown returned before the Event invocation finished")
	}
}

func TestInvokeErrors(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.Functions["PanicFunction"] = lambda.NewHandler(func(json.RawMessage) error { panic("boom") })
	})
	ctx := context.Background()

	out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("PanicFunction"), Payload: []byte(`{}`)})
	if err != nil || aws.ToString(out.FunctionError) != "Unhandled" || !bytes.Contains(out.Payload, []byte(`"errorType":"string"`)) {
		t.Errorf("panic: %v %s", err, out.Payload)
	}

	out, err = s.lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String("PublishFunction"), Payload: []byte(`{"validate":true}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	var fnErr struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if err := json.Unmarshal(out.Payload, &fnErr); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || fnErr.ErrorType != "ValidationError" ||
		fnErr.ErrorMessage != "notification.type: required" {
		t.Errorf("ValidationError: %v %s", out.FunctionError, out.Payload)
	}

	out, err = s.lambda.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName: aws.String("PublishFunction"), Payload: []byte(`{"fail":"table missing"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Payload, &fnErr); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || fnErr.ErrorType != "errorString" || fnErr.ErrorMessage != "table missing" {
		t.Errorf("plain error: %v %s", out.FunctionError, out.Payload)
	}

	_, err = s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: []byte(`{not json`)})
	var invalid *lambdatypes.InvalidRequestContentException
	if !errors.As(err, &invalid) {
		t.Errorf("invalid JSON: %v, want InvalidRequestContentException", err)
	} else if !strings.Contains(aws.ToString(invalid.Message), "Could not parse request body into json") {
		t.Errorf("invalid JSON message: %q", aws.ToString(invalid.Message))
	}

	_, err = s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("NoSuchFunction"), Payload: []byte(`{}`)})
	var notFound *lambdatypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("unknown function: %v, want ResourceNotFoundException", err)
	}
	if len(s.published) != 2 {
		t.Errorf("%d invocations, want 2 (refused payloads never reach the function)", len(s.published))
	}
}

// TestConcurrentInvocations checks that concurrent invocations of one lambda.NewHandler handler
// each get their own output (aws-lambda-go returns pooled storage; see package doc).
func TestConcurrentInvocations(t *testing.T) {
	s := newStack(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for j := range 10 {
				want := fmt.Sprintf("%q", strings.Repeat(fmt.Sprint(i), j+i))
				out, err := s.lambda.Invoke(context.Background(), &awslambda.InvokeInput{
					FunctionName: aws.String("EchoFunction"), Payload: []byte(want),
				})
				if err != nil {
					errs <- err
					return
				}
				if string(out.Payload) != want {
					errs <- fmt.Errorf("sent %s, got %s", want, out.Payload)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStaticAndUnknownPaths(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.Static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "demo page") })
	})
	resp, err := http.Get("http://" + s.gw.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "demo page" {
		t.Errorf("GET /: %d %q", resp.StatusCode, b)
	}
	// The WebSocket API is still on / for upgrades.
	s.dial(t, "token=good")
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := lambda.NewHandler(func() error { return nil })
	for name, cfg := range map[string]localgw.Config{
		"route to missing function": {Routes: map[string]string{"$default": "Missing"}},
		"unsupported expression":    {RouteSelectionExpression: "$request.header.x"},
		"nil handler":               {Functions: map[string]lambda.Handler{"F": nil}},
	} {
		if _, err := localgw.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := localgw.New(localgw.Config{Functions: map[string]lambda.Handler{"F": h}}); err != nil {
		t.Error(err)
	}
}
