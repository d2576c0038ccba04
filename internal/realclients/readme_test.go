package realclients

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/notify"
)

const publishSection = "Publishing from another service"

// awsCLI returns the path of `aws` and whether it is v1, or skips (fails
// under CI=true) when it is missing.
func awsCLI(t *testing.T) (string, bool) {
	t.Helper()
	aws, err := exec.LookPath("aws")
	if err != nil {
		missing(t, "the AWS CLI (`aws`) is not on PATH", "install it (pip install awscli, or AWS CLI v2)")
	}
	out, err := exec.Command(aws, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("aws --version: %v: %s", err, out)
	}
	return aws, strings.HasPrefix(strings.TrimSpace(string(out)), "aws-cli/1.")
}

// cliBlocks returns README's `aws lambda invoke` blocks of the section: the
// publish example and the disconnect example, in order.
func cliBlocks(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, b := range readmeBlocks(t, publishSection, "sh") {
		if strings.HasPrefix(b, "aws lambda invoke ") {
			out = append(out, b)
		}
	}
	if len(out) != 2 {
		t.Fatalf("README.md: %d `aws lambda invoke` blocks in %q, want 2 (publish, disconnect): %q", len(out), publishSection, out)
	}
	return out
}

// forLocal adds the local stack's endpoint to a README CLI block and, for
// AWS CLI v1, drops --cli-binary-format as the README says (v1 has no such
// option and takes the payload as it is).
func forLocal(block, addr string, v1 bool) string {
	cmd := strings.Replace(block, "aws lambda invoke ", "aws lambda invoke --endpoint-url http://"+addr+" ", 1)
	if v1 {
		cmd = strings.Replace(cmd, " --cli-binary-format raw-in-base64-out", "", 1)
	}
	return cmd
}

// runCLIBlock runs a README block with bash in a fresh directory and
// returns what the invocation wrote to out.json and the CLI's output.
func runCLIBlock(t *testing.T, aws, cmd string) (payload []byte, stdout string) {
	t.Helper()
	dir := t.TempDir()
	bash, err := exec.LookPath("bash")
	if err != nil {
		missing(t, "bash is not on PATH", "install bash")
	}
	// PATH first holds aws's own directory, so the block's `aws` is the one found.
	stdout = run(t, dir, []string{"PATH=" + filepath.Dir(aws) + string(os.PathListSeparator) + os.Getenv("PATH")}, bash, "-euc", cmd)
	payload, err = os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatalf("%s\nwrote no out.json: %v (stdout %s)", cmd, err, stdout)
	}
	var meta struct{ StatusCode int }
	if err := json.Unmarshal([]byte(stdout), &meta); err != nil || meta.StatusCode != 200 || strings.Contains(stdout, "FunctionError") {
		t.Fatalf("%s\nCLI answered %s (%v), want StatusCode 200 without FunctionError; payload %s", cmd, stdout, err, payload)
	}
	return payload, stdout
}

// TestREADMEAWSCLI runs the README's two `aws lambda invoke` examples
// against the local stack: the group publish reaches a socket of
// team:plant-3, and the disconnect closes user 42's socket.
func TestREADMEAWSCLI(t *testing.T) {
	t.Parallel()
	aws, v1 := awsCLI(t)
	blocks := cliBlocks(t)
	s := startStack(t)
	member, _ := s.connect(t, "u-plant", "team:plant-3")
	user42, _ := s.connect(t, "42")

	payload, _ := runCLIBlock(t, aws, forLocal(blocks[0], s.Addr(), v1))
	res := decodePublish(t, payload)
	if res.Connections != 1 || res.Delivered != 1 || res.Gone != 0 || res.Failed != 0 || len(res.OfflineUsers) != 0 {
		t.Errorf("publish result %s, want the one socket of team:plant-3 reached", payload)
	}
	n := notificationFrame(t, member.next(t))
	if n["type"] != "workorder.status" || n["title"] != "WO-1042 in progress" || n["id"] != res.ID {
		t.Errorf("the member got %v, want the README's notification with id %s", n, res.ID)
	}

	payload, _ = runCLIBlock(t, aws, forLocal(blocks[1], s.Addr(), v1))
	wantDisconnect(t, payload, 1)
	wantRevoked(t, user42)
}

// TestREADMEBoto3 runs the README's two boto3 examples in one Python
// script (the disconnect example uses the publish example's client), after
// a prelude defining the names they take from the surrounding Django code:
// a publish to user 42, online, then the disconnect of user 42. A second run
// publishes to an offline user, whom send_email_fallback gets.
func TestREADMEBoto3(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		missing(t, "python3 is not on PATH", "install Python 3 and boto3 (pip install boto3)")
	}
	if out, err := exec.Command(python, "-c", "import boto3").CombinedOutput(); err != nil {
		missing(t, "boto3 does not import in "+python+": "+strings.TrimSpace(string(out)), "pip install boto3")
	}
	blocks := readmeBlocks(t, publishSection, "python")
	if len(blocks) != 2 {
		t.Fatalf("README.md: %d python blocks in %q, want 2 (publish, disconnect)", len(blocks), publishSection)
	}
	s := startStack(t)
	const client = `boto3.client("lambda")`
	if strings.Count(blocks[0], client) != 1 {
		t.Fatalf("README.md's boto3 publish example does not create its client as %s:\n%s", client, blocks[0])
	}
	publish := strings.Replace(blocks[0], client, `boto3.client("lambda", endpoint_url="http://`+s.Addr()+`")`, 1)
	dir := t.TempDir()
	script := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The names the examples take from their surroundings; ASSIGNEE picks
	// the work order's assignee.
	const prelude = `import os, sys
PUBLISH_FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:PublishFunction"
class _WorkOrder:
    id = int(os.environ["ASSIGNEE"]) + 1000
    assignee_id = int(os.environ["ASSIGNEE"])
    version = 1
    code = "WO-%d" % id
class _User:
    id = 42
work_order, user = _WorkOrder(), _User()
emailed = []
def send_email_fallback(user_id):
    emailed.append(user_id)
`
	const report = `
print(json.dumps({"publish": result, "emailed": emailed}))
`
	const disconnectReport = `
print(json.dumps({"disconnect": json.loads(resp["Payload"].read())}))
`
	sock, _ := s.connect(t, "42")
	out := run(t, dir, []string{"ASSIGNEE=42"}, python,
		script("online.py", prelude+"# README: publish\n"+publish+report+"# README: disconnect\n"+blocks[1]+disconnectReport))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("script printed %q, want two JSON lines", out)
	}
	var first struct {
		Publish json.RawMessage `json:"publish"`
		Emailed []string        `json:"emailed"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	res := decodePublish(t, first.Publish)
	if res.Connections != 1 || res.Delivered != 1 || len(res.OfflineUsers) != 0 || len(first.Emailed) != 0 {
		t.Errorf("publish to online user 42: %s, want 1 connection delivered and nobody e-mailed", lines[0])
	}
	n := notificationFrame(t, sock.next(t))
	if n["type"] != "workorder.assigned" || n["title"] != "WO-1042 assigned to you" || n["id"] != res.ID {
		t.Errorf("user 42 got %v, want the README's notification with id %s", n, res.ID)
	}
	var second struct {
		Disconnect json.RawMessage `json:"disconnect"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("%s: %v", lines[1], err)
	}
	wantDisconnect(t, second.Disconnect, 1)
	wantRevoked(t, sock)

	// Offline: the README's loop calls send_email_fallback.
	out = run(t, dir, []string{"ASSIGNEE=77"}, python, script("offline.py", prelude+publish+report))
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &first); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	res = decodePublish(t, first.Publish)
	if res.Connections != 0 || len(res.OfflineUsers) != 1 || res.OfflineUsers[0] != "77" || len(first.Emailed) != 1 || first.Emailed[0] != "77" {
		t.Errorf("publish to offline user 77: %s, want offlineUsers [77] and 77 e-mailed", out)
	}
}

// decodePublish decodes a publish answer strictly.
func decodePublish(t *testing.T, payload []byte) notify.PublishResult {
	t.Helper()
	var res notify.PublishResult
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil || res.ID == "" || res.OfflineUsers == nil {
		t.Fatalf("publish answer %s: %v, want a result with id and offlineUsers", payload, err)
	}
	return res
}

// wantDisconnect checks a disconnect answer closing n sockets.
func wantDisconnect(t *testing.T, payload []byte, n int) {
	t.Helper()
	var res map[string]int
	if err := json.Unmarshal(payload, &res); err != nil {
		t.Fatalf("disconnect answer %s: %v", payload, err)
	}
	want := map[string]int{"connections": n, "disconnected": n, "gone": 0, "failed": 0}
	if len(res) != len(want) {
		t.Errorf("disconnect answer %s, want %v", payload, want)
	}
	for k, v := range want {
		if got, ok := res[k]; !ok || got != v {
			t.Errorf("disconnect answer %s, want %v", payload, want)
			break
		}
	}
}

// wantRevoked checks that the socket gets the README's disconnected frame,
// then closes.
func wantRevoked(t *testing.T, c *socket) {
	t.Helper()
	f := c.next(t)
	var m map[string]any
	if err := json.Unmarshal(f.data, &m); err != nil || m["type"] != "disconnected" || m["code"] != "revoked" || m["reason"] != "signed out" {
		t.Errorf("got %s, want {\"type\":\"disconnected\",\"code\":\"revoked\",\"reason\":\"signed out\"}", f.data)
	}
	if code, rest := c.closed(t); code == -1 || len(rest) != 0 {
		t.Errorf("after the disconnected frame: close status %v, frames %d; want a close frame and nothing else", code, len(rest))
	}
}

var ulid = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// notificationFrame decodes a `notification` frame and returns its
// notification.
func notificationFrame(t *testing.T, f frame) map[string]any {
	t.Helper()
	var m struct {
		Type         string         `json:"type"`
		Notification map[string]any `json:"notification"`
	}
	if f.typ != websocket.MessageText || json.Unmarshal(f.data, &m) != nil || m.Type != "notification" {
		t.Fatalf("got %v frame %s, want a notification frame", f.typ, f.data)
	}
	if id, _ := m.Notification["id"].(string); !ulid.MatchString(id) {
		t.Errorf("notification id %v is not a ULID", m.Notification["id"])
	}
	return m.Notification
}
