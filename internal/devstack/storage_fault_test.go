package devstack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/workorders/notify/internal/testenv"
)

// answerBound is docs/PROTOCOL.md §4's promise: a publish answers within 15 s
// whatever storage does. (A bound the contract gives, not a speed target.)
const answerBound = 15 * time.Second

// TestStorageFaults puts a misbehaving proxy between the stack and dynalite:
// a held idempotency claim, a stalled store write, a refused connection.
func TestStorageFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s *stack, p *testenv.Proxy)
	}{
		{"HeldClaim", testHeldClaim},
		{"StalledStore", testStalledStore},
		{"RefusedConnection", testRefusedConnection},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := testenv.NewProxy(t, testenv.Dynalite(t))
			s := startStack(t, backend{name: "proxied", dynamodb: func(testing.TB) string { return proxy.URL() }}, nil, nil)
			tc.run(t, s, proxy)
		})
	}
}

// timedInvoke invokes PublishFunction and fails the test if the answer
// comes later than the contract's bound.
func (s *stack) timedInvoke(t *testing.T, payload string) *lambda.InvokeOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("Invoke %s: %v", payload, err)
	}
	took := time.Since(start)
	t.Logf("publish answered after %s", took.Round(time.Millisecond))
	if took > answerBound {
		t.Errorf("publish answered after %s, later than the contract's %s", took.Round(time.Millisecond), answerBound)
	}
	return out
}

// wantRetryableError checks a publish failed with a function error other
// than ValidationError (nothing sent; a retry may succeed).
func wantRetryableError(t *testing.T, out *lambda.InvokeOutput, what string) {
	t.Helper()
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(out.Payload, &e)
	if out.FunctionError == nil || e.ErrorType == "" || e.ErrorType == "ValidationError" {
		t.Fatalf("%s: %s, want a retryable function error", what, out.Payload)
	}
	if !strings.Contains(e.ErrorMessage, "nothing was sent") {
		t.Errorf("%s: message %q does not say nothing was sent", what, e.ErrorMessage)
	}
}

// The case: the idempotency claim's answer is held for 35 s. The
// first call answers at once with an error; the caller's retry at +16 s
// publishes; when the held answer finally arrives, nothing more happens:
// one id stored, one frame sent, nothing missed by a resuming client.
func testHeldClaim(t *testing.T, s *stack, p *testenv.Proxy) {
	c := s.connect(t, "u-held")
	body := `{"users":["u-held"],"idempotencyKey":"wo-1042-assigned-v1","notification":{"type":"workorder.assigned","title":"held"}}`
	held := p.Add(&testenv.ProxyRule{Operation: "PutItem", Contains: "idem#wo-1042-assigned-v1", Hold: 35 * time.Second, Times: 1})
	start := time.Now()
	wantRetryableError(t, s.timedInvoke(t, body), "publish with a held claim")

	time.Sleep(time.Until(start.Add(16 * time.Second)))
	res := s.publish(t, body)
	if res.Duplicate || res.Delivered != 1 {
		t.Fatalf("retry at +16 s = %+v, want it to publish", res)
	}
	if got := c.live(t); got != res.ID {
		t.Fatalf("received %s, want %s", got, res.ID)
	}
	// Another notification at +32 s; a client resuming after it must still
	// be complete once the held answer has come and gone (+35 s).
	time.Sleep(time.Until(start.Add(32 * time.Second)))
	later := s.publish(t, `{"users":["u-held"],"notification":{"type":"t","title":"later"}}`)
	c.live(t)
	time.Sleep(time.Until(start.Add(36 * time.Second)))
	p.Remove(held)

	if again := s.publish(t, body); !again.Duplicate || again.ID != res.ID {
		t.Errorf("repeat after the held answer = %+v, want duplicate of %s", again, res.ID)
	}
	c.nothingMore(t)
	sy := c.sync(t, `{"action":"sync"}`, "")
	if ids := noteIDs(sy.Notifications); len(ids) != 2 || ids[0] != res.ID || ids[1] != later.ID {
		t.Errorf("inbox = %v, want exactly [%s %s]", ids, res.ID, later.ID)
	}
	resumed := c.sync(t, `{"action":"sync","after":"`+later.ID+`"}`, "")
	for _, n := range resumed.Notifications {
		if n.ID != res.ID && n.ID != later.ID {
			t.Errorf("resuming after %s brought %s, which was never published", later.ID, n.ID)
		}
	}
}

// A stalled BatchWriteItem (the inbox write) fails the publish within the
// bound, keyed or not, and nothing is sent; once storage answers again, a
// retry with the key publishes once.
func testStalledStore(t *testing.T, s *stack, p *testenv.Proxy) {
	c := s.connect(t, "u-stall") // before the stall: connecting writes too
	stall := p.Add(&testenv.ProxyRule{Operation: "BatchWriteItem", Stall: true})
	keyed := `{"users":["u-stall"],"idempotencyKey":"wo-9-v1","notification":{"type":"t","title":"keyed"}}`
	wantRetryableError(t, s.timedInvoke(t, `{"users":["u-stall"],"notification":{"type":"t"}}`), "unkeyed publish, store stalled")
	wantRetryableError(t, s.timedInvoke(t, keyed), "keyed publish, store stalled")
	// $connect answers too, within API Gateway's 29 s integration timeout
	// (the dial's own limit is shorter), and stores nothing.
	if cl, status, _ := s.dial(t, s.token(t, "u-stall-new"), nil); cl != nil || status != 500 {
		t.Errorf("connect with the store stalled: status %d, want 500", status)
	}
	p.Remove(stall)

	// The abandoned claim frees itself (released, or its lease runs out).
	var res publishResult
	eventually(t, "a retry with the key publishes", func() bool {
		out := s.invoke(t, keyed)
		if out.FunctionError != nil {
			return false
		}
		return json.Unmarshal(out.Payload, &res) == nil
	})
	if res.Duplicate || res.Delivered != 1 {
		t.Fatalf("retry = %+v, want a first publish", res)
	}
	if got := c.live(t); got != res.ID {
		t.Errorf("received %s, want %s", got, res.ID)
	}
	c.nothingMore(t)
	if res := s.publish(t, `{"users":["u-stall-new"],"notification":{"type":"t"}}`); res.Connections != 0 {
		t.Errorf("the connect refused during the stall left a connection stored: %+v", res)
	}
}

// With DynamoDB unreachable, publishes fail within the bound and connects
// are refused with 500, storing nothing; when it is back, all works.
func testRefusedConnection(t *testing.T, s *stack, p *testenv.Proxy) {
	c := s.connect(t, "u-down")
	p.Refuse()
	wantRetryableError(t, s.timedInvoke(t, `{"users":["u-down"],"notification":{"type":"t"}}`), "unkeyed publish, storage down")
	wantRetryableError(t, s.timedInvoke(t, `{"users":["u-down"],"idempotencyKey":"k-down","notification":{"type":"t"}}`), "keyed publish, storage down")
	if cl, status, _ := s.dial(t, s.token(t, "u-down-2"), nil); cl != nil || status != 500 {
		t.Errorf("connect with storage down: status %d, want 500", status)
	}
	p.Accept(t)
	res := s.publish(t, `{"users":["u-down","u-down-2"],"idempotencyKey":"k-down","notification":{"type":"t"}}`)
	if res.Duplicate || res.Delivered != 1 || len(res.OfflineUsers) != 1 || res.OfflineUsers[0] != "u-down-2" {
		t.Errorf("publish when storage is back = %+v, want delivered to u-down only (the refused connect stored nothing)", res)
	}
	c.live(t)
}
