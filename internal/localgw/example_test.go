package localgw_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/workorders/notify/internal/localgw"
)

// A gateway with a $connect function that accepts everyone; the CLI builds the same from
// template.yaml with the app's handlers.
func Example() {
	accept := func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}
	gw, err := localgw.New(localgw.Config{
		Addr:                     "127.0.0.1:0",
		RouteSelectionExpression: "$request.body.action",
		Routes:                   map[string]string{"$connect": "ConnectFunction"},
		Functions:                map[string]lambda.Handler{"ConnectFunction": lambda.NewHandler(accept)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		log.Fatal(err)
	}
	defer gw.Shutdown(context.Background())
	fmt.Println(gw.URL() != "ws://"+gw.Addr()+"/")
	// Output: false
}
