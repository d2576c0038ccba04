package devstack_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workorders/notify/internal/devstack"
)

// TestHardeningE2E checks docs/PROTOCOL.md v1.1 §2–§5 from outside, over real
// sockets and the SDK's Lambda client, in memory and on DynamoDB: the
// per-user cap, disconnect and revocation, token lifetime, repeated keys
// and the read answer on every socket.
func TestHardeningE2E(t *testing.T) {
	runSuite(t, []suiteCase{
		{"ConnectionCap", testConnectionCap},
		{"DisconnectAndRevoke", testDisconnectAndRevoke},
		{"DisconnectGroup", testDisconnectGroup},
		{"TokenExpiry", testTokenExpiry},
		{"RepeatedKeys", testRepeatedKeys},
		{"ReadReachesEverySocket", testReadReachesEverySocket},
	})
}

// signed mints a token of the stack's secret for sub, issued at iat and
// expiring at exp.
func (s *stack) signed(t *testing.T, sub string, iat, exp time.Time) string {
	t.Helper()
	return mustSign(t, devstack.TokenClaims{
		Secret: s.FunctionEnv("ConnectFunction")["JWT_SECRET"], Subject: sub, Now: iat, TTL: exp.Sub(iat),
	})
}

// disconnected reads the next frame and checks it is the `disconnected`
// frame of code (and reason, "" for none), then that the socket closes.
func (c *client) wantDisconnected(t *testing.T, code, reason string) {
	t.Helper()
	f := c.nextOfType(t, "disconnected")
	if f["code"] != code {
		t.Errorf("disconnected frame %v, want code %q", f, code)
	}
	if got, has := f["reason"]; (reason == "" && has) || (reason != "" && got != reason) {
		t.Errorf("disconnected frame %v, want reason %q", f, reason)
	}
	if _, extra := f["message"]; extra || len(f) > 3 {
		t.Errorf("disconnected frame %v has fields beyond type, code, reason", f)
	}
	c.closed(t)
}

func testConnectionCap(t *testing.T, b backend) {
	s := startStack(t, b, map[string]string{"MAX_CONNECTIONS_PER_USER": "2"}, nil)
	first := s.connect(t, "u-cap")
	time.Sleep(5 * time.Millisecond) // connect times in order, to the millisecond
	second := s.connect(t, "u-cap")
	other := s.connect(t, "u-cap-other")
	time.Sleep(5 * time.Millisecond)
	third := s.connect(t, "u-cap")
	first.wantDisconnected(t, "too_many_connections", "")
	second.nothingMore(t)
	third.nothingMore(t)
	other.nothingMore(t)
	res := s.publish(t, `{"users":["u-cap"],"notification":{"type":"t"}}`)
	if res.Connections != 2 || res.Delivered != 2 {
		t.Errorf("publish after the cap = %+v, want the 2 remaining sockets", res)
	}
	second.nextOfType(t, "notification")
	third.nextOfType(t, "notification")
}

// disconnectResult is the disconnect request's answer, decoded strictly.
func (s *stack) disconnect(t *testing.T, payload string) map[string]int {
	t.Helper()
	out := s.invoke(t, payload)
	if out.FunctionError != nil {
		t.Fatalf("disconnect %s: function error %s: %s", payload, *out.FunctionError, out.Payload)
	}
	var res map[string]int
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		t.Fatalf("disconnect answer %s: %v", out.Payload, err)
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"connections", "disconnected", "failed", "gone"}) {
		t.Fatalf("disconnect answer %s: fields %v, want connections, disconnected, gone, failed", out.Payload, keys)
	}
	return res
}

func testDisconnectAndRevoke(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	issued := time.Now().Add(-5 * time.Second)
	oldToken := s.signed(t, "u-rev", issued, issued.Add(time.Hour))
	var tabs []*client
	for range 2 {
		c, status, body := s.dial(t, oldToken, nil)
		if c == nil {
			t.Fatalf("connect: %d %s", status, body)
		}
		tabs = append(tabs, c)
	}
	bystander := s.connect(t, "u-rev-other")

	res := s.disconnect(t, `{"users":["u-rev"],"disconnect":{"reason":"signed out"}}`)
	if res["connections"] != 2 || res["disconnected"] != 2 || res["gone"] != 0 || res["failed"] != 0 {
		t.Errorf("disconnect = %v, want 2 connections, 2 disconnected", res)
	}
	for _, c := range tabs {
		c.wantDisconnected(t, "revoked", "signed out")
	}
	bystander.nothingMore(t)

	// The old token is refused now; one issued after the request is not.
	if c, status, body := s.dial(t, oldToken, nil); c != nil || status != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("old token after revocation: status %d %s, want 401 naming the revocation", status, body)
	}
	time.Sleep(1100 * time.Millisecond) // into the next second
	fresh := s.signed(t, "u-rev", time.Now(), time.Now().Add(time.Hour))
	c, status, body := s.dial(t, fresh, nil)
	if c == nil {
		t.Fatalf("fresh token after revocation: refused %d %s", status, body)
	}
	if got := s.publish(t, `{"users":["u-rev"],"notification":{"type":"t"}}`); got.Delivered != 1 {
		t.Errorf("publish to the reconnected user = %+v", got)
	}
	c.nextOfType(t, "notification")

	// Nobody connected: zero counts, and the user is revoked all the same.
	if res := s.disconnect(t, `{"users":["u-rev-nobody"],"disconnect":{}}`); res["connections"] != 0 {
		t.Errorf("disconnect of an offline user = %v", res)
	}
	nobody := s.signed(t, "u-rev-nobody", issued, issued.Add(time.Hour))
	if c, status, _ := s.dial(t, nobody, nil); c != nil || status != http.StatusUnauthorized {
		t.Errorf("offline user's old token: status %d, want 401", status)
	}
}

func testDisconnectGroup(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	member := s.connect(t, "u-grp", "team:grp")
	outsider := s.connect(t, "u-grp-out")
	res := s.disconnect(t, `{"groups":["team:grp"],"disconnect":{"reason":"groups changed"}}`)
	if res["connections"] != 1 || res["disconnected"] != 1 {
		t.Errorf("disconnect = %v, want 1 disconnected", res)
	}
	member.wantDisconnected(t, "revoked", "groups changed")
	outsider.nothingMore(t)
	// Groups only close sockets: the member reconnects with its old token.
	again := s.connect(t, "u-grp", "team:grp")
	again.nothingMore(t)

	// An invalid disconnect request is a ValidationError.
	out := s.invoke(t, `{"users":["u-grp"],"idempotencyKey":"k","disconnect":{}}`)
	if out.FunctionError == nil || !strings.Contains(string(out.Payload), `"errorType":"ValidationError"`) {
		t.Errorf("disconnect with an idempotencyKey: %s, want a ValidationError", out.Payload)
	}
}

// A token whose exp lies 50 s in the past still connects (60 s of clock
// skew); 10 s later, exp + 60 s has passed: the next frame is answered
// token_expired and the socket closes, and a publish closes the other
// socket instead of delivering, counting it gone.
func testTokenExpiry(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	exp := time.Now().Add(-50 * time.Second)
	tok := s.signed(t, "u-exp", exp.Add(-time.Hour), exp)
	talker, status, body := s.dial(t, tok, nil)
	if talker == nil {
		t.Fatalf("connect within the skew: %d %s", status, body)
	}
	listener, _, _ := s.dial(t, tok, nil)
	if listener == nil {
		t.Fatal("second connect refused")
	}
	valid := s.connect(t, "u-exp")
	talker.send(t, `{"action":"ping","ref":"before"}`)
	if f := talker.nextOfType(t, "pong"); f["ref"] != "before" {
		t.Fatalf("pong %v", f)
	}

	time.Sleep(time.Until(exp.Add(61 * time.Second)))
	talker.send(t, `{"action":"ping","ref":"after"}`)
	f := talker.nextOfType(t, "error")
	if f["code"] != "token_expired" || f["ref"] != "after" || f["message"] == "" {
		t.Errorf("frame after expiry = %v, want token_expired echoing the ref", f)
	}
	talker.closed(t)

	// The talker's $disconnect may not have removed it yet: then the
	// publish reaches it too, and it counts as gone as well.
	res := s.publish(t, `{"users":["u-exp"],"notification":{"type":"t"}}`)
	if res.Delivered != 1 || res.Gone < 1 || res.Gone > 2 || res.Failed != 0 || res.Connections != res.Delivered+res.Gone {
		t.Errorf("publish = %+v, want 1 delivered and the expired listener (and maybe the talker) gone", res)
	}
	listener.closed(t)
	valid.nextOfType(t, "notification")
}

func testRepeatedKeys(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-dup")
	c.send(t, `{"action":"ping","action":"sync","ref":"r"}`)
	if f := c.nextOfType(t, "error"); f["code"] != "bad_request" || f["ref"] != "r" || !strings.Contains(fmt.Sprint(f["message"]), `"action"`) {
		t.Errorf("repeated action = %v, want bad_request naming action", f)
	}
	out := s.invoke(t, `{"broadcast":false,"broadcast":true,"notification":{"type":"t"}}`)
	if out.FunctionError == nil || !strings.Contains(string(out.Payload), `"errorType":"ValidationError"`) || !strings.Contains(string(out.Payload), "broadcast") {
		t.Errorf("repeated broadcast: %s, want a ValidationError naming broadcast", out.Payload)
	}
	c.nothingMore(t)
}

// With a 25 ms Management API round trip the `read` answer still reaches
// every socket of the user, the asking one with its ref.
func testReadReachesEverySocket(t *testing.T, b backend) {
	s := startStack(t, b, nil, func(o *devstack.Options) { o.PostDelay = 25 * time.Millisecond })
	var tabs []*client
	for range 20 {
		tabs = append(tabs, s.connect(t, "u-read"))
	}
	res := s.publish(t, `{"users":["u-read"],"notification":{"type":"t"}}`)
	if res.Delivered != 20 {
		t.Fatalf("publish = %+v, want 20 delivered", res)
	}
	for _, c := range tabs {
		c.nextOfType(t, "notification")
	}
	tabs[0].send(t, `{"action":"read","all":true,"ref":"mine"}`)
	for i, c := range tabs {
		f := c.nextOfType(t, "read")
		if f["unread"] != float64(0) || (i == 0) != (f["ref"] == "mine") {
			t.Errorf("tab %d read answer %v", i, f)
		}
	}
}
