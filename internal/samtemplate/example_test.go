package samtemplate_test

import (
	"fmt"
	"log"
	"sort"

	"github.com/workorders/notify/internal/samtemplate"
)

// The local stack runs what template.yaml deploys: which function serves a
// route, and each function's environment with local values.
func ExampleLoad() {
	tm, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("selection:", tm.RouteSelectionExpression)
	var keys []string
	for k := range tm.Routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println(k, "→", tm.Routes[k])
	}
	fmt.Println(tm.Functions["PublishFunction"].Environment["MANAGEMENT_API_ENDPOINT"])
	// Output:
	// selection: $request.body.action
	// $connect → ConnectFunction
	// $default → DefaultFunction
	// $disconnect → DisconnectFunction
	// !Sub "https://${WebSocketApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}"
}

func ExampleTemplate_ResolveEnv() {
	tm, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		log.Fatal(err)
	}
	env, err := tm.ResolveEnv("PublishFunction",
		map[string]string{"AllowedOrigins": "*", "StageName": "local"},
		map[string]string{
			"ConnectionsTable":   "notify-connections",
			"NotificationsTable": "notify-notifications",
			"WebSocketApi":       "local",
			"FanoutFunction":     "notify-fanout",
		})
	if err != nil {
		log.Fatal(err)
	}
	var keys []string
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s=%s\n", k, env[k])
	}
	// Output:
	// CONNECTIONS_TABLE=notify-connections
	// FANOUT_BATCH_SIZE=500
	// FANOUT_FUNCTION=notify-fanout
	// FANOUT_POSTS_PER_SECOND=10000
	// FANOUT_SHARDS=10
	// FANOUT_THRESHOLD=1000
	// MANAGEMENT_API_ENDPOINT=https://local.execute-api.us-east-1.amazonaws.com/local
	// METRICS_NAMESPACE=WorkOrderNotify
	// NOTIFICATIONS_TABLE=notify-notifications
	// PUBLISH_CONCURRENCY=64
	// RETENTION_DAYS=30
}
