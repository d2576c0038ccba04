package apigw_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/localgw"
)

// BenchmarkLocalGateway posts 1 KB text frames with the Sender, from 64
// goroutines, through the local gateway (internal/localgw: its Management
// API, send queues and socket writes) to 16 real WebSocket clients, and
// counts a post done once its client has read it. Everything runs in this
// process: profile it (-cpuprofile) to see the gateway's share.
func BenchmarkLocalGateway(b *testing.B) {
	const clients = 16
	gw, ids := startGateway(b, 1<<16) // a queue the readers cannot fill: no drops
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received atomic.Int64
	conns := make([]string, clients)
	for i := range conns {
		c, _, err := websocket.Dial(ctx, gw.URL(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				received.Add(1)
			}
		}()
		conns[i] = <-ids
	}
	s := apigw.New(StaticConfig(), apigw.Options{Endpoint: "http://" + gw.Addr() + "/" + localgw.Stage, Concurrency: 64})
	frame := append([]byte(`{"type":"workorder.assigned","pad":"`), bytes.Repeat([]byte("x"), 1024-39)...)
	frame = append(frame, `"}`...)
	var next atomic.Int64
	benchPosts(b, s, frame, func() string { return conns[next.Add(1)%clients] }, func() {
		for deadline := time.Now().Add(30 * time.Second); received.Load() < int64(b.N); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d frames received", received.Load(), b.N)
			}
		}
	})
}
