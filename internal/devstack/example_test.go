package devstack_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/workorders/notify/internal/devstack"
)

// What `notify local --addr 127.0.0.1:0` does: start the stack from
// template.yaml (in memory, as no DynamoDB endpoint is set), print its URL
// and a token, and shut it down, which closes every socket cleanly.
func Example() {
	stack, err := devstack.Start(context.Background(), devstack.Options{
		Addr:         "127.0.0.1:0",
		TemplatePath: "../../template.yaml",
		Env:          map[string]string{}, // not the process environment
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Shutdown(context.Background())

	token, err := stack.DevToken("demo", []string{"team:plant-3"}, 12*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(stack.URL(), "ws://127.0.0.1:"), stack.Storage(), token != "")
	// Output: true memory true
}
