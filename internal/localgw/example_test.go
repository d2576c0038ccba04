package localgw_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/localgw"
)

// A round trip through the local gateway, as the CLI's stack does it with template.yaml and the
// app's handlers: a client connects ($connect runs and accepts it), a POST to
// @connections/{id} reaches the client as one text frame, and once the client closed ($disconnect
// runs with its close code) the same POST answers 410 Gone.
func Example() {
	ids := make(chan string, 1)
	codes := make(chan int64, 1)
	connect := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		ids <- ev.RequestContext.ConnectionID
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}
	disconnect := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) error {
		codes <- ev.RequestContext.DisconnectStatusCode
		return nil
	}
	gw, err := localgw.New(localgw.Config{
		Routes: map[string]string{"$connect": "ConnectFunction", "$disconnect": "DisconnectFunction"},
		Functions: map[string]lambda.Handler{
			"ConnectFunction":    lambda.NewHandler(connect),
			"DisconnectFunction": lambda.NewHandler(disconnect),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		log.Fatal(err)
	}
	defer gw.Shutdown(context.Background())

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, gw.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseNow()
	post := func(id string) string {
		resp, err := http.Post("http://"+gw.Addr()+"/@connections/"+id, "application/json", strings.NewReader(`{"type":"pong"}`))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}

	id := <-ids
	fmt.Println("POST:", post(id))
	_, frame, err := client.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client read:", string(frame))

	if err := client.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("$disconnect code:", <-codes)
	fmt.Println("POST after close:", post(id))
	// Output:
	// POST: 200 OK
	// client read: {"type":"pong"}
	// $disconnect code: 1000
	// POST after close: 410 Gone
}
