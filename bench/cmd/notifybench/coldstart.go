package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/workorders/notify/internal/runtimeapi"
)

// functions in the order a cold-start round runs them: the connection is
// stored, pinged, published to (by PublishFunction, then as a FanoutFunction
// batch), then removed.
var functions = []struct{ name, dir, event string }{
	{"ConnectFunction", "connect", "connect.json"},
	{"DefaultFunction", "default", "default.json"},
	{"PublishFunction", "publish", "publish.json"},
	{"FanoutFunction", "fanout", "fanout.json"},
	{"DisconnectFunction", "disconnect", "disconnect.json"},
}

// lambdaBuildFlags are the Makefile's (LAMBDA_BUILD).
var lambdaBuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}

type coldStart struct {
	name   string
	start  stat // ms from process start to the first answered invoke
	init   stat // ms from process start to the first GET .../invocation/next
	answer string
	amd64  int64
	arm64  int64
}

// dynalite is a dynalite server subprocess (tools/node_modules/dynalite).
type dynalite struct {
	cmd      *exec.Cmd
	endpoint string
	exited   chan struct{}
}

func startDynalite(root string) (*dynalite, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not on PATH: %w", err)
	}
	cli := filepath.Join(root, "tools", "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		return nil, fmt.Errorf("%s is missing: run `npm ci --prefix tools`", cli)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(node, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &dynalite{cmd: cmd, endpoint: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("dynalite exited: %s", out.String())
		default:
		}
		resp, err := client.Post(d.endpoint, "application/x-amz-json-1.0", strings.NewReader("{}"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return d, nil
		}
	}
	d.stop()
	return nil, fmt.Errorf("dynalite did not answer within 30 s: %s", out.String())
}

func (d *dynalite) stop() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// managementStub answers every Management API call 200, on loopback.
func managementStub() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// functionEnv is events/env.json's environment of a function, with the
// Management endpoint pointing at the stub.
func functionEnv(root, name, mgmt string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(root, "events", "env.json"))
	if err != nil {
		return nil, err
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("events/env.json: %w", err)
	}
	var env []string
	for k, v := range all[name] {
		if k == "MANAGEMENT_API_ENDPOINT" {
			v = mgmt
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// tablesFromEnv returns the table names events/env.json uses.
func tablesFromEnv(root string) (connections, notifications string, err error) {
	raw, err := os.ReadFile(filepath.Join(root, "events", "env.json"))
	if err != nil {
		return "", "", err
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(raw, &all); err != nil {
		return "", "", err
	}
	return all["PublishFunction"]["CONNECTIONS_TABLE"], all["PublishFunction"]["NOTIFICATIONS_TABLE"], nil
}

// measureColdStarts builds each bootstrap for linux/amd64 and times, runs
// times, from process start to its first answered invoke of its events/
// sample, against dynalite (tables created beforehand by the caller).
func measureColdStarts(root, dir, dynamoEndpoint string, runs int) ([]coldStart, error) {
	mgmt, stopStub, err := managementStub()
	if err != nil {
		return nil, err
	}
	defer stopStub()
	out := make([]coldStart, len(functions))
	bins := make([]string, len(functions))
	events := make([][]byte, len(functions))
	envs := make([][]string, len(functions))
	for i, fn := range functions {
		out[i].name = fn.name
		bins[i] = filepath.Join(dir, "amd64", fn.name, "bootstrap")
		if err := goBuild(root, bins[i], "./functions/"+fn.dir,
			[]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, lambdaBuildFlags...); err != nil {
			return nil, err
		}
		if st, err := os.Stat(bins[i]); err == nil {
			out[i].amd64 = st.Size()
		}
		if events[i], err = os.ReadFile(filepath.Join(root, "events", fn.event)); err != nil {
			return nil, err
		}
		if envs[i], err = functionEnv(root, fn.name, mgmt); err != nil {
			return nil, err
		}
	}
	samples := make([][]float64, len(functions))
	inits := make([][]float64, len(functions))
	for run := range runs + 1 { // round 0 warms the page cache and dynalite, and is not counted
		for i, fn := range functions {
			event := events[i]
			if fn.name == "PublishFunction" {
				// A fresh idempotency key each round, so that every round
				// stores and sends rather than answering duplicate:true.
				event = withIdempotencyKey(event, fmt.Sprintf("bench-cold-%d-%d", time.Now().UnixNano(), run))
			}
			d, initDur, answer, err := coldStartOnce(bins[i], fn.name, event, append(awsEnv("AWS_ENDPOINT_URL_DYNAMODB="+dynamoEndpoint,
				"AWS_LAMBDA_FUNCTION_NAME="+fn.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512",
				"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "LAMBDA_TASK_ROOT="+filepath.Dir(bins[i]),
				"_HANDLER=bootstrap", "TZ=:UTC"), envs[i]...))
			if err != nil {
				return nil, fmt.Errorf("%s cold start: %w", fn.name, err)
			}
			if run > 0 {
				samples[i] = append(samples[i], ms(d))
				inits[i] = append(inits[i], ms(initDur))
				logf("  %s cold start %d: %.1f ms (init %.1f ms) → %s", fn.name, run, ms(d), ms(initDur), answer)
			}
			out[i].answer = answer
		}
	}
	for i := range out {
		out[i].start = summarize(samples[i])
		out[i].init = summarize(inits[i])
	}
	return out, nil
}

func withIdempotencyKey(event []byte, key string) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(event, &m); err != nil {
		return event
	}
	m["idempotencyKey"], _ = json.Marshal(key)
	b, _ := json.Marshal(m)
	return b
}

// coldStartOnce starts bin under a fresh Runtime API with event queued and
// returns the time from process start to the answer, and to its first poll.
func coldStartOnce(bin, name string, event []byte, env []string) (time.Duration, time.Duration, string, error) {
	rie, err := runtimeapi.Start("arn:aws:lambda:us-east-1:000000000000:function:"+name, 15*time.Second)
	if err != nil {
		return 0, 0, "", err
	}
	defer rie.Close()
	done := rie.Enqueue(event)
	cmd := exec.Command(bin)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(env, "AWS_LAMBDA_RUNTIME_API="+rie.Addr())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case r := <-done:
		answer := summarizeAnswer(r)
		if r.Error {
			return 0, 0, answer, fmt.Errorf("function error: %s; logs: %s", r.Payload, logs.String())
		}
		return r.At.Sub(start), rie.FirstPoll().Sub(start), answer, nil
	case r := <-rie.InitError():
		return 0, 0, "", fmt.Errorf("init error: %s; logs: %s", r.Payload, logs.String())
	case <-exited:
		return 0, 0, "", fmt.Errorf("%w; logs: %s", runtimeapi.ErrNoAnswer, logs.String())
	case <-ctx.Done():
		return 0, 0, "", fmt.Errorf("no answer within 30 s; logs: %s", logs.String())
	}
}

// summarizeAnswer shortens an answer for the log: statusCode, or the counts.
func summarizeAnswer(r runtimeapi.Result) string {
	var m map[string]any
	if json.Unmarshal(r.Payload, &m) == nil {
		if sc, ok := m["statusCode"]; ok {
			return fmt.Sprintf("statusCode %v", sc)
		}
		if d, ok := m["delivered"]; ok {
			if c, ok := m["connections"]; ok {
				return fmt.Sprintf("delivered %v of %v", d, c)
			}
			return fmt.Sprintf("delivered %v (batch)", d)
		}
	}
	s := string(r.Payload)
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// armSizes runs `make build` (the deployed arm64 bootstraps, bin/<LogicalId>/bootstrap)
// and returns each size.
func armSizes(root string, out []coldStart) error {
	cmd := exec.Command("make", "--no-print-directory", "build")
	cmd.Dir = root
	var buf tailBuffer
	buf.max = 16 << 10
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make build: %v: %s", err, buf.String())
	}
	for i := range out {
		st, err := os.Stat(filepath.Join(root, "bin", out[i].name, "bootstrap"))
		if err != nil {
			return err
		}
		out[i].arm64 = st.Size()
	}
	return nil
}
