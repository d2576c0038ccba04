package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/dynamo"
	"github.com/workorders/notify/internal/testenv"
)

// invoke runs `notify invoke ARGS...` with stdin.
func invoke(t *testing.T, bin string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runNotify(t, bin, nil, stdin, append([]string{"invoke"}, args...)...)
}

func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInvoke(t *testing.T) {
	bin := buildNotify(t)
	endpoint := testenv.Dynalite(t)
	client := dynamodb.NewFromConfig(testenv.AWSConfig(t, endpoint))
	conns, notes := testenv.UniqueName("invoke-connections"), testenv.UniqueName("invoke-notifications")
	ctx := context.Background()
	if err := dynamo.CreateConnectionsTable(ctx, client, conns); err != nil {
		t.Fatal(err)
	}
	if err := dynamo.CreateNotificationsTable(ctx, client, notes); err != nil {
		t.Fatal(err)
	}
	// SAM's format: Parameters for every function, then the function's own.
	envVars := writeJSON(t, "env.json", map[string]map[string]string{
		"Parameters": {
			"CONNECTIONS_TABLE": conns, "NOTIFICATIONS_TABLE": notes,
			"AWS_ENDPOINT_URL_DYNAMODB": endpoint,
		},
		"ConnectFunction": {"ALLOWED_ORIGINS": "https://app.example.com"},
	})

	t.Run("connect", func(t *testing.T) {
		out, errOut, code := invoke(t, bin, nil, "ConnectFunction", "-e", "../../events/connect.json", "--env-vars", envVars)
		var answer struct{ StatusCode int }
		if code != 0 || json.Unmarshal([]byte(out), &answer) != nil || answer.StatusCode != 200 {
			t.Fatalf("exit %d, stdout %q, want statusCode 200; stderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"START RequestId: ", "END RequestId: ", "REPORT RequestId: ", "Memory Size: 256 MB"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr has no %q:\n%s", want, errOut)
			}
		}
	})

	t.Run("publish from stdin", func(t *testing.T) {
		event := []byte(`{"users":["nobody-` + conns + `"],"idempotencyKey":"` + conns + `",
			"notification":{"type":"test","title":"hello"}}`)
		out, errOut, code := invoke(t, bin, event, "PublishFunction", "--env-vars", envVars, "--event", "-")
		var answer map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &answer) != nil {
			t.Fatalf("exit %d, stdout %q; stderr:\n%s", code, out, errOut)
		}
		if _, ok := answer["delivered"]; !ok {
			t.Errorf("publish result %s has no delivered", out)
		}
		if !strings.Contains(errOut, "Memory Size: 512 MB") {
			t.Errorf("REPORT line without PublishFunction's 512 MB:\n%s", errOut)
		}
	})

	// Every sample in events/, as `sam local invoke -e` would run it, with
	// the Management API of a stack started here on the same tables.
	t.Run("every sample", func(t *testing.T) {
		stack, err := devstack.Start(ctx, devstack.Options{
			Addr: "127.0.0.1:0", DynamoDBEndpoint: endpoint,
			Env: map[string]string{"CONNECTIONS_TABLE": conns, "NOTIFICATIONS_TABLE": notes},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = stack.Shutdown(context.Background()) })
		withStack := writeJSON(t, "env-stack.json", map[string]map[string]string{
			"Parameters": {
				"CONNECTIONS_TABLE": conns, "NOTIFICATIONS_TABLE": notes,
				"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "MANAGEMENT_API_ENDPOINT": stack.ManagementEndpoint(),
			},
			"ConnectFunction": {"ALLOWED_ORIGINS": "https://app.example.com"},
		})
		entries, err := os.ReadDir("../../events")
		if err != nil {
			t.Fatal(err)
		}
		samples := map[string]struct{ function, want string }{
			"connect.json":    {"ConnectFunction", `"statusCode":200`},
			"default.json":    {"DefaultFunction", `"statusCode":200`},
			"publish.json":    {"PublishFunction", `"delivered":`},
			"signout.json":    {"PublishFunction", `"disconnected":`},
			"disconnect.json": {"DisconnectFunction", `"statusCode":200`},
			"fanout.json":     {"FanoutFunction", `"delivered":`},
		}
		for _, e := range entries {
			if _, known := samples[e.Name()]; !known && e.Name() != "env.json" {
				t.Errorf("events/%s: no function known for it here", e.Name())
			}
		}
		for _, name := range []string{"connect.json", "default.json", "publish.json", "signout.json", "disconnect.json", "fanout.json"} {
			sample := samples[name]
			out, errOut, code := invoke(t, bin, nil, sample.function, "-e", "../../events/"+name, "--env-vars", withStack)
			if code != 0 || !strings.Contains(out, sample.want) {
				t.Errorf("%s through %s: exit %d, stdout %q, want %s; stderr:\n%s", name, sample.function, code, out, sample.want, errOut)
			}
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		_, errOut, code := invoke(t, bin, nil, "NoSuchFunction")
		if code != 2 || !strings.Contains(errOut, `"NoSuchFunction"`) || !strings.Contains(errOut, "ConnectFunction") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
		if _, _, code := invoke(t, bin, nil); code != 2 {
			t.Errorf("no FUNCTION: exit %d, want 2", code)
		}
	})

	t.Run("bad event", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(bad, []byte(`{"users": [`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := invoke(t, bin, nil, "PublishFunction", "-e", bad)
		if code != 1 || !strings.Contains(errOut, bad+" is not JSON") {
			t.Errorf("event not JSON: exit %d, stderr:\n%s", code, errOut)
		}
		missing := filepath.Join(t.TempDir(), "missing.json")
		_, errOut, code = invoke(t, bin, nil, "PublishFunction", "-e", missing)
		if code != 1 || !strings.Contains(errOut, missing) {
			t.Errorf("missing event: exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("init error", func(t *testing.T) {
		short := writeJSON(t, "short.json", map[string]map[string]string{
			"ConnectFunction": {"JWT_SECRET": "too-short"},
		})
		out, errOut, code := invoke(t, bin, nil, "ConnectFunction", "-e", "../../events/connect.json", "--env-vars", short)
		if code != 1 || out != "" || !strings.Contains(errOut, "init error") || !strings.Contains(errOut, "JWT_SECRET") {
			t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
		}
	})
}
