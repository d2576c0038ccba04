package notify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
)

// HandleFrame reports a frame's action (only one the server knows) and the
// code of the error frame it was answered with: DefaultFunction's metrics.
func TestHandleFrameResult(t *testing.T) {
	s, _, sender := newService(t)
	ctx := context.Background()
	connect(t, s, "c-ok", "u1", time.Now())
	for _, tc := range []struct {
		conn, body string
		binary     bool
		want       notify.FrameResult
	}{
		{"c-ok", `{"action":"ping"}`, false, notify.FrameResult{Action: "ping"}},
		{"c-ok", `{"action":"sync"}`, false, notify.FrameResult{Action: "sync"}},
		{"c-ok", `{"action":"read","all":true}`, false, notify.FrameResult{Action: "read"}},
		{"c-ok", `{"action":"sync","limit":0}`, false, notify.FrameResult{Action: "sync", ErrorCode: "bad_request"}},
		{"c-ok", `{"action":"fly"}`, false, notify.FrameResult{ErrorCode: "unknown_action"}},
		{"c-ok", `nope`, false, notify.FrameResult{ErrorCode: "bad_request"}},
		{"c-ok", `{"action":"ping"}`, true, notify.FrameResult{ErrorCode: "bad_request"}},
		// Unknown connection: ping still answers, sync is refused.
		{"c-unknown", `{"action":"ping"}`, false, notify.FrameResult{Action: "ping"}},
		{"c-unknown", `{"action":"sync"}`, false, notify.FrameResult{Action: "sync", ErrorCode: "internal"}},
	} {
		got, err := s.HandleFrame(ctx, sender, tc.conn, []byte(tc.body), tc.binary)
		if err != nil || got != tc.want {
			t.Errorf("%s (binary %v) on %s: %+v, %v; want %+v", tc.body, tc.binary, tc.conn, got, err, tc.want)
		}
	}
}

func TestHandleFrameTokenExpired(t *testing.T) {
	s, _, sender := newService(t)
	ctx := context.Background()
	if err := s.Connect(ctx, nil, notify.ConnectRequest{ID: "c-exp", UserID: "u", ConnectedAt: time.Now(),
		TokenExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.HandleFrame(ctx, sender, "c-exp", []byte(`{"action":"sync","ref":"r"}`), false)
	if err != nil || got != (notify.FrameResult{Action: "sync", ErrorCode: "token_expired"}) {
		t.Errorf("%+v, %v; want sync answered token_expired", got, err)
	}
}

type slowFailingInbox struct {
	*memory.Store
	delay time.Duration
	err   error
}

func (s slowFailingInbox) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, exp time.Time) error {
	time.Sleep(s.delay)
	if s.err != nil {
		return s.err
	}
	return s.Store.AppendNotification(ctx, n, streams, exp)
}

// Publish reports how long the inbox write took, also when it failed; a
// duplicate writes nothing and reports none.
func TestPublishStoreLatency(t *testing.T) {
	store := memory.New()
	s := &notify.Service{Connections: store, Inbox: slowFailingInbox{Store: store, delay: 20 * time.Millisecond},
		Sender: newRecordingSender()}
	res := publish(t, s, `{"users":["u"],"idempotencyKey":"k","notification":{"type":"t"}}`)
	if res.StoreLatency < 20*time.Millisecond || res.StoreLatency > 5*time.Second {
		t.Errorf("StoreLatency %v, want the 20 ms write", res.StoreLatency)
	}
	if dup := publish(t, s, `{"users":["u"],"idempotencyKey":"k","notification":{"type":"t"}}`); !dup.Duplicate || dup.StoreLatency != 0 {
		t.Errorf("duplicate %+v, want no StoreLatency", dup)
	}

	s.Inbox = slowFailingInbox{Store: store, delay: 20 * time.Millisecond, err: errors.New("injected")}
	req, _ := notify.DecodePublishRequest([]byte(`{"users":["u"],"notification":{"type":"t"}}`))
	failed, err := s.Publish(context.Background(), req)
	if err == nil || failed.StoreLatency < 20*time.Millisecond || failed.ID != "" || failed.Delivered != 0 {
		t.Errorf("failed store: %+v, %v; want an error with only the StoreLatency", failed, err)
	}
}
