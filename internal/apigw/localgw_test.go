package apigw_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/localgw"
	"github.com/workorders/notify/internal/notify"
)

// startGateway starts the local API Gateway with a $connect function that
// reports each connection id, and stops it with the test. sendQueue is
// Config.SendQueue (0: the default).
func startGateway(t testing.TB, sendQueue int) (*localgw.Gateway, <-chan string) {
	gw, ids, _ := startGatewayWithDisconnects(t, sendQueue)
	return gw, ids
}

// startGatewayWithDisconnects is startGateway with a $disconnect function
// that reports each event.
func startGatewayWithDisconnects(t testing.TB, sendQueue int) (*localgw.Gateway, <-chan string, <-chan events.APIGatewayWebsocketProxyRequest) {
	t.Helper()
	ids := make(chan string, 64)
	disconnects := make(chan events.APIGatewayWebsocketProxyRequest, 64)
	connect := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		ids <- ev.RequestContext.ConnectionID
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}
	disconnect := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) error {
		disconnects <- ev
		return nil
	}
	gw, err := localgw.New(localgw.Config{
		Routes: map[string]string{"$connect": "ConnectFunction", "$disconnect": "DisconnectFunction"},
		Functions: map[string]lambda.Handler{
			"ConnectFunction":    lambda.NewHandler(connect),
			"DisconnectFunction": lambda.NewHandler(disconnect),
		},
		SendQueue: sendQueue,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return gw, ids, disconnects
}

// Both post paths against the local gateway: frames reach a real WebSocket
// client exactly (text, and binary for bytes that are not UTF-8); an id the
// gateway does not know answers 410, mapped to EGONE; Close closes the
// socket, after which posts are gone too.
func TestSendThroughLocalGateway(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		gw, ids := startGateway(t, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client, _, err := websocket.Dial(ctx, gw.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.CloseNow()
		var id string
		select {
		case id = <-ids:
		case <-ctx.Done():
			t.Fatal("no $connect")
		}
		// The endpoint as built from a stage URL: the gateway serves
		// @connections under one stage segment too.
		s := newSender(StaticConfig(), fast("http://"+gw.Addr()+"/"+localgw.Stage))

		for _, f := range []struct {
			data []byte
			typ  websocket.MessageType
		}{
			{[]byte(`{"type":"workorder.assigned","title":"WO-1042 ✓"}`), websocket.MessageText},
			{[]byte{0, 1, 0xff, 0xfe, '\n'}, websocket.MessageBinary},
		} {
			if err := s.Send(ctx, id, f.data); err != nil {
				t.Fatalf("send to %s: %v", id, err)
			}
			typ, got, err := client.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != f.typ || string(got) != string(f.data) {
				t.Errorf("client read %v %q, want %v %q", typ, got, f.typ, f.data)
			}
		}

		err = s.Send(ctx, "AAAAAAAAAAAAAAA=", []byte("x"))
		var g *types.GoneException
		if notify.ErrorCode(err) != notify.EGONE || !errors.Is(err, notify.ErrGone) || !errors.As(err, &g) {
			t.Errorf("unknown id: %v", err)
		}

		if err := s.Close(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := client.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Errorf("after Close, client read: %v", err)
		}
		if err := s.Send(ctx, id, []byte("late")); notify.ErrorCode(err) != notify.EGONE {
			t.Errorf("send after Close: %v", err)
		}
	})
}

// The local gateway bounds each socket write (10 s): a client that stops
// reading is dropped, and $disconnect reports 1006 "write timeout"; a
// DELETE whose close frame waits behind the blocked write closes the socket
// at the timeout too, reported as the DELETE's 1000. (A test of
// internal/localgw's write loop, kept here with the other tests that drive
// the gateway through this package's Sender.)
func TestLocalGatewayWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the gateway's 10 s write timeout")
	}
	for _, tc := range []struct {
		name   string
		delete bool
		code   int64
		reason string
	}{
		{"client stops reading", false, 1006, "write timeout"},
		{"DELETE behind a blocked write", true, 1000, "Connection Closed Normally"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, ids, disconnects := startGatewayWithDisconnects(t, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client, _, err := websocket.Dial(ctx, gw.URL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseNow() // never read: the socket's buffers fill up
			id := <-ids
			s := apigw.New(StaticConfig(), fast("http://"+gw.Addr()))
			frame := make([]byte, notify.MaxFrameBytes)
			for range 200 { // 25 MB: more than loopback buffers hold
				if err := s.Send(ctx, id, frame); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			if tc.delete {
				if err := s.Close(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case ev := <-disconnects:
				rc := ev.RequestContext
				if rc.DisconnectStatusCode != tc.code || rc.DisconnectReason == nil || *rc.DisconnectReason != tc.reason {
					t.Errorf("$disconnect %d %v, want %d %q", rc.DisconnectStatusCode, rc.DisconnectReason, tc.code, tc.reason)
				}
				t.Logf("$disconnect after %v", time.Since(start))
			case <-ctx.Done():
				t.Fatal("no $disconnect")
			}
		})
	}
}
