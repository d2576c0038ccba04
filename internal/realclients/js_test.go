package realclients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// nodeTools returns node's path and tools/ (holding node_modules with
// pkgs), or skips (fails under CI=true) when one is missing.
func nodeTools(t *testing.T, pkgs ...string) (node, tools string) {
	t.Helper()
	const hint = "install Node.js (20 or later) and run `npm ci --prefix tools` in the repository root (`make test` does this)"
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node (Node.js) is not on PATH", hint)
	}
	tools = filepath.Join(repoRoot(t), "tools")
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(tools, "node_modules", p, "package.json")); err != nil {
			missing(t, "tools/node_modules/"+p+" is not installed", hint)
		}
	}
	return node, tools
}

// nodeScript writes an ES module into a fresh directory; it loads packages
// from tools/node_modules with require(), created for TOOLS_DIR.
func nodeScript(t *testing.T, body string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "client.mjs")
	const head = `import { createRequire } from "node:module";
const require = createRequire(process.env.TOOLS_DIR + "/package.json");
`
	if err := os.WriteFile(path, []byte(head+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// TestJSSDKManagementAPI publishes through the JS SDK's Lambda client and
// makes a Management API round trip with its ApiGatewayManagementApi
// client against a socket the test holds: post (the socket gets the
// frame), get, delete (the socket closes with 1000), then post →
// GoneException (410).
func TestJSSDKManagementAPI(t *testing.T) {
	t.Parallel()
	node, tools := nodeTools(t, "@aws-sdk/client-lambda", "@aws-sdk/client-apigatewaymanagementapi")
	s := startStack(t)
	sock, id := s.connect(t, "u-js")
	dir, script := nodeScript(t, `
const { LambdaClient, InvokeCommand } = require("@aws-sdk/client-lambda");
const { ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand,
  DeleteConnectionCommand, GoneException } = require("@aws-sdk/client-apigatewaymanagementapi");
const endpoint = process.env.ENDPOINT, ConnectionId = process.env.CONNECTION_ID;
const out = {};
const lambda = new LambdaClient({ endpoint });
const inv = await lambda.send(new InvokeCommand({ FunctionName: "PublishFunction",
  Payload: new TextEncoder().encode(JSON.stringify({ users: ["u-js"], notification: { type: "js.sdk", title: "from JS" } })) }));
out.invoke = { statusCode: inv.StatusCode, functionError: inv.FunctionError ?? null,
  payload: JSON.parse(new TextDecoder().decode(inv.Payload)) };
const mgmt = new ApiGatewayManagementApiClient({ endpoint });
await mgmt.send(new PostToConnectionCommand({ ConnectionId, Data: new TextEncoder().encode('{"type":"js.hello"}') }));
const got = await mgmt.send(new GetConnectionCommand({ ConnectionId }));
out.get = { connectedAt: got.ConnectedAt?.toISOString(), lastActiveAt: got.LastActiveAt?.toISOString(),
  sourceIp: got.Identity?.SourceIp };
const del = await mgmt.send(new DeleteConnectionCommand({ ConnectionId }));
out.deleteStatus = del.$metadata.httpStatusCode;
try {
  await mgmt.send(new PostToConnectionCommand({ ConnectionId, Data: new TextEncoder().encode('{"type":"late"}') }));
  out.afterDelete = "no error";
} catch (e) {
  out.afterDelete = { name: e.name, isGone: e instanceof GoneException, status: e.$metadata?.httpStatusCode };
}
console.log(JSON.stringify(out));
`)
	stdout := run(t, dir, []string{"TOOLS_DIR=" + tools, "ENDPOINT=" + s.ManagementEndpoint(), "CONNECTION_ID=" + id}, node, script)
	var out struct {
		Invoke struct {
			StatusCode    int
			FunctionError *string
			Payload       json.RawMessage
		}
		Get struct {
			ConnectedAt, LastActiveAt, SourceIP string
		}
		DeleteStatus int
		AfterDelete  struct {
			Name   string
			IsGone bool
			Status int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("node printed %s: %v", stdout, err)
	}
	if out.Invoke.StatusCode != 200 || out.Invoke.FunctionError != nil {
		t.Fatalf("JS Lambda client's invoke: %s", stdout)
	}
	res := decodePublish(t, out.Invoke.Payload)
	if res.Delivered != 1 {
		t.Errorf("publish through the JS Lambda client: %s, want 1 delivered", out.Invoke.Payload)
	}
	if n := notificationFrame(t, sock.next(t)); n["title"] != "from JS" || n["id"] != res.ID {
		t.Errorf("notification %v, want the JS publish", n)
	}
	if f := sock.next(t); f.typ != websocket.MessageText || string(f.data) != `{"type":"js.hello"}` {
		t.Errorf("the socket got %v %s, want the posted text frame", f.typ, f.data)
	}
	if out.Get.ConnectedAt == "" || out.Get.LastActiveAt == "" || out.Get.SourceIP != "127.0.0.1" {
		t.Errorf("GetConnection through the JS SDK: %s, want connectedAt, lastActiveAt and sourceIp 127.0.0.1", stdout)
	}
	if out.DeleteStatus != http.StatusNoContent {
		t.Errorf("DeleteConnection status %d, want 204", out.DeleteStatus)
	}
	if code, rest := sock.closed(t); code != websocket.StatusNormalClosure || len(rest) != 0 {
		t.Errorf("after DeleteConnection: close status %v and %d more frames, want 1000 and none", code, len(rest))
	}
	if out.AfterDelete.Name != "GoneException" || !out.AfterDelete.IsGone || out.AfterDelete.Status != http.StatusGone {
		t.Errorf("PostToConnection after DeleteConnection: %s, want GoneException (410)", stdout)
	}
}

// TestWSBinaryMessageCloses1003: a binary message from a ws client closes
// its socket with 1003, as API Gateway does.
func TestWSBinaryMessageCloses1003(t *testing.T) {
	t.Parallel()
	node, tools := nodeTools(t, "ws")
	s := startStack(t)
	dir, script := nodeScript(t, `
const WebSocket = require("ws");
const ws = new WebSocket(process.env.WS_URL);
ws.on("open", () => ws.send(Buffer.from('{"action":"ping"}'), { binary: true }));
ws.on("message", (data, isBinary) => console.log(JSON.stringify({ message: data.toString("hex"), isBinary })));
ws.on("error", (e) => console.log(JSON.stringify({ error: String(e) })));
ws.on("close", (code, reason) => console.log(JSON.stringify({ close: code, reason: reason.toString() })));
`)
	stdout := run(t, dir, []string{"TOOLS_DIR=" + tools, "WS_URL=" + s.wsURL(t, "u-ws-binary")}, node, script)
	var got struct {
		Close  int
		Reason string
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &got); err != nil || got.Close != 1003 {
		t.Errorf("ws client after sending a binary message: %s, want only a close with 1003", stdout)
	}
}

// TestWSNonUTF8PostArrivesBinary: data posted to @connections arrives at a
// ws client as a text frame when it is UTF-8 and as a binary frame when it
// is not (a text frame of invalid UTF-8 would make ws fail the connection
// with 1007).
func TestWSNonUTF8PostArrivesBinary(t *testing.T) {
	t.Parallel()
	node, tools := nodeTools(t, "ws")
	s := startStack(t)
	dir, script := nodeScript(t, `
const WebSocket = require("ws");
const ws = new WebSocket(process.env.WS_URL);
let n = 0;
ws.on("open", () => console.log(JSON.stringify({ open: true })));
ws.on("message", (data, isBinary) => {
  console.log(JSON.stringify({ hex: data.toString("hex"), isBinary }));
  if (++n === 2) ws.close(1000, "done");
});
ws.on("error", (e) => console.log(JSON.stringify({ error: String(e) })));
ws.on("close", (code, reason) => console.log(JSON.stringify({ close: code, reason: reason.toString() })));
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = childEnv(dir, "TOOLS_DIR="+tools, "WS_URL="+s.wsURL(t, "u-ws-utf8"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pipe)
	if !lines.Scan() || lines.Text() != `{"open":true}` {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("ws client did not open: %q %s", lines.Text(), stderr.String())
	}
	id := s.logs.ConnectionID(t, "u-ws-utf8")
	text, binary := []byte(`{"type":"ok"}`), []byte{0xff, 0xfe, 'h', 'i', 0x80, 0x00}
	for _, body := range [][]byte{text, binary} {
		resp, err := http.Post(s.ManagementEndpoint()+"/@connections/"+id, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST @connections: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST @connections %x: %d %s", body, resp.StatusCode, b)
		}
	}
	var out []string
	for lines.Scan() {
		out = append(out, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	want := []string{
		`{"hex":"` + hex.EncodeToString(text) + `","isBinary":false}`,
		`{"hex":"` + hex.EncodeToString(binary) + `","isBinary":true}`,
		`{"close":1000,"reason":"done"}`,
	}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Errorf("ws client saw\n%s\nwant\n%s", strings.Join(out, "\n"), strings.Join(want, "\n"))
	}
}
