package localgw_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/localgw"
)

// Connection ids look like AWS's ("L0SM9cOFvHcCIhw="): 16 characters, one trailing '='.
func TestConnectionIDShape(t *testing.T) {
	s := newStack(t, nil)
	seen := map[string]bool{}
	for range 20 {
		_, id := s.dial(t, "token=good")
		b, err := base64.StdEncoding.DecodeString(id)
		if len(id) != 16 || !strings.HasSuffix(id, "=") || strings.HasSuffix(id, "==") ||
			strings.ContainsAny(id, "+/") || err != nil || len(b) != 11 || seen[id] {
			t.Fatalf("connection id %q (%d bytes decoded, %v)", id, len(b), err)
		}
		seen[id] = true
	}
}

func (s *stack) post(ctx context.Context, id string, data []byte) error {
	_, err := s.mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: data,
	})
	return err
}

// Valid UTF-8 goes out as a text frame, anything else as a binary frame.
func TestPostedFrameTypes(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	ctx := context.Background()
	for _, tc := range []struct {
		data []byte
		typ  websocket.MessageType
	}{
		{[]byte(`{"title":"Pompe P-7 fuit à l'usine 3 ✓"}`), websocket.MessageText},
		{[]byte{0xff, 0xfe, 0x00, 'x'}, websocket.MessageBinary},
		{[]byte("caf\xc3"), websocket.MessageBinary}, // truncated UTF-8 sequence
		{[]byte("plain"), websocket.MessageText},
	} {
		if err := s.post(ctx, id, tc.data); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		typ, b, err := c.Read(rctx)
		cancel()
		if err != nil || typ != tc.typ || string(b) != string(tc.data) {
			t.Fatalf("posted %q: got %v %q %v, want %v", tc.data, typ, b, err, tc.typ)
		}
	}
}

// Frames posted to one connection go out in order, and a DELETE after POSTs closes the socket
// after they were sent.
func TestPostsThenDeleteInOrder(t *testing.T) {
	s := newStack(t, nil)
	c, id := s.dial(t, "token=good")
	ctx := context.Background()
	const n = 200
	for i := range n {
		data := []byte(fmt.Sprintf("frame %d", i))
		if i%7 == 3 {
			data = append([]byte{0xff}, data...) // binary frames share the order
		}
		if err := s.post(ctx, id, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		got := read(t, c)
		if want := fmt.Sprintf("frame %d", i); strings.TrimPrefix(got, "\xff") != want {
			t.Fatalf("frame %d: got %q", i, got)
		}
	}
	if ce := readClose(t, c); ce.Code != websocket.StatusNormalClosure {
		t.Fatalf("close after the frames: %v", ce)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.DisconnectStatusCode != 1000 {
		t.Errorf("DISCONNECT: %+v", disc.RequestContext)
	}
}

// A POST answers once its frame is queued: a client that reads nothing delays neither the posts
// to it (until its queue is full) nor the posts to others. When its queue is full, it is dropped
// (1006, no close frame) and the post answers 410.
func TestStalledClient(t *testing.T) {
	const queue = 200
	s := newStack(t, func(cfg *localgw.Config) { cfg.SendQueue = queue })
	stalled, stalledID := s.dial(t, "token=good")
	other, otherID := s.dial(t, "token=good")
	ctx := context.Background()
	frame := []byte(strings.Repeat("x", 128<<10))

	// 100 frames of 128 KiB (12.5 MiB) are more than the socket buffers hold: a post that waited
	// for the client would block here. Each also reaches the other connection at once.
	for i := range 100 {
		if err := s.post(ctx, stalledID, frame); err != nil {
			t.Fatalf("post %d to the stalled client: %v", i, err)
		}
		if i%10 == 0 {
			if err := s.post(ctx, otherID, []byte(fmt.Sprint("to other ", i))); err != nil {
				t.Fatal(err)
			}
			if got, want := read(t, other), fmt.Sprint("to other ", i); got != want {
				t.Fatalf("other client got %q, want %q", got, want)
			}
		}
	}
	// Keep posting: the queue fills, the connection is dropped, the post answers 410.
	var err error
	posts := 100
	for ; posts < 100+queue+1000 && err == nil; posts++ {
		err = s.post(ctx, stalledID, frame)
	}
	if !isGone(err) {
		t.Fatalf("after %d posts to a stalled client: %v, want GoneException", posts, err)
	}
	if err := s.post(ctx, stalledID, []byte("x")); !isGone(err) {
		t.Errorf("post after the drop: %v", err)
	}
	disc := decodeEvent(t, receive(t, s.disconnects, "DISCONNECT event"))
	if disc.RequestContext.ConnectionID != stalledID || disc.RequestContext.DisconnectStatusCode != 1006 ||
		disc.RequestContext.DisconnectReason == nil || *disc.RequestContext.DisconnectReason != "send queue full" {
		t.Errorf("DISCONNECT of the stalled client: %+v", disc.RequestContext)
	}
	// The stalled client, reading at last, finds the connection dropped without a close frame.
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		_, _, err := stalled.Read(rctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) || rctx.Err() != nil {
			t.Errorf("stalled client: %v, want a dropped connection", err)
		}
		break
	}
	// The other connection is unaffected.
	if err := s.post(ctx, otherID, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, other); got != "still here" {
		t.Fatalf("other client got %q", got)
	}
}
